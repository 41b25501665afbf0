// BatchQueue: the batching policy of one model (which queued requests run together, and when),
// and its deadline admission, apart from tensors, threads and sessions (as TensorFlow's batching
// library keeps its scheduler apart from what a task holds). Time comes in as arguments, so the
// policy is tested directly in microseconds of made-up time (tests/batch_queue_test.cc).
#ifndef MAAS_LIB_BATCH_QUEUE_H_
#define MAAS_LIB_BATCH_QUEUE_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "execution_time_model.h"
#include "fmt/core.h"
#include "maas/batching_options.h"
#include "maas/stats.h"

namespace maas::internal {

// What the policy knows of a request. A queue's task type derives from it.
struct BatchTask {
  int64_t items = 1;  // Rows in dimension 0 (1 for models that are not batchable).
  int priority = 0;
  absl::Time enqueued;
  absl::Time deadline = absl::InfiniteFuture();
  // Tasks share a batch only when their keys match (for tensors: the non-batch dimensions and
  // the device of every input).
  std::vector<int64_t> key;
};

// "1.234 ms", for messages.
std::string Millis(absl::Duration d);

// Checks batching options; InvalidArgument naming the field otherwise.
absl::Status ValidateBatchingOptions(const BatchingOptions& options);

// Why a formed batch is no larger (counted in ModelStats::batch_ends).
enum class BatchEnd { kFull, kNextTooLarge, kDeadline, kPreferred, kQueueEmpty };

// Counts `end` in `counts`.
void CountBatchEnd(BatchEnd end, BatchEndCounts* counts);

// The queue of one model: tasks by priority (highest first), arrival order within one priority.
// It forms batches of tasks with equal keys, at most batch_size_limit() items, in that order; a
// batch runs at once when it is full (the limit, or the next task in order does not fit) or
// adds up to a preferred size, else when its oldest task has waited max_queue_delay. It learns
// the model's execution time per batch size and refuses a task that would finish after its
// deadline (Clockwork's idea), and does not grow a batch so much that it makes one of its tasks
// late.
//
// With adaptive_batching (see BatchingOptions) it also learns from the load:
// - whether requests arrive in step with the answers (Synchronized: blocking callers) or
//   independently, from how many arrive while a batch runs;
// - the items usually in flight (queued + running), from their peak at each Push, lowered to
//   the current count whenever a wait for more goes unrewarded; when arrivals are in step, a
//   free worker's batch waits for that many for a quarter of its predicted execution time;
// - the batch size limit: from 32, while full batches keep coming, it probes double the limit
//   (up to max_batch_size, and while the batches that run side by side could all fill up from
//   the items in flight), then half of it, and keeps the larger only when it is measured 1% or
//   more faster per item (Clipper's additive-increase / multiplicative-decrease, with
//   throughput instead of a latency target); it halves on a failure only a large batch has.
// The owner reports what runs (Form's batches count themselves; StartAlone for tasks run
// without Form) and ends every run with Finished.
//
// This class is thread-compatible: its owner holds its own lock around every call.
template <typename Task>
class BatchQueue {
 public:
  struct Refused {
    std::unique_ptr<Task> task;
    absl::Status status;
  };

  // `label` names the model in messages ("model 'mlp'"). `batchable`: false for a model whose
  // inputs have no batch dimension; its batches hold one task. Options must be valid.
  BatchQueue(std::string label, BatchingOptions options, bool batchable)
      : label_(std::move(label)),
        options_(std::move(options)),
        max_items_(batchable ? options_.max_batch_size : 1),
        adaptive_wait_(options_.adaptive_batching &&
                       options_.max_queue_delay == absl::ZeroDuration()),
        execution_time_(options_.max_batch_size),
        wide_execution_time_(options_.max_batch_size),
        limit_(options_.adaptive_batching ? std::min(max_items_, kFirstLimit) : max_items_) {}

