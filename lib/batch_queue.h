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
// It forms batches of tasks with equal keys, at most max_batch_size items, in that order; a
// batch runs at once when it is full (max_batch_size, or the next task in order does not fit)
// or adds up to a preferred size, else when its oldest task has waited max_queue_delay. It
// learns the model's execution time per batch size and refuses a task that would finish after
// its deadline (Clockwork's idea), and does not grow a batch so much that it makes one of its
// tasks late.
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
        execution_time_(options_.max_batch_size) {}

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
    if ((*task)->deadline != absl::InfiniteFuture()) ++with_deadline_;
    queue_[(*task)->priority].push_back(std::move(*task));
    return absl::OkStatus();
  }

  // DeadlineExceeded when the learned execution time says `task`, started at `now` alone,
  // would finish after its deadline (and relaxes the estimate a little, so that a transient
  // slow run cannot shut the model out); OK otherwise, or before anything was learned.
  absl::Status Admit(const BatchTask& task, absl::Time now) {
    if (task.deadline == absl::InfiniteFuture()) return absl::OkStatus();
    std::optional<absl::Duration> predicted = execution_time_.Predict(task.items);
    if (!predicted || now + *predicted <= task.deadline) return absl::OkStatus();
    execution_time_.Relax();
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

  // Forms the next batch at `now`. Returns it (tasks in order) when it should run now, or when
  // `flush` (the queue is being drained: nothing waits for company), and sets *end to why it is
  // no larger. Otherwise returns an empty batch and sets *wake_at to when it will be ready at
  // the latest.
  std::vector<std::unique_ptr<Task>> Form(absl::Time now, bool flush, absl::Time* wake_at,
                                          BatchEnd* end) {
    *wake_at = absl::InfiniteFuture();
    *end = BatchEnd::kQueueEmpty;
    std::vector<std::unique_ptr<Task>> batch;
    if (requests_ == 0) return batch;
    using Position = std::pair<std::list<std::unique_ptr<Task>>*,
                               typename std::list<std::unique_ptr<Task>>::iterator>;
    std::vector<Position> chosen;
    const std::vector<int64_t>* key = nullptr;
    int64_t items = 0;
    absl::Time earliest_deadline = absl::InfiniteFuture();
    absl::Time oldest = absl::InfiniteFuture();
    bool full = false;  // Nothing more can join: max reached, or the next task cannot.
    for (auto& [priority, tasks] : queue_) {
      for (auto it = tasks.begin(); it != tasks.end() && !full; ++it) {
        const Task& task = **it;
        if (key != nullptr && task.key != *key) continue;  // Another shape: a later batch.
        if (items + task.items > max_items_) {
          full = true;
          *end = BatchEnd::kNextTooLarge;
          break;
        }
        // Do not grow a batch so much that its slower execution makes someone late.
        std::optional<absl::Duration> predicted = execution_time_.Predict(items + task.items);
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
        full = items == max_items_;
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
      return batch;
    }
    for (size_t i = 0; i < take; ++i) {
      auto [tasks, it] = chosen[i];
      Forget(**it);
      batch.push_back(std::move(*it));
      tasks->erase(it);
    }
    DropEmptyPriorities();
    return batch;
  }

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

  // Teaches the execution time model one execution of `items` items.
  void RecordExecution(int64_t items, absl::Duration elapsed) {
    execution_time_.Record(items, elapsed);
  }

  bool empty() const { return requests_ == 0; }
  int64_t requests() const { return requests_; }
  int64_t items() const { return items_; }

 private:
  void Forget(const Task& task) {
    --requests_;
    items_ -= task.items;
    if (task.deadline != absl::InfiniteFuture()) --with_deadline_;
  }
  void DropEmptyPriorities() {
    for (auto it = queue_.begin(); it != queue_.end();) {
      it = it->second.empty() ? queue_.erase(it) : std::next(it);
    }
  }

  const std::string label_;
  const BatchingOptions options_;
  const int64_t max_items_;
  ExecutionTimeModel execution_time_;
  std::map<int, std::list<std::unique_ptr<Task>>, std::greater<int>> queue_;
  int64_t requests_ = 0;
  int64_t items_ = 0;
  int64_t with_deadline_ = 0;  // Lets RefuseLate skip the scan when no task has a deadline.
};

}  // namespace maas::internal

#endif  // MAAS_LIB_BATCH_QUEUE_H_
