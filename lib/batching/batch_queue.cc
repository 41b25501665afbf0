#include "batching/batch_queue.h"

namespace maas::internal {

void CountBatchEnd(BatchEnd end, BatchEndCounts* counts) {
  switch (end) {
    case BatchEnd::kFull:
      ++counts->full;
      return;
    case BatchEnd::kNextTooLarge:
      ++counts->next_too_large;
      return;
    case BatchEnd::kDeadline:
      ++counts->deadline;
      return;
    case BatchEnd::kPreferred:
      ++counts->preferred;
      return;
    case BatchEnd::kQueueEmpty:
      ++counts->queue_empty;
      return;
  }
}

std::string Millis(absl::Duration d) {
  return fmt::format("{:.3f} ms", absl::ToDoubleMilliseconds(d));
}

absl::Status ValidateBatchingOptions(const BatchingOptions& options) {
  auto invalid = [](std::string why) { return absl::InvalidArgumentError(std::move(why)); };
  if (options.max_batch_size < 1) {
    return invalid(fmt::format("max_batch_size is {}; expected 1 or more", options.max_batch_size));
  }
  constexpr int64_t kMaxBatchSize = int64_t{1} << 20, kMaxQueueSize = int64_t{1} << 40;
  if (options.max_batch_size > kMaxBatchSize) {
    return invalid(fmt::format("max_batch_size is {}; at most {} is supported",
                               options.max_batch_size, kMaxBatchSize));
  }
  if (options.max_queue_size > kMaxQueueSize) {
    return invalid(fmt::format("max_queue_size is {}; at most {} is supported",
                               options.max_queue_size, kMaxQueueSize));
  }
  if (options.max_queue_size < options.max_batch_size) {
    return invalid(fmt::format("max_queue_size {} is below max_batch_size {}",
                               options.max_queue_size, options.max_batch_size));
  }
  if (options.max_queue_delay < absl::ZeroDuration()) return invalid("max_queue_delay is negative");
  if (options.max_queue_delay == absl::InfiniteDuration()) {
    // A lone request would wait for company forever.
    return invalid("max_queue_delay is infinite; expected a finite delay (zero: none)");
  }
  if (options.default_timeout <= absl::ZeroDuration()) {
    return invalid("default_timeout must be positive (or infinite)");
  }
  constexpr int kMaxWorkersPerSession = 256;
  if (options.workers_per_session < 0 || options.workers_per_session > kMaxWorkersPerSession) {
    return invalid(fmt::format("workers_per_session is {}; expected 0 (automatic) to {}",
                               options.workers_per_session, kMaxWorkersPerSession));
  }
  for (int64_t size : options.preferred_batch_sizes) {
    if (size < 1 || size > options.max_batch_size) {
      return invalid(fmt::format("preferred batch size {} is outside 1..max_batch_size ({})", size,
                                 options.max_batch_size));
    }
  }
  return absl::OkStatus();
}

}  // namespace maas::internal
