// Learns how long a model takes per batch size, online, to predict whether a request can still
// meet its deadline (the idea of Clockwork, OSDI'20).
#ifndef MAAS_LIB_EXECUTION_TIME_MODEL_H_
#define MAAS_LIB_EXECUTION_TIME_MODEL_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/time/time.h"

namespace maas::internal {

// This class is thread-compatible: callers hold their own lock.
class ExecutionTimeModel {
 public:
  explicit ExecutionTimeModel(int64_t max_batch_size);

  // Records one execution of `items` items that took `elapsed`.
  void Record(int64_t items, absl::Duration elapsed);

  // Lowers every prediction by 10%. Called for each request refused on a prediction, so that a
  // transient slow run (contention, a re-specialising graph) cannot shut a model out for good:
  // refusals pull the estimate down until requests run and measure again.
  void Relax();

  // Predicts the execution time of a batch of `items`, or nothing before the model has seen
  // enough executions to say. It errs low (a prediction is used to refuse work, so it must not
  // refuse what could have made it): between two measured sizes it interpolates; beyond the
  // largest it reuses the largest's time; below the smallest it scales down proportionally.
  std::optional<absl::Duration> Predict(int64_t items) const;

  // The prediction for `items` only when it rests on measurements of that size or of sizes on
  // both sides of it (no extrapolation): for comparing two ways of running the same items.
  std::optional<absl::Duration> Interpolate(int64_t items) const;

  // Forgets what was measured of batches of exactly `items`, to measure them afresh.
  void Forget(int64_t items);

  // How many batches of exactly `items` were measured.
  int Samples(int64_t items) const;

  // Whether batches of exactly `items` have been measured often enough to predict.
  bool Measured(int64_t items) const;

 private:
  static constexpr int kMinSamples = 2;
  // Weight of the newest sample in the average: more when it is faster, so that the slow first
  // runs of a cold thread or cache fade within a few runs, and the estimate errs low.
  static constexpr double kSmoothing = 0.2;
  static constexpr double kSmoothingWhenFaster = 0.5;

  std::vector<double> average_us_;  // by batch size
  std::vector<int> samples_;
};

}  // namespace maas::internal

#endif  // MAAS_LIB_EXECUTION_TIME_MODEL_H_
