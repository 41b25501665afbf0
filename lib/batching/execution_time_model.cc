#include "batching/execution_time_model.h"

#include <algorithm>

namespace maas::internal {

ExecutionTimeModel::ExecutionTimeModel(int64_t max_batch_size)
    : average_us_(static_cast<size_t>(std::max<int64_t>(max_batch_size, 1)) + 1, 0.0),
      samples_(average_us_.size(), 0) {}

void ExecutionTimeModel::Record(int64_t items, absl::Duration elapsed) {
  if (items < 1 || items >= static_cast<int64_t>(average_us_.size())) return;
  double us = absl::ToDoubleMicroseconds(elapsed);
  double& average = average_us_[items];
  const double weight = us < average ? kSmoothingWhenFaster : kSmoothing;
  average = samples_[items] == 0 ? us : (1 - weight) * average + weight * us;
  ++samples_[items];
}

void ExecutionTimeModel::Relax() {
  for (double& average : average_us_) average *= 0.9;
}

std::optional<absl::Duration> ExecutionTimeModel::Predict(int64_t items) const {
  const int64_t size = static_cast<int64_t>(average_us_.size());
  if (items < 1) return std::nullopt;
  items = std::min(items, size - 1);
  if (samples_[items] >= kMinSamples) return absl::Microseconds(average_us_[items]);
  int64_t lower = items - 1, upper = items + 1;
  while (lower >= 1 && samples_[lower] < kMinSamples) --lower;
  while (upper < size && samples_[upper] < kMinSamples) ++upper;
  const bool has_lower = lower >= 1, has_upper = upper < size;
  if (has_lower && has_upper) {
    double t = static_cast<double>(items - lower) / static_cast<double>(upper - lower);
    return absl::Microseconds(average_us_[lower] + t * (average_us_[upper] - average_us_[lower]));
  }
  if (has_lower) return absl::Microseconds(average_us_[lower]);
  if (has_upper) {
    return absl::Microseconds(average_us_[upper] * static_cast<double>(items) /
                              static_cast<double>(upper));
  }
  return std::nullopt;
}

std::optional<absl::Duration> ExecutionTimeModel::Interpolate(int64_t items) const {
  const int64_t size = static_cast<int64_t>(samples_.size());
  if (items < 1 || items >= size) return std::nullopt;
  bool below = false, above = false;
  for (int64_t i = items; i >= 1 && !below; --i) below = samples_[i] >= kMinSamples;
  for (int64_t i = items; i < size && !above; ++i) above = samples_[i] >= kMinSamples;
  if (!below || !above) return std::nullopt;
  return Predict(items);
}

void ExecutionTimeModel::Forget(int64_t items) {
  if (items < 1 || items >= static_cast<int64_t>(samples_.size())) return;
  average_us_[items] = 0;
  samples_[items] = 0;
}

int ExecutionTimeModel::Samples(int64_t items) const {
  return items >= 1 && items < static_cast<int64_t>(samples_.size()) ? samples_[items] : 0;
}

bool ExecutionTimeModel::Measured(int64_t items) const {
  return items >= 1 && items < static_cast<int64_t>(samples_.size()) &&
         samples_[items] >= kMinSamples;
}

}  // namespace maas::internal