  // Queues `*task` and takes it. Unavailable, leaving it in place, when max_queue_size items
  // would be exceeded.
  absl::Status Push(std::unique_ptr<Task>* task) {
    const int64_t items = (*task)->items;
    if (items_ + items > options_.max_queue_size) {
      return absl::UnavailableError(
          fmt::format("{}: queue full ({} items queued, max_queue_size {}); retry later", label_,
                      items_, options_.max_queue_size));
    }
    ++requests_;
    items_ += items;
    expected_in_flight_ =
        std::max(expected_in_flight_, static_cast<double>(items_ + running_items_));
    CountArrival((*task)->enqueued);
    if ((*task)->deadline != absl::InfiniteFuture()) ++with_deadline_;
    queue_[(*task)->priority].push_back(std::move(*task));
    return absl::OkStatus();
  }

  // DeadlineExceeded when the learned execution time says `task`, started at `now` alone,
  // would finish after its deadline (and relaxes the estimate a little, so that a transient
  // slow run cannot shut the model out); OK otherwise, or before anything was learned.
  absl::Status Admit(const BatchTask& task, absl::Time now) {
    if (task.deadline == absl::InfiniteFuture()) return absl::OkStatus();
    std::optional<absl::Duration> predicted = Predict(task.items);
    if (!predicted || now + *predicted <= task.deadline) return absl::OkStatus();
    execution_time_.Relax();
    wide_execution_time_.Relax();
    return absl::DeadlineExceededError(fmt::format(
        "{}: not started because it would miss its deadline: a batch of {} item(s) takes about "
        "{}, {} remain",
        label_, task.items, Millis(*predicted), Millis(task.deadline - now)));
  }

  // Moves the tasks whose deadline passed, or that Admit refuses, into `refused`. Returns the
  // earliest deadline still queued (InfiniteFuture when none).
  absl::Time RefuseLate(absl::Time now, std::vector<Refused>* refused) {
    absl::Time earliest = absl::InfiniteFuture();
    if (with_deadline_ == 0) return earliest;
    for (auto& [priority, tasks] : queue_) {
      for (auto it = tasks.begin(); it != tasks.end();) {
        Task& task = **it;
        if (task.deadline == absl::InfiniteFuture()) {
          ++it;
          continue;
        }
        absl::Status refusal = now >= task.deadline
                                   ? absl::DeadlineExceededError(fmt::format(
                                         "{}: the deadline passed after {} in the queue", label_,
                                         Millis(now - task.enqueued)))
                                   : Admit(task, now);
        if (refusal.ok()) {
          earliest = std::min(earliest, task.deadline);
          ++it;
          continue;
        }
        Forget(task);
        refused->push_back({std::move(*it), std::move(refusal)});
        it = tasks.erase(it);
      }
    }
    DropEmptyPriorities();
    return earliest;
  }

