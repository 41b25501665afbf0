// WidthChooser: one batch on all cores (wide) or several on one core's share each (narrow), for
// callers in step with their answers. One of BatchQueue's controllers (docs/scheduler.md,
// "Adaptive batching").
#ifndef MAAS_LIB_WIDTH_CHOOSER_H_
#define MAAS_LIB_WIDTH_CHOOSER_H_

#include <cstdint>

#include "absl/time/time.h"
#include "batching/execution_time_model.h"

namespace maas::internal {

// Which width serves callers in step faster depends on the model: memory-bound ones gain from
// one wide batch, compute-bound ones from several narrow ones. The chooser predicts both from
// measured execution times (Clockwork's predictability: the same batch takes the same time): the
// items in step in one wide batch, against one narrow worker's share of them in a narrow batch
// (measured while the other narrow batches run), and keeps the faster, wide unless narrow wins
// by kNarrowMustWinBy (wide answers every caller as soon). To learn, and relearn as load and
// caches change, the width it does not use, it tries that width now and then:
//
//   kWide   --batches_between_trials--> kTryingNarrow --kTrialBatches--> kWide | kNarrow
//   kNarrow --batches_between_trials--> kTryingWide   --kTrialBatches and kTrialTime--> kWide |
//                                                                                      kNarrow
//
// A trial's verdict that keeps the width doubles the batches before the next trial (up to
// kMaxBatchesBetweenTrials); one that changes it, or a change of more than a quarter in the items
// in step since the verdict, brings the next trial back after kMinBatchesBetweenTrials. A trial
// first forgets what it measured of its width around the sizes the verdict reads, so that old
// measurements under other load or with cold threads cannot outweigh its few batches; a trial
// that measures none of them gives the verdict to wide. It keeps its own measurements: what it
// forgets is lost to no other controller. Why a trial of wide also lasts kTrialTime:
// docs/scheduler.md ("Adaptive batching").
//
// This class is thread-compatible.
class WidthChooser {
 public:
  enum class State { kWide, kNarrow, kTryingWide, kTryingNarrow };

  static constexpr int kTrialBatches = 6;
  static constexpr absl::Duration kTrialTime = absl::Milliseconds(20);
  static constexpr int kMinBatchesBetweenTrials = 8;
  static constexpr int kMaxBatchesBetweenTrials = 1024;
  static constexpr double kNarrowMustWinBy = 1.05;

  // `narrow_workers`: how many narrow batches share the items in step (at least 1).
  WidthChooser(int narrow_workers, int64_t max_batch_size);

  // Learns a batch of `items` that ran in `elapsed`, wide or narrow.
  void Ran(int64_t items, absl::Duration elapsed, bool wide);

  // A batch for callers in step ended at `end`, while `in_step_items` items are expected in
  // flight: counts it toward the next trial, or ends the trial under way (see the class
  // comment).
  void BatchEnded(absl::Time end, int64_t in_step_items);

  // Whether the next batches for callers in step run wide.
  bool wide() const { return state_ == State::kWide || state_ == State::kTryingWide; }
  State state() const { return state_; }
  // One narrow worker's share of `items`.
  int64_t NarrowShare(int64_t items) const;

 private:
  bool WideIsFaster(int64_t in_step_items) const;

  const int narrow_workers_;
  ExecutionTimeModel wide_times_;
  ExecutionTimeModel narrow_times_;
  State state_ = State::kWide;
  int trial_batches_ = 0;  // Batches of the trial under way.
  absl::Time trial_until_;
  int batches_since_trial_ = 0;
  int batches_between_trials_ = kMinBatchesBetweenTrials;
  int64_t items_at_verdict_ = 1;  // in_step_items at the last verdict.
};

}  // namespace maas::internal

#endif  // MAAS_LIB_WIDTH_CHOOSER_H_
