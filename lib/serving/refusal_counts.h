// Requests a Deployment refused before any version's executor took them, by status code: no
// version serves the selector, inputs named wrongly for the version drawn, the waiting room full
// while the model loads again, the reload failed. What a version refuses or fails is in that
// version's ModelStats::failures. Lock-free: one relaxed counter per code, as the request path
// touches it only when it refuses.
#ifndef MAAS_LIB_REFUSAL_COUNTS_H_
#define MAAS_LIB_REFUSAL_COUNTS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>

#include "absl/status/status.h"

namespace maas::internal {

class RefusalCounts {
 public:
  // Counts `status` when it is an error; returns it unchanged, so that a refusal is counted where
  // it is returned.
  absl::Status Count(absl::Status status) {
    if (!status.ok()) {
      const size_t code = static_cast<size_t>(status.code());
      counts_[code < counts_.size() ? code : static_cast<size_t>(absl::StatusCode::kUnknown)]
          .fetch_add(1, std::memory_order_relaxed);
    }
    return status;
  }

  // The codes counted at least once.
  std::map<absl::StatusCode, int64_t> Snapshot() const {
    std::map<absl::StatusCode, int64_t> counts;
    for (size_t code = 0; code < counts_.size(); ++code) {
      const int64_t n = counts_[code].load(std::memory_order_relaxed);
      if (n > 0) counts[static_cast<absl::StatusCode>(code)] = n;
    }
    return counts;
  }

 private:
  // absl::StatusCode's values run from 0 (kOk) to 16 (kUnauthenticated).
  std::array<std::atomic<int64_t>, 17> counts_{};
};

}  // namespace maas::internal

#endif  // MAAS_LIB_REFUSAL_COUNTS_H_
