// BatchQueue: which queued requests of one model run together, and when, and deadline admission,
// apart from tensors, threads and sessions (as TensorFlow's batching library). Time comes in as
// arguments: tested in microseconds of made-up time (tests/batching/batch_queue_test.cc).
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
#include "batching/batch_limit_prober.h"
#include "batching/batch_task.h"
#include "batching/company_wait.h"
#include "batching/execution_time_model.h"
#include "fmt/core.h"
#include "maas/batching_options.h"
#include "batching/step_detector.h"
#include "batching/width_chooser.h"

namespace maas::internal {

// "1.234 ms", for messages.
std::string Millis(absl::Duration d);

// Checks batching options; InvalidArgument naming the field otherwise.
absl::Status ValidateBatchingOptions(const BatchingOptions& options);

// The queue of one model: tasks by priority (highest first), arrival order within one priority.
// It forms batches of tasks with equal keys, at most batch_size_limit() items, in that order; a
// batch runs at once when it is full (the limit, or the next task in order does not fit) or
// adds up to a preferred size, else when its oldest task has waited max_queue_delay. It learns
// the model's execution time per batch size and refuses a task that would finish after its
// deadline (Clockwork's idea), and does not grow a batch so much that it makes one of its tasks
// late.
//
// With adaptive_batching (see BatchingOptions), controllers learn from the load, each in a file
// of its own with its states and rules: StepDetector (are callers in step with the answers?),
// InFlightEstimate and CompanyWaitUntil (how long a batch waits for the items usually in
// flight), BatchLimitProber (the limit on a batch's items) and WidthChooser (one wide batch or
// several narrow ones). The queue feeds them arrivals, answers and execution times, and reads
// their decisions; each keeps its own measurements. The owner reports what runs (Form's batches
// count themselves; StartAlone for tasks run without Form) and ends every run with Finished.
//
// This class is thread-compatible: its owner holds its own lock around every call.
template <typename Task>
class BatchQueue {
 public:
  struct Refused {
    std::unique_ptr<Task> task;
    absl::Status status;
  };

  // What Form decided.
  struct Formed {
    // The batch to run now, in order, counted as running until Finished; empty: it waits.
    std::vector<std::unique_ptr<Task>> tasks;
    BatchEnd end = BatchEnd::kQueueEmpty;  // Why the batch is no larger.
    // When it waits: when to form again at the latest, and the queued items at which it would
    // form at once (0: any arrival may). The owner need not wake a waiting worker for arrivals
    // below that: each wake-up would only find the batch still incomplete, and costs a context
    // switch on the cores the model runs on.
    absl::Time wake_at = absl::InfiniteFuture();
    int64_t awaited_items = 0;
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
        limit_prober_(max_items_) {}

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
    in_flight_.Arrived(items_ + running_items_);
    step_.Arrived((*task)->enqueued);
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

  // Forms the next batch at `now`: returns it when it should run now, or when `flush` (the
  // queue is being drained: nothing waits for company); otherwise returns when it will be ready
  // at the latest.
  Formed Form(absl::Time now, bool flush) {
    Formed formed;
    if (requests_ == 0) return formed;
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
          formed.end = BatchEnd::kNextTooLarge;
          break;
        }
        // Do not grow a batch so much that its slower execution makes someone late.
        std::optional<absl::Duration> predicted = Predict(items + task.items);
        if (!chosen.empty() && predicted &&
            now + *predicted > std::min(earliest_deadline, task.deadline)) {
          full = true;
          formed.end = BatchEnd::kDeadline;
          break;
        }
        chosen.emplace_back(&tasks, it);
        key = &task.key;
        items += task.items;
        earliest_deadline = std::min(earliest_deadline, task.deadline);
        oldest = std::min(oldest, task.enqueued);
        full = items >= cap;
        if (full) formed.end = BatchEnd::kFull;
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
      if (preferred) formed.end = BatchEnd::kPreferred;
    }
    const absl::Time ready_at = oldest + options_.max_queue_delay;
    if (!(full || preferred || flush || now >= ready_at)) {
      formed.wake_at = ready_at;
      // It runs sooner when it fills up (or adds up to a preferred size: any arrival may).
      if (options_.preferred_batch_sizes.empty()) formed.awaited_items = cap;
      return formed;
    }
    if (adaptive_wait_ && !(full || preferred || flush)) {
      CompanyWaitInput wait;
      wait.batch_items = items;
      wait.expected_items = std::min(cap, in_flight_.items());
      wait.in_step = step_.InStep();
      wait.predicted = Predict(wait.expected_items);
      wait.oldest = oldest;
      wait.last_answer = step_.last_answer();
      wait.running_until = running_until_;
      wait.earliest_deadline = earliest_deadline;
      const absl::Time wait_until = CompanyWaitUntil(wait);
      if (now < wait_until) {
        formed.wake_at = wait_until;
        formed.awaited_items = wait.expected_items;
        return formed;
      }
      // Waited, or could not wait, in vain.
      if (wait_until != absl::InfinitePast()) in_flight_.WaitedInVain(items_ + running_items_);
    }
    for (size_t i = 0; i < take; ++i) {
      auto [tasks, it] = chosen[i];
      Forget(**it);
      running_items_ += (*it)->items;
      formed.tasks.push_back(std::move(*it));
      tasks->erase(it);
    }
    Started(items, now);
    DropEmptyPriorities();
    return formed;
  }