  // Forms the next batch at `now`. Returns it (tasks in order, counted as running until
  // Finished) when it should run now, or when `flush` (the queue is being drained: nothing
  // waits for company), and sets *end to why it is no larger. Otherwise returns an empty batch
  // and sets *wake_at to when it will be ready at the latest.
  std::vector<std::unique_ptr<Task>> Form(absl::Time now, bool flush, absl::Time* wake_at,
                                          BatchEnd* end) {
    *wake_at = absl::InfiniteFuture();
    *end = BatchEnd::kQueueEmpty;
    awaited_items_ = 0;
    std::vector<std::unique_ptr<Task>> batch;
    if (requests_ == 0) return batch;
    using Position = std::pair<std::list<std::unique_ptr<Task>>*,
                               typename std::list<std::unique_ptr<Task>>::iterator>;
    std::vector<Position> chosen;
    const std::vector<int64_t>* key = nullptr;
    const int64_t cap = BatchCap();
    int64_t items = 0;
    absl::Time earliest_deadline = absl::InfiniteFuture();
    absl::Time oldest = absl::InfiniteFuture();
    bool full = false;  // Nothing more can join: max reached, or the next task cannot.
    for (auto& [priority, tasks] : queue_) {
      for (auto it = tasks.begin(); it != tasks.end() && !full; ++it) {
        const Task& task = **it;
        if (key != nullptr && task.key != *key) continue;  // Another shape: a later batch.
        // (A task larger than the adaptive limit, within max_batch_size, runs alone.)
        if (!chosen.empty() && items + task.items > cap) {
          full = true;
          *end = BatchEnd::kNextTooLarge;
          break;
        }
        // Do not grow a batch so much that its slower execution makes someone late.
        std::optional<absl::Duration> predicted = Predict(items + task.items);
        if (!chosen.empty() && predicted &&
            now + *predicted > std::min(earliest_deadline, task.deadline)) {
          full = true;
          *end = BatchEnd::kDeadline;
          break;
        }
        chosen.emplace_back(&tasks, it);
        key = &task.key;
        items += task.items;
        earliest_deadline = std::min(earliest_deadline, task.deadline);
        oldest = std::min(oldest, task.enqueued);
        full = items >= cap;
        if (full) *end = BatchEnd::kFull;
      }
      if (full) break;
    }

    // With preferred sizes, the longest prefix that adds up to one of them is the batch.
    size_t take = chosen.size();
    bool preferred = false;
    if (!full && !options_.preferred_batch_sizes.empty()) {
      int64_t running = 0;
      for (size_t i = 0; i < chosen.size(); ++i) {
        running += (*chosen[i].second)->items;
        if (std::find(options_.preferred_batch_sizes.begin(), options_.preferred_batch_sizes.end(),
                      running) != options_.preferred_batch_sizes.end()) {
          take = i + 1;
          preferred = true;
        }
      }
      if (preferred) *end = BatchEnd::kPreferred;
    }
    const absl::Time ready_at = oldest + options_.max_queue_delay;
    if (!(full || preferred || flush || now >= ready_at)) {
      *wake_at = ready_at;
      // It runs sooner when it fills up (or adds up to a preferred size: any arrival may).
      if (options_.preferred_batch_sizes.empty()) awaited_items_ = cap;
      return batch;
    }
    if (adaptive_wait_ && !(full || preferred || flush)) {
      int64_t target = 0;
      const absl::Time wait_until = ExpectedCompanyUntil(items, oldest, earliest_deadline, &target);
      if (now < wait_until) {
        *wake_at = wait_until;
        awaited_items_ = target;
        return batch;
      }
      // Waited, or could not wait, in vain: expect only what is in flight now.
      if (wait_until != absl::InfinitePast()) {
        expected_in_flight_ = static_cast<double>(std::max<int64_t>(1, items_ + running_items_));
      }
    }
    for (size_t i = 0; i < take; ++i) {
      auto [tasks, it] = chosen[i];
      Forget(**it);
      running_items_ += (*it)->items;
      batch.push_back(std::move(*it));
      tasks->erase(it);
    }
    Started(items, now);
    DropEmptyPriorities();
    return batch;
  }

  // When the last Form waits for more tasks (returns no batch before *wake_at): the queued items
  // at which it would form the batch at once. 0 when any arrival may make a batch ready. The
  // owner need not wake a waiting worker for arrivals below it: each wake-up would only find
  // the batch still incomplete, and costs a context switch on the cores the model runs on.
  int64_t awaited_items() const { return awaited_items_; }

  // Counts `items` as running from `now`, for a task run without Form (on its caller's thread).
  void StartAlone(int64_t items, absl::Time now) {
    running_items_ += items;
    Started(items, now);
  }

