// ModelExecutor: runs one model's (or one version's) requests on its instances: the worker
// threads, the run-on-caller fast path, the executions and the statistics. Which requests run
// together, and when, is decided by its BatchQueue; which worker takes a batch by worker_turn.h;
// a batch runs by batch_run.h.
#ifndef MAAS_LIB_MODEL_EXECUTOR_H_
#define MAAS_LIB_MODEL_EXECUTOR_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "batching/batch_queue.h"
#include "batching/core_budget.h"
#include "batching/executor_request.h"
#include "util/histogram.h"
#include "maas/batching_options.h"
#include "maas/clock.h"
#include "maas/request.h"
#include "maas/session.h"
#include "maas/stats.h"
#include "util/mutex.h"
#include "batching/worker_plan.h"
#include "batching/worker_turn.h"

namespace maas::internal {

// Whether the calling thread is a Scheduler worker (completion callbacks run there).
bool InSchedulerWorker();

// This class is thread-safe. Lifetime: Start once, Stop once (the destructor stops too).
class ModelExecutor {
 public:
  // `label` names the queue in messages, e.g. "model 'mlp'" or "model 'mlp' version 3".
  // `version`: the version its answers say they come from (0 for a Scheduler's model).
  ModelExecutor(std::string label, int64_t version, std::vector<std::shared_ptr<Session>> instances,
                BatchingOptions options, std::shared_ptr<Clock> clock, CoreBudget* cores);
  ~ModelExecutor();

  // Starts the worker threads (BatchingOptions::workers_per_session).
  void Start();

  // Validates and queues a request, taking `inputs` and `reply`; see Scheduler::Submit for the
  // errors, after which `reply` is left as it was (never called). Returns nullopt, with
  // `inputs` and `reply` left as they were, when the queue was stopped before the request got in:
  // the caller routes it again (to a newer queue of the model, or to NotFound), so that a swap or a
  // removal fails no request.
  std::optional<absl::Status> TrySubmit(std::vector<at::Tensor>& inputs,
                                        const RequestOptions& options, Reply& reply);

  // Validates a request and waits for its answer. When the model is idle (nothing queued, no
  // instance running), its cores are free and it does not wait for company (max_queue_delay
  // 0), the request runs at once on the calling thread: no handoff to a worker and back.
  // Otherwise it is queued. nullopt as TrySubmit.
  std::optional<InferenceResult> TryInfer(std::vector<at::Tensor>& inputs,
                                          const RequestOptions& options);

  // Refuses new requests, then either lets the workers finish every queued request (`drain`) or
  // answers the queued ones with Cancelled; running batches finish. Joins the workers.
  void Stop(bool drain);

  ModelStats Stats() const;

  // Whether nothing is queued and no instance is running.
  bool Idle() const;

  // Worker threads serving the model.
  int workers() const { return static_cast<int>(workers_.size()); }

  // The version it serves (0 for a Scheduler's model) and its signature.
  int64_t version() const { return version_; }
  const ModelSignature& signature() const { return instances_.front()->info().signature; }

  // The sessions it runs on, one per instance (instances may share a session).
  const std::vector<std::shared_ptr<Session>>& instances() const { return instances_; }

 private:
  using Worker = WorkerSpec;

  // What a worker takes out of the queue in one go: requests to run together, and requests to
  // answer with an error without running.
  struct Work {
    std::vector<std::unique_ptr<Request>> batch;
    std::vector<BatchQueue<Request>::Refused> refused;
    bool exit = false;
  };