  // Counts `items` as running from `now`, for a task run without Form (on its caller's thread).
  void StartAlone(int64_t items, absl::Time now) {
    running_items_ += items;
    Started(items, now);
  }

  // Ends a run of `items` items (from Form or StartAlone) at `end`. `elapsed`: its execution
  // time when it succeeded, which the controllers learn from. `wide`: it ran on more cores than
  // a batch usually takes (a Scheduler's wide worker); such runs are learned apart, and do not
  // decide the batch size limit (a limit matters under load, where batches run on their usual
  // cores).
  void Finished(int64_t items, absl::Time end, std::optional<absl::Duration> elapsed,
                bool wide = false) {
    running_items_ -= items;
    if (--running_batches_ == 0) running_until_ = absl::InfinitePast();
    step_.Answered(end);
    if (elapsed) {
      (wide ? wide_execution_time_ : execution_time_).Record(items, *elapsed);
      if (width_) width_->Ran(items, *elapsed, wide);
      if (options_.adaptive_batching && !wide) {
        limit_prober_.Ran(items, *elapsed, {in_flight_.value(), parallel_batches_});
      }
    }
    if (width_ && step_.InStep()) width_->BatchEnded(end, InStepItems());
  }

  // A batch of `items` failed although each of its requests succeeded alone: too large for the
  // model or device (out of memory, say). Halves the adaptive limit below it.
  void TooLarge(int64_t items) {
    if (options_.adaptive_batching) limit_prober_.TooLarge(items);
  }

  // The execution time of a batch of `items` only when measured at that size or between
  // measured sizes: never extrapolated (a batch far larger than any seen may take far longer
  // than the largest did).
  std::optional<absl::Duration> MeasuredExecution(int64_t items) const {
    std::optional<absl::Duration> usual = execution_time_.Interpolate(items);
    return usual ? usual : wide_execution_time_.Interpolate(items);
  }

  // Whether a request arriving now should expect company in its batch soon, so that running
  // it at once alone would split a batch. (Not when its batch could take no one else: a narrow
  // share of 1, where no wait tests the expectation, so it would never fall.)
  bool ExpectsCompany() const {
    return adaptive_wait_ && Synchronized() && std::min(BatchCap(), in_flight_.items()) >= 2;
  }

  // Lets the queue choose, for callers in step, between one wide batch (on all the owner's
  // cores) and several narrow batches side by side, shared by `narrow_workers` (see
  // WidthChooser). Call once, before use, when the owner has both kinds of worker.
  void ChooseWidthBetween(int narrow_workers) {
    width_.emplace(narrow_workers, options_.max_batch_size);
  }

  // How many batches the owner runs side by side under load (its workers, but the wide one);
  // the adaptive limit keeps a batch within that share of the items in flight. Call once,
  // before use; 1 by default.
  void SetParallelBatches(int batches) { parallel_batches_ = std::max(1, batches); }

  // Whether the wide way is the one to use now (see ChooseWidthBetween).
  bool PreferWide() const { return !width_ || width_->wide(); }

  // The most items the next batch takes: the limit, or, when callers in step are served by
  // narrow batches side by side, one narrow worker's share of the items expected.
  int64_t BatchCap() const {
    if (PreferWide() || !adaptive_wait_ || !Synchronized()) return batch_size_limit();
    return std::max<int64_t>(1,
                             std::min(batch_size_limit(), width_->NarrowShare(in_flight_.items())));
  }

  // Whether callers are in step with the answers (see StepDetector).
  bool Synchronized() const { return step_.InStep(); }

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
  int64_t batch_size_limit() const {
    return options_.adaptive_batching ? limit_prober_.limit() : max_items_;
  }
  // Items usually in flight, as learned (1 without adaptive_batching).
  double expected_in_flight() const { return in_flight_.value(); }

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

  // The items callers in step keep in flight together: the batch they make wide, or that the
  // narrow batches make together.
  int64_t InStepItems() const {
    return std::clamp<int64_t>(in_flight_.items(), 1, batch_size_limit());
  }

  void Started(int64_t items, absl::Time now) {
    ++running_batches_;
    running_until_ = std::max(running_until_, now + Predict(items).value_or(absl::ZeroDuration()));
  }

  void DropEmptyPriorities() {
    for (auto it = queue_.begin(); it != queue_.end();) {
      it = it->second.empty() ? queue_.erase(it) : std::next(it);
    }
  }

  const std::string label_;
  const BatchingOptions options_;
  const int64_t max_items_;
  const bool adaptive_wait_;
  // For deadlines and waits: execution times on a batch's usual cores and on the wide worker's.
  ExecutionTimeModel execution_time_;
  ExecutionTimeModel wide_execution_time_;
  // The controllers.
  StepDetector step_;
  InFlightEstimate in_flight_;
  BatchLimitProber limit_prober_;
  std::optional<WidthChooser> width_;  // Only when the owner has wide and narrow workers.
  int parallel_batches_ = 1;
  // What runs.
  int64_t running_items_ = 0;
  int running_batches_ = 0;
  absl::Time running_until_ = absl::InfinitePast();  // When the running batches should end.
  // What waits.
  std::map<int, std::list<std::unique_ptr<Task>>, std::greater<int>> queue_;
  int64_t requests_ = 0;
  int64_t items_ = 0;
  int64_t with_deadline_ = 0;  // Lets RefuseLate skip the scan when no task has a deadline.
};

}  // namespace maas::internal

#endif  // MAAS_LIB_BATCH_QUEUE_H_