  // Ends a run of `items` items (from Form or StartAlone) at `end`. `elapsed`: its execution
  // time when it succeeded, which teaches the execution time model and the batch size limit.
  // `wide`: it ran on more cores than a batch usually takes (a Scheduler's wide worker); such
  // runs are learned apart, and do not decide the batch size limit (a limit matters under
  // load, where batches run on their usual cores).
  void Finished(int64_t items, absl::Time end, std::optional<absl::Duration> elapsed,
                bool wide = false) {
    running_items_ -= items;
    if (--running_batches_ == 0) running_until_ = absl::InfinitePast();
    if (last_finish_ == absl::InfinitePast() || end > last_finish_) {
      // The echo window after this answer, less what overlaps the previous one's.
      const absl::Duration window = last_finish_ == absl::InfinitePast()
                                        ? kEchoWindow
                                        : std::min(kEchoWindow, end - last_finish_);
      echo_seconds_ += absl::ToDoubleSeconds(window);
      last_finish_ = end;
    }
    if (elapsed) {
      if (wide) {
        wide_execution_time_.Record(items, *elapsed);
      } else {
        execution_time_.Record(items, *elapsed);
        if (options_.adaptive_batching && items >= limit_) FullBatchAtLimit();
      }
    }
    if (narrow_workers_ > 0 && Synchronized()) ChooseWidth(end);
  }

  // A batch of `items` failed although each of its requests succeeded alone: too large for the
  // model or device (out of memory, say). Halves the adaptive limit below it.
  void TooLarge(int64_t items) {
    if (!options_.adaptive_batching || items <= 1) return;
    limit_ = std::max<int64_t>(1, std::min(limit_, items / 2));
    probing_from_ = 0;
    Settle();
  }

  // The execution time of a batch of `items` only when measured at that size or between
  // measured sizes: never extrapolated (a batch far larger than any seen may take far longer
  // than the largest did).
  std::optional<absl::Duration> MeasuredExecution(int64_t items) const {
    std::optional<absl::Duration> usual = execution_time_.Interpolate(items);
    return usual ? usual : wide_execution_time_.Interpolate(items);
  }

  // Whether a request arriving now should expect company soon (more requests are usually in
  // flight), so that running it at once alone would split a batch.
  bool ExpectsCompany() const {
    return adaptive_wait_ && Synchronized() && expected_in_flight_ >= 1.5;
  }

  // Whether requests arrive in step with the answers, as callers that wait for their answer
  // send them: in bursts right after answers, at kBurstFactor times their rate at other times
  // or more. Then waiting for the expected ones pays, and one batch on all cores is the fastest
  // way to answer them. Requests that arrive independently (an open stream) come as often
  // right after an answer as at any other time: waiting for them would only add latency.
  // For callers in step with their answers, a Scheduler can run the batch they make on all its
  // cores at once (wide), or split it over `narrow_workers` batches on one core's share each.
  // Which is faster depends on the model (memory-bound ones gain from one wide batch,
  // compute-bound ones from several narrow ones), so the queue predicts both from the learned
  // execution times (Clockwork's predictability: the same batch takes the same time): the
  // expected items in one wide batch, against one narrow worker's share of them in a narrow
  // batch (measured while the other narrow batches run). It keeps the faster (wide unless
  // narrow wins by 5%). To learn (and relearn, as load and caches change) the way it does not
  // use, it tries that way for kTrialBatches batches (and kTrialTime for wide), first after
  // kMinBatchesBetweenTrials
  // batches, then less and less often while the verdict stands (and the items in flight stay
  // within a quarter of what they were); the verdict is taken at the end of each trial. Call once,
  // before use, when the owner has both kinds of worker.
  void ChooseWidthBetween(int narrow_workers) { narrow_workers_ = std::max(1, narrow_workers); }

  // How many batches the owner runs side by side under load (its workers, but the wide one);
  // the adaptive limit keeps a batch within that share of the items in flight. Call once,
  // before use; 1 by default.
  void SetParallelBatches(int batches) { parallel_batches_ = std::max(1, batches); }

  // Whether the wide way is the one to use now (see ChooseWidthBetween).
  bool PreferWide() const { return narrow_workers_ == 0 || wide_now_; }

