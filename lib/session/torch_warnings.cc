#include "session/torch_warnings.h"

#include "fmt/core.h"
#include "util/log.h"

namespace maas::internal {
namespace {

// The warning-handler functions moved from namespace c10::Warning to c10::WarningUtils in 2.0.
#if TORCH_VERSION_MAJOR >= 2
namespace warning_api = c10::WarningUtils;
#else
namespace warning_api = c10::Warning;
#endif

}  // namespace

#if TORCH_VERSION_MAJOR >= 2
void TorchWarnings::process(const c10::Warning& warning) {
  Receive(warning.source_location(), warning.msg());
}
#else
void TorchWarnings::process(const c10::SourceLocation& source_location, const std::string& msg,
                            bool /*verbatim*/) {
  Receive(source_location, msg);
}
#endif

void TorchWarnings::Receive(const c10::SourceLocation& where, const std::string& message) {
  count_.fetch_add(1, std::memory_order_relaxed);
  std::string site = fmt::format("{}:{}", where.file ? where.file : "?", where.line);
  {
    MutexLock lock(&mu_);
    if (sites_.size() >= kMaxSites || !sites_.insert(std::move(site)).second) return;
  }
  Log(LogSeverity::kWarning,
      fmt::format("{}: LibTorch warned (shown once per session and warning; all are counted in "
                  "Session::torch_warnings and ModelStats::torch_warnings): {}",
                  label_, message));
}

TorchWarnings::Scope::Scope(TorchWarnings* warnings)
    : previous_(warning_api::get_warning_handler()) {
  warning_api::set_warning_handler(warnings);
}

TorchWarnings::Scope::~Scope() { warning_api::set_warning_handler(previous_); }

}  // namespace maas::internal
