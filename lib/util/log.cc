#include "util/log.h"

#include <cstdio>
#include <memory>
#include <utility>

#include "util/mutex.h"

namespace maas {
namespace {

internal::Mutex sink_mu;
// Shared, so that a message being delivered keeps its sink alive while SetLogSink replaces it.
std::shared_ptr<const LogSink> sink ABSL_GUARDED_BY(sink_mu);

const char* SeverityName(LogSeverity severity) {
  switch (severity) {
    case LogSeverity::kInfo:
      return "info";
    case LogSeverity::kWarning:
      return "warning";
    case LogSeverity::kError:
      return "error";
  }
  return "?";
}

}  // namespace

void SetLogSink(LogSink new_sink) {
  std::shared_ptr<const LogSink> replacement;
  if (new_sink) replacement = std::make_shared<const LogSink>(std::move(new_sink));
  internal::MutexLock lock(&sink_mu);
  sink.swap(replacement);
}  // The old sink dies here, outside the lock, once no message uses it.

namespace internal {

void Log(LogSeverity severity, std::string_view message) {
  std::shared_ptr<const LogSink> current;
  {
    MutexLock lock(&sink_mu);
    current = sink;
  }
  if (!current) {
    // One write per line, so that lines from several threads do not interleave.
    std::string line = std::string("maas: ") + SeverityName(severity) + ": ";
    line.append(message);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  try {
    (*current)(severity, message);
  } catch (...) {
    // The sink's contract says it does not throw; an exception must still not reach a request.
  }
}

}  // namespace internal
}  // namespace maas