  // The most items the next batch takes: the limit, or, when synchronized callers are served by
  // narrow batches side by side, one narrow worker's share of the items expected.
  int64_t BatchCap() const {
    if (PreferWide() || !adaptive_wait_ || !Synchronized()) return limit_;
    const int64_t expected = static_cast<int64_t>(expected_in_flight_ + 0.5);
    return std::max<int64_t>(1, std::min(limit_, NarrowShare(expected)));
  }

  bool Synchronized() const { return synchronized_; }

  // Takes every queued task out, in order (a shutdown that answers them without running).
  std::vector<std::unique_ptr<Task>> TakeAll() {
    std::vector<std::unique_ptr<Task>> all;
    for (auto& [priority, tasks] : queue_) {
      for (std::unique_ptr<Task>& task : tasks) all.push_back(std::move(task));
    }
    queue_.clear();
    requests_ = items_ = with_deadline_ = 0;
    return all;
  }

  bool empty() const { return requests_ == 0; }
  int64_t requests() const { return requests_; }
  int64_t items() const { return items_; }
  int running_batches() const { return running_batches_; }
  // The current limit on a batch's items (max_batch_size without adaptive_batching).
  int64_t batch_size_limit() const { return limit_; }
  // Items usually in flight, as learned (1 without adaptive_batching).
  double expected_in_flight() const { return expected_in_flight_; }

 private:
  void Forget(const Task& task) {
    --requests_;
    items_ -= task.items;
    if (task.deadline != absl::InfiniteFuture()) --with_deadline_;
  }
  // The predicted execution time of `items` items, on a batch's usual cores if known.
  std::optional<absl::Duration> Predict(int64_t items) const {
    std::optional<absl::Duration> usual = execution_time_.Predict(items);
    return usual ? usual : wide_execution_time_.Predict(items);
  }

  // Counts an arrival at `at` for Synchronized, in an echo window (just after an answer) or
  // not. The verdict is taken over epochs of kArrivalsPerVerdict arrivals, comparing the rate in
  // echo windows with the rate outside them in the same epoch (so that a change of load is
  // judged on the new load alone; against the epoch's average rate, answers frequent enough
  // for their windows to cover a third of the time could never be judged in step); until the
  // first verdict, callers count as in step.
  void CountArrival(absl::Time at) {
    if (arrivals_ == 0) observed_since_ = at;
    last_arrival_ = std::max(last_arrival_, at);
    ++arrivals_;
    if (last_finish_ != absl::InfinitePast() && at >= last_finish_ &&
        at - last_finish_ <= kEchoWindow) {
      ++echo_arrivals_;
    }
    if (arrivals_ < kArrivalsPerVerdict) return;
    const double span = absl::ToDoubleSeconds(last_arrival_ - observed_since_);
    const double outside = span - echo_seconds_;  // Seconds not just after an answer.
    if (span > 0 && echo_seconds_ > 0 && outside >= kLeastOutsideShare * span) {
      const double rate_inside = echo_arrivals_ / echo_seconds_;
      const double rate_outside = (arrivals_ - echo_arrivals_) / outside;
      synchronized_ = rate_inside >= kBurstFactor * rate_outside;
    } else if (span > 0) {
      // Nothing answered during a whole epoch of arrivals, or answers so frequent that their
      // echo windows leave no time to compare with: no sign that waiting would pay.
      synchronized_ = false;
    }
    arrivals_ = echo_arrivals_ = echo_seconds_ = 0;
  }

