#include "util/histogram.h"

#include <cmath>

namespace maas::internal {

double DurationHistogram::UpperBoundMicros(int i) {
  return std::exp2(static_cast<double>(i + 1) / kPerOctave);
}

void DurationHistogram::Record(absl::Duration d) {
  double us = absl::ToDoubleMicroseconds(d);
  int bucket = 0;
  if (us > 1.0) {
    bucket = static_cast<int>(std::ceil(std::log2(us) * kPerOctave)) - 1;
    if (bucket < 0) bucket = 0;
    // Guard against rounding at bucket edges.
    while (bucket > 0 && us <= UpperBoundMicros(bucket - 1)) --bucket;
    while (bucket < kBuckets - 1 && us > UpperBoundMicros(bucket)) ++bucket;
  }
  if (bucket > kBuckets - 1) bucket = kBuckets - 1;
  ++counts_[bucket];
  ++count_;
  sum_ += d;
}

DurationDistribution DurationHistogram::Snapshot() const {
  DurationDistribution out;
  out.count = count_;
  out.sum = sum_;
  if (count_ == 0) return out;
  int last = kBuckets - 1;
  while (last > 0 && counts_[last] == 0) --last;
  int64_t cumulative = 0;
  for (int i = 0; i <= last; ++i) {
    cumulative += counts_[i];
    absl::Duration bound =
        i == kBuckets - 1 ? absl::InfiniteDuration() : absl::Microseconds(UpperBoundMicros(i));
    out.buckets.push_back({bound, cumulative});
  }
  // Percentiles: interpolate linearly inside the bucket that holds the rank.
  auto percentile = [&](double q) {
    double rank = q * static_cast<double>(count_);
    int64_t below = 0;
    for (int i = 0; i <= last; ++i) {
      if (below + counts_[i] >= rank) {
        double lower = i == 0 ? 0.0 : UpperBoundMicros(i - 1);
        double upper = UpperBoundMicros(std::min(i, kBuckets - 2));
        double fraction = counts_[i] == 0 ? 0.0 : (rank - below) / counts_[i];
        return absl::Microseconds(lower + fraction * (upper - lower));
      }
      below += counts_[i];
    }
    return absl::Microseconds(UpperBoundMicros(last));
  };
  out.p50 = percentile(0.50);
  out.p90 = percentile(0.90);
  out.p99 = percentile(0.99);
  return out;
}

}  // namespace maas::internal
