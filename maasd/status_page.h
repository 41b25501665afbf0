// The status page at /: plain HTML and JavaScript that polls /v2/status every second.
#ifndef MAASD_STATUS_PAGE_H_
#define MAASD_STATUS_PAGE_H_

#include <string>
#include <string_view>

#include "model_control.h"
#include "request_metrics.h"

namespace maasd {

// The page (no build step, no outside resources).
std::string_view StatusPageHtml();

// What the page shows, as JSON: every deployed model with its policy's last error and each
// version's state, reason, aliases, traffic share, memory, counters, batch-size histogram and
// latency percentiles.
std::string StatusJson(ModelControl& control, const RequestMetrics& requests);

}  // namespace maasd

#endif  // MAASD_STATUS_PAGE_H_
