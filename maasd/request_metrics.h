// What maasd measures itself, per model and version: requests answered by protocol and
// outcome, and their end-to-end latency (from the request read to the response handed to the
// socket), which ModelStats cannot see (parsing, encoding, the network threads).
#ifndef MAASD_REQUEST_METRICS_H_
#define MAASD_REQUEST_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "absl/time/time.h"
#include "util/histogram.h"
#include "util/mutex.h"

namespace maasd {

// This class is thread-safe.
class RequestMetrics {
 public:
  struct Key {
    // Empty for every name that is not deployed: they share one series.
    std::string model;
    int64_t version = 0;   // 0: refused before a version was reached
    std::string protocol;  // "http" or "grpc"
    friend bool operator<(const Key& a, const Key& b) {
      return std::tie(a.model, a.version, a.protocol) < std::tie(b.model, b.version, b.protocol);
    }
  };
  struct Series {
    int64_t success = 0;
    int64_t failure = 0;
    absl::Duration success_time;  // Cumulative latency of the successful requests...
    absl::Duration failure_time;  // ... and of the failed ones.
    maas::internal::DurationHistogram latency;  // Of every answered request.
  };

  void Record(const Key& key, bool success, absl::Duration latency);

  // A copy of every series.
  std::map<Key, Series> Snapshot() const;

 private:
  mutable maas::internal::Mutex mu_;
  std::map<Key, Series> series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace maasd

#endif  // MAASD_REQUEST_METRICS_H_
