#include "batching/width_chooser.h"

#include <algorithm>
#include <cstdlib>
#include <optional>

namespace maas::internal {

WidthChooser::WidthChooser(int narrow_workers, int64_t max_batch_size)
    : narrow_workers_(std::max(1, narrow_workers)),
      wide_times_(max_batch_size),
      narrow_times_(max_batch_size) {}

void WidthChooser::Ran(int64_t items, absl::Duration elapsed, bool wide) {
  (wide ? wide_times_ : narrow_times_).Record(items, elapsed);
}

int64_t WidthChooser::NarrowShare(int64_t items) const {
  return (items + narrow_workers_ - 1) / narrow_workers_;
}

void WidthChooser::BatchEnded(absl::Time end, int64_t in_step_items) {
  if (state_ == State::kTryingWide || state_ == State::kTryingNarrow) {
    if (++trial_batches_ < kTrialBatches || end < trial_until_) return;
    const bool wide_before = state_ == State::kTryingNarrow;
    const bool wide_now = WideIsFaster(in_step_items);
    state_ = wide_now ? State::kWide : State::kNarrow;
    batches_between_trials_ = wide_now == wide_before
                                  ? std::min(2 * batches_between_trials_, kMaxBatchesBetweenTrials)
                                  : kMinBatchesBetweenTrials;
    items_at_verdict_ = in_step_items;
    return;
  }
  // Other callers, other batch sizes: the verdict may not hold for them.
  if (4 * std::abs(in_step_items - items_at_verdict_) > items_at_verdict_) {
    batches_between_trials_ = kMinBatchesBetweenTrials;
  }
  if (++batches_since_trial_ < batches_between_trials_) return;
  batches_since_trial_ = 0;
  trial_batches_ = 0;
  const bool try_wide = state_ == State::kNarrow;
  state_ = try_wide ? State::kTryingWide : State::kTryingNarrow;
  trial_until_ = try_wide ? end + kTrialTime : end;
  const int64_t size = try_wide ? in_step_items : NarrowShare(in_step_items);
  ExecutionTimeModel& times = try_wide ? wide_times_ : narrow_times_;
  for (int64_t n = std::max<int64_t>(1, size / 2); n <= 2 * size; ++n) times.Forget(n);
}

bool WidthChooser::WideIsFaster(int64_t in_step_items) const {
  const std::optional<absl::Duration> wide = wide_times_.Interpolate(in_step_items);
  const std::optional<absl::Duration> narrow =
      narrow_times_.Interpolate(NarrowShare(in_step_items));
  if (!wide || !narrow) return true;
  return *narrow * kNarrowMustWinBy >= *wide;
}

}  // namespace maas::internal