  // After each batch for synchronized callers: the width for the next (see
  // ChooseWidthBetween).
  void ChooseWidth(absl::Time end) {
    if (in_trial_) {
      if (++trial_batches_ < kTrialBatches || end < trial_until_) return;
      in_trial_ = false;
      // The trial ends: a verdict that stands lets the next trial wait twice as long (up to
      // kMaxBatchesBetweenTrials); one that changes the width brings trials back soon.
      const bool before = !wide_now_;
      wide_now_ = WideIsFaster();
      batches_between_trials_ =
          wide_now_ == before ? std::min(2 * batches_between_trials_, kMaxBatchesBetweenTrials)
                              : kMinBatchesBetweenTrials;
      items_at_verdict_ = InStepItems();
      return;
    }
    // Other callers, other batch sizes: the verdict may not hold for them.
    const int64_t items = InStepItems();
    if (4 * std::abs(items - items_at_verdict_) > items_at_verdict_) {
      batches_between_trials_ = kMinBatchesBetweenTrials;
    }
    if (++batches_since_trial_ >= batches_between_trials_) {
      batches_since_trial_ = 0;
      in_trial_ = true;
      trial_batches_ = 0;
      wide_now_ = !wide_now_;
      trial_until_ = wide_now_ ? end + kTrialTime : end;
      // The trial measures afresh the sizes the verdict reads (and those around them): what
      // was measured of that width long ago, under other load or with cold threads, would
      // outweigh the trial's few batches. A trial that measures none of them leaves the
      // verdict wide.
      const int64_t items = InStepItems();
      const int64_t size = wide_now_ ? items : NarrowShare(items);
      ExecutionTimeModel& model = wide_now_ ? wide_execution_time_ : execution_time_;
      for (int64_t n = std::max<int64_t>(1, size / 2); n <= 2 * size; ++n) model.Forget(n);
    }
  }

  // The items of callers in step expected together: the batch they make (wide), or that all the
  // narrow workers' batches make together.
  // One narrow worker's share of `items`.
  int64_t NarrowShare(int64_t items) const {
    return (items + narrow_workers_ - 1) / narrow_workers_;
  }

  int64_t InStepItems() const {
    return std::clamp<int64_t>(static_cast<int64_t>(expected_in_flight_ + 0.5), 1, limit_);
  }

  // Whether one wide batch of the items expected in flight is predicted to take no longer
  // than the narrow batches side by side that share them (with kNarrowMustWinBy's margin:
  // wide answers each caller as soon). Wide when either is not known yet.
  bool WideIsFaster() const {
    const int64_t items = InStepItems();
    const std::optional<absl::Duration> wide = wide_execution_time_.Interpolate(items);
    const std::optional<absl::Duration> narrow = execution_time_.Interpolate(NarrowShare(items));
    if (!wide || !narrow) return true;
    return *narrow * kNarrowMustWinBy >= *wide;
  }

  void Started(int64_t items, absl::Time now) {
    ++running_batches_;
    running_until_ = std::max(running_until_, now + Predict(items).value_or(absl::ZeroDuration()));
  }

  // When a batch of `items` (the oldest task queued at `oldest`) should stop waiting for the
  // requests expected in flight; InfinitePast when it should not wait at all. Some of them may
  // be in a running batch: then it waits for that batch's answers to come back too, so that
  // batches split by chance merge again instead of staying split.
  // *target: the items it waits for.
  absl::Time ExpectedCompanyUntil(int64_t items, absl::Time oldest, absl::Time earliest_deadline,
                                  int64_t* target) const {
    *target = std::min(BatchCap(), static_cast<int64_t>(expected_in_flight_ + 0.5));
    if (items >= *target || !Synchronized()) return absl::InfinitePast();
    std::optional<absl::Duration> predicted = Predict(*target);
    if (!predicted) return absl::InfinitePast();  // Nothing learned yet: no basis to wait.
    absl::Time until = std::max({oldest, last_finish_, running_until_}) + *predicted / 4;
    if (earliest_deadline != absl::InfiniteFuture()) {
      until = std::min(until, earliest_deadline - *predicted);
    }
    return until;
  }

  // A full batch at the limit finished: probe a doubled limit, or judge the probe.
  // How much more throughput per item a batch of `larger` items has than one of `smaller`
  // (both measured).
  double Gain(int64_t larger, int64_t smaller) const {
    return static_cast<double>(larger) / static_cast<double>(smaller) *
           absl::FDivDuration(*execution_time_.Predict(smaller), *execution_time_.Predict(larger));
  }

