#include "request_metrics.h"

namespace maasd {

void RequestMetrics::Record(const Key& key, bool success, absl::Duration latency) {
  maas::internal::MutexLock lock(&mu_);
  Series& series = series_[key];
  ++(success ? series.success : series.failure);
  (success ? series.success_time : series.failure_time) += latency;
  series.latency.Record(latency);
}

std::map<RequestMetrics::Key, RequestMetrics::Series> RequestMetrics::Snapshot() const {
  maas::internal::MutexLock lock(&mu_);
  return series_;
}

}  // namespace maasd
