// The library's side of maas/log.h: hands a message to the sink the application set.
#ifndef MAAS_LIB_LOG_H_
#define MAAS_LIB_LOG_H_

#include <string_view>

#include "maas/log.h"

namespace maas::internal {

// Delivers `message` to the current sink; a sink that throws is ignored.
void Log(LogSeverity severity, std::string_view message);

}  // namespace maas::internal

#endif  // MAAS_LIB_LOG_H_