  // A full batch at the limit finished: judge the probe under way, or start one. A probe runs
  // at double (or half) the limit until kProbeSamples batches of its size are measured afresh,
  // then keeps the larger size only when it is worth kWorthwhileGain more throughput per item
  // (the smallest batch that reaches the model's throughput answers soonest). Probes go up
  // while that pays and the items in flight allow, then down while that loses nothing; after
  // a failed probe down the limit settles, and probes again after batches_before_probing_again_
  // full batches (measurements drift: other load, a warmer cache). That wait doubles each time
  // the limit settles again, from kFirstBatchesBeforeProbingAgain to
  // kMaxBatchesBeforeProbingAgain, and starts over when a probe wins: a probe that noise made
  // fail soon gets another chance (with one wait of 1000, 3 runs in 5 of the MLP with 512 in
  // flight stayed at 128 for most of their 3 s, at 0.80-0.84 of the limit instead of 0.9).
  void FullBatchAtLimit() {
    if (probing_from_ > 0) {
      if (execution_time_.Samples(limit_) < kProbeSamples) return;
      if (execution_time_.Samples(probing_from_) < kProbeSamples) {
        // What the probe is judged against was dropped meanwhile (a width trial measures its
        // sizes afresh): no verdict (a prediction extrapolated from the probe's own size would
        // call any gain none). Back to it, to measure it again and probe then.
        limit_ = probing_from_;
        probing_from_ = 0;
        return;
      }
      const bool up = limit_ > probing_from_;
      const int64_t larger = std::max(limit_, probing_from_);
      const int64_t smaller = std::min(limit_, probing_from_);
      const bool probe_won = (Gain(larger, smaller) >= kWorthwhileGain) == up;
      if (probe_won) {
        batches_before_probing_again_ = kFirstBatchesBeforeProbingAgain;
      } else {
        limit_ = probing_from_;
        if (up) {
          probing_up_ = false;  // Try half once before settling.
        } else {
          Settle();
        }
      }
      probing_from_ = 0;
      return;
    }
    if (settled_) {
      if (++full_batches_since_settled_ < batches_before_probing_again_) return;
      settled_ = false;
      probing_up_ = true;
    }
    if (execution_time_.Samples(limit_) < kProbeSamples) return;
    // Up only within max_batch_size and while batches side by side could all fill up from
    // the items in flight (a larger limit would leave a worker idle while another's batch
    // holds its items).
    if (probing_up_ &&
        (limit_ >= max_items_ ||
         static_cast<double>(limit_ * 2 * parallel_batches_) > expected_in_flight_)) {
      probing_up_ = false;
    }
    const int64_t probe = probing_up_ ? std::min(limit_ * 2, max_items_) : limit_ / 2;
    if (probe < 1) {
      Settle();
      return;
    }
    execution_time_.Forget(probe);  // Judged on fresh measurements, under today's load.
    probing_from_ = limit_;
    limit_ = probe;
  }

  void Settle() {
    settled_ = true;
    full_batches_since_settled_ = 0;
    batches_before_probing_again_ =
        std::min(2 * batches_before_probing_again_, kMaxBatchesBeforeProbingAgain);
  }

  void DropEmptyPriorities() {
    for (auto it = queue_.begin(); it != queue_.end();) {
      it = it->second.empty() ? queue_.erase(it) : std::next(it);
    }
  }

