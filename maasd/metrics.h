// /metrics: the Prometheus text exposition of the served models.
#ifndef MAASD_METRICS_H_
#define MAASD_METRICS_H_

#include <string>

#include "model_control.h"
#include "request_metrics.h"

namespace maasd {

// Two families of names. maas_*: Prometheus-conformant (base units, _total counters, real
// histograms of latency, queue and compute time and batch size); `promtool check metrics` finds
// nothing to say about them. nv_*: the names and labels of Triton's metrics, so that existing
// Triton dashboards work unchanged; promtool's lint flags these names (abbreviated units,
// counters without _total), as it flags Triton's own.
std::string RenderMetrics(ModelControl& control, const RequestMetrics& requests,
                          int open_connections);

}  // namespace maasd

#endif  // MAASD_METRICS_H_
