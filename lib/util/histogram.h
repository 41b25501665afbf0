// A histogram of durations with fixed exponential buckets; see maas::DurationDistribution.
#ifndef MAAS_LIB_HISTOGRAM_H_
#define MAAS_LIB_HISTOGRAM_H_

#include <array>
#include <cstdint>

#include "absl/time/time.h"
#include "maas/stats.h"

namespace maas::internal {

// This class is thread-compatible: callers hold their own lock.
class DurationHistogram {
 public:
  // 8 buckets per power of two from 1 us: 27 powers reach 2^27 us (about 134 s); one more
  // bucket holds everything larger.
  static constexpr int kPerOctave = 8;
  static constexpr int kOctaves = 27;
  static constexpr int kBuckets = kPerOctave * kOctaves + 1;

  void Record(absl::Duration d);
  DurationDistribution Snapshot() const;

  // The inclusive upper bound of bucket `i`, in microseconds.
  static double UpperBoundMicros(int i);

 private:
  std::array<int64_t, kBuckets> counts_{};
  int64_t count_ = 0;
  absl::Duration sum_;
};

}  // namespace maas::internal

#endif  // MAAS_LIB_HISTOGRAM_H_