  static constexpr int64_t kFirstLimit = 32;
  // FullBatchAtLimit: the larger of two limits must be this much faster per item to stay, as
  // measured on kProbeSamples batches of the probed size.
  // Full batches at the limit mean the queue is saturated: then throughput decides latency too
  // (requests in flight / throughput), and any measured gain is worth keeping; 1% only keeps
  // noise from doubling a limit that gains nothing.
  static constexpr double kWorthwhileGain = 1.01;
  static constexpr int kProbeSamples = 4;
  static constexpr int64_t kFirstBatchesBeforeProbingAgain = 32;
  static constexpr int64_t kMaxBatchesBeforeProbingAgain = 1024;
  // Synchronized: how long after an answer its callers' next requests count as its echo (a few
  // thread wake-ups), how much faster than on average requests must arrive then, and how many
  // arrivals it judges on.
  static constexpr absl::Duration kEchoWindow = absl::Microseconds(200);
  static constexpr double kBurstFactor = 3;
  static constexpr double kLeastOutsideShare = 0.1;
  static constexpr double kArrivalsPerVerdict = 64;
  // ChooseWidthBetween: the batches of a trial of the other width, the time a trial of wide
  // lasts too, and the batches between trials. A wide trial lasts because its first batches
  // can be slow for reasons that pass within milliseconds: its OpenMP threads wake from sleep,
  // and the kernel may first place the second on the first's core (measured: wide batches of
  // the MLP at 1.5 ms instead of 0.76 for the first few; with trials of 6 batches alone, 3 runs
  // in 10 kept narrow). A narrow worker has no team to wake: its trial is 6 batches (with 20 ms
  // too, narrow trials were a tenth of the MLP's batches in a 3 s run, and cost it 4%).
  static constexpr int kTrialBatches = 6;
  static constexpr absl::Duration kTrialTime = absl::Milliseconds(20);
  static constexpr int kMinBatchesBetweenTrials = 8;
  static constexpr int kMaxBatchesBetweenTrials = 1024;
  static constexpr double kNarrowMustWinBy = 1.05;

  const std::string label_;
  const BatchingOptions options_;
  const int64_t max_items_;
  const bool adaptive_wait_;
  ExecutionTimeModel execution_time_;
  ExecutionTimeModel wide_execution_time_;
  int64_t limit_;             // Items in a batch at most, now.
  int64_t probing_from_ = 0;  // When probing a doubled (halved) limit: the limit before; else 0.
  bool probing_up_ = true;    // The direction of the next probe.
  bool settled_ = false;      // Probes found no better limit (or a batch was too large).
  int64_t full_batches_since_settled_ = 0;
  // Doubles with each settling (Settle); see FullBatchAtLimit.
  int64_t batches_before_probing_again_ = kFirstBatchesBeforeProbingAgain / 2;
  double expected_in_flight_ = 1;
  // For Synchronized: the verdict, and in the current epoch the arrivals, those just after an
  // answer, the seconds of such echo windows, and when the epoch began.
  bool synchronized_ = true;
  double arrivals_ = 0;
  double echo_arrivals_ = 0;
  double echo_seconds_ = 0;
  absl::Time observed_since_ = absl::InfinitePast();
  absl::Time last_arrival_ = absl::InfinitePast();
  // ChooseWidthBetween: narrow workers (0: no choice), the width in use, the batches left in a
  // trial of the other width, and the batches since the last trial.
  int narrow_workers_ = 0;
  int parallel_batches_ = 1;
  bool wide_now_ = true;
  bool in_trial_ = false;
  int trial_batches_ = 0;  // Batches of the trial under way.
  absl::Time trial_until_;
  int batches_since_trial_ = 0;
  int batches_between_trials_ = kMinBatchesBetweenTrials;
  int64_t items_at_verdict_ = 1;  // InStepItems at the last trial's end.
  int64_t running_items_ = 0;
  int running_batches_ = 0;
  absl::Time running_until_ = absl::InfinitePast();  // When the running batches should end.
  absl::Time last_finish_ = absl::InfinitePast();
  std::map<int, std::list<std::unique_ptr<Task>>, std::greater<int>> queue_;
  int64_t requests_ = 0;
  int64_t items_ = 0;
  int64_t with_deadline_ = 0;  // Lets RefuseLate skip the scan when no task has a deadline.
  int64_t awaited_items_ = 0;
};

}  // namespace maas::internal

#endif  // MAAS_LIB_BATCH_QUEUE_H_