  // Validates a request against the signature and options (InvalidArgument, DeadlineExceeded;
  // counted as failures) and fills in what the batch queue needs.
  absl::StatusOr<std::unique_ptr<Request>> Prepare(std::vector<at::Tensor> inputs,
                                                   const RequestOptions& options);
  // Runs (on the caller's thread when idle) or queues a prepared request and waits for its
  // answer, taking it; when the queue was stopped, leaves *request in place.
  InferenceResult Infer(std::unique_ptr<Request>* request);
  // Runs the request on the calling thread when the model is idle (see TryInfer), taking it,
  // and returns its answer; or leaves it and returns nullopt. `only_if_quick`: only when its
  // learned execution time is known and at most kRunHereAtMost. *refused: the answer is a
  // refusal at admission (its deadline cannot be met), not a run.
  std::optional<InferenceResult> RunHere(std::unique_ptr<Request>* request, bool only_if_quick,
                                         bool* refused);
  // RequestOptions::run_on_calling_thread_when_idle runs requests expected to take at most
  // this long.
  static constexpr absl::Duration kRunHereAtMost = absl::Milliseconds(1);
  // Queues a prepared request, taking it; Unavailable (counted), leaving it in place, when the
  // queue is full. The caller has checked accepting_.
  absl::Status Push(std::unique_ptr<Request>* request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop(size_t worker);
  Work NextWork(size_t worker);
  // What the worker protocol (worker_turn.h) decides from, now.
  TurnSnapshot Snapshot(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes the workers that should take the next batch (WhomToWake).
  void SignalWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  CondVar& WakeUpOf(size_t worker) { return workers_[worker].wide ? wide_work_ : work_available_; }
  // Runs a batch on worker `worker` (which the caller has marked busy) and answers it.
  void Execute(size_t worker, std::vector<std::unique_ptr<Request>> batch);
  void CountAnswer(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds an execution of `items` items that answered `answered` requests with outputs and
  // took `times` (count unused) to request_compute and compute_by_batch_size.
  void RecordComputeTimes(int64_t items, int64_t answered, const ComputeTimes& times)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records one execution of `items` items in the statistics, ends it in the queue and frees
  // the worker. `too_large`: it failed, though each of its requests succeeded alone.
  void RecordExecution(size_t worker, int64_t items, absl::Time start, absl::Time end, bool ok,
                       bool too_large) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string label_;  // "model 'mlp'" for messages
  const int64_t version_;
  const std::vector<std::shared_ptr<Session>> instances_;
  const ModelSignature signature_;
  const BatchingOptions options_;
  const std::shared_ptr<Clock> clock_;
  CoreBudget* const cores_;
  const std::vector<Worker> workers_;
  const bool has_wide_worker_;
  std::vector<std::thread> threads_;

  mutable Mutex mu_;
  CondVar work_available_;  // For the workers that are not wide.
  CondVar wide_work_;
  BatchQueue<Request> queue_ ABSL_GUARDED_BY(mu_);
  // From the last Form that left its batch waiting: the queued items at which it would form at
  // once (BatchQueue::Formed::awaited_items); 0 after a batch formed.
  int64_t awaited_items_ ABSL_GUARDED_BY(mu_) = 0;
  // busy_[i]: worker i's slot is running a batch, on its thread or on a caller's (Infer).
  std::vector<bool> busy_ ABSL_GUARDED_BY(mu_);
  int borrowed_ ABSL_GUARDED_BY(mu_) = 0;  // Slots lent to callers now.
  // The wide worker is waiting for work (not running a batch or calling callbacks), or when
  // it last began to call callbacks (its batch ended, or it took requests to refuse).
  bool wide_waiting_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time wide_answering_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // A narrow worker waits for the grace to pass (then takes the batch unless the wide worker
  // has): the others need not be woken for each arrival meanwhile.
  bool narrow_standing_by_ ABSL_GUARDED_BY(mu_) = false;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // workers exit once the queue is empty
  ModelStats stats_ ABSL_GUARDED_BY(mu_);
  DurationHistogram queue_time_ ABSL_GUARDED_BY(mu_);
  DurationHistogram compute_time_ ABSL_GUARDED_BY(mu_);
};

}  // namespace maas::internal

#endif  // MAAS_LIB_MODEL_EXECUTOR_H_
