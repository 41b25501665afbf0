// One model inside the Scheduler: its request queue, its instances' worker threads, the batch
// forming policy and its statistics.
#ifndef MAAS_LIB_MODEL_QUEUE_H_
#define MAAS_LIB_MODEL_QUEUE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "execution_time_model.h"
#include "histogram.h"
#include "maas/clock.h"
#include "maas/internal/mutex.h"
#include "maas/scheduler.h"
#include "maas/session.h"
#include "maas/stats.h"

namespace maas::internal {

// A counting semaphore of CPU cores shared by every CPU worker of a Scheduler.
// This class is thread-safe.
class CoreBudget {
 public:
  explicit CoreBudget(int cores) : total_(cores), available_(cores) {}
  int total() const { return total_; }
  // Blocks until `n` cores (at most total()) are free and takes them.
  void Acquire(int n);
  // Takes `n` cores if they are free now.
  bool TryAcquire(int n);
  void Release(int n);

 private:
  const int total_;
  Mutex mu_;
  CondVar released_;
  int available_ ABSL_GUARDED_BY(mu_);
};

// One submitted request, owned by the queue until it is answered.
struct Request {
  std::vector<at::Tensor> inputs;
  int64_t items = 1;  // Rows in dimension 0 (1 for models that are not batchable).
  int priority = 0;
  absl::Time enqueued;
  absl::Time deadline = absl::InfiniteFuture();
  // Requests share a batch only when these match: the non-batch dimensions and the device of
  // every input.
  std::vector<int64_t> batch_key;
  InferenceCallback done;
};

// Checks batching options; InvalidArgument naming the field otherwise. Shared by
// Scheduler::AddModel and Server::Deploy.
absl::Status ValidateBatchingOptions(const BatchingOptions& options);

// Answers one request: calls `done` once. Call it outside every library lock; an exception from
// the callback is dropped.
void Answer(InferenceCallback& done, InferenceResult result);

// Whether the calling thread is a Scheduler worker (completion callbacks run there).
bool InSchedulerWorker();

// This class is thread-safe. Lifetime: Start once, Stop once (the destructor stops too).
class ModelQueue {
 public:
  // `label` names the queue in messages, e.g. "model 'mlp'" or "model 'mlp' version 3".
  ModelQueue(std::string label, std::vector<std::shared_ptr<Session>> instances,
             BatchingOptions options, std::shared_ptr<Clock> clock, CoreBudget* cores);
  ~ModelQueue();

  // Starts one worker thread per instance.
  void Start();

  // Validates and queues a request, taking `inputs` and `done`; see Scheduler::Submit for the
  // errors. Returns nullopt, with `inputs` and `done` left as they were, when the queue was
  // stopped before the request got in: the caller routes it again (to a newer queue of the
  // model, or to NotFound), so that a swap or a removal fails no request.
  std::optional<absl::Status> TrySubmit(std::vector<at::Tensor>& inputs,
                                        const RequestOptions& options, InferenceCallback& done);

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

  // The sessions it runs on, one per instance (instances may share a session).
  const std::vector<std::shared_ptr<Session>>& instances() const { return instances_; }

 private:
  // What a worker takes out of the queue in one go: requests to run together, and requests to
  // answer with an error without running.
  struct Work {
    std::vector<std::unique_ptr<Request>> batch;
    std::vector<std::pair<std::unique_ptr<Request>, absl::Status>> refused;
    bool exit = false;
  };

  // Validates a request against the signature and options (InvalidArgument, DeadlineExceeded;
  // counted as failures) and fills in what the queue needs.
  absl::StatusOr<std::unique_ptr<Request>> Prepare(std::vector<at::Tensor> inputs,
                                                   const RequestOptions& options);
  // Queues a prepared request with its callback set, taking it. Unavailable when the queue is
  // full. When the queue was stopped, leaves *request in place.
  absl::Status Enqueue(std::unique_ptr<Request>* request);
  // Runs (on the caller's thread when idle) or queues a prepared request and waits for its
  // answer, taking it; when the queue was stopped, leaves *request in place.
  InferenceResult Infer(std::unique_ptr<Request>* request);
  // Queues a prepared request, as Enqueue.
  absl::Status Push(std::unique_ptr<Request>* request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Under mu_: DeadlineExceeded if the learned execution time says `request` cannot make it.
  absl::Status CheckPredictedDeadline(const Request& request, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop(size_t instance);
  Work NextWork(size_t instance);
  // Under mu_: moves expired and hopeless requests into `refused`; returns the earliest
  // deadline still queued.
  absl::Time RefuseLateRequests(absl::Time now, Work* work) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Under mu_: picks the next batch. Returns true and fills work->batch when it should run now;
  // otherwise sets *wake_at to when it will be ready at the latest.
  bool FormBatch(absl::Time now, Work* work, absl::Time* wake_at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a batch on instance `instance` (which the caller has marked busy) and answers it.
  void Execute(size_t instance, std::vector<std::unique_ptr<Request>> batch);
  void CountAnswer(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records one execution of `items` items in the statistics, and frees the instance.
  void RecordExecution(size_t instance, int64_t items, absl::Time start, absl::Time end, bool ok)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string label_;  // "model 'mlp'" for messages
  const std::vector<std::shared_ptr<Session>> instances_;
  const ModelSignature signature_;
  const BatchingOptions options_;
  const std::shared_ptr<Clock> clock_;
  CoreBudget* const cores_;
  std::vector<std::thread> workers_;

  mutable Mutex mu_;
  CondVar work_available_;
  // Queued requests by priority, highest first; arrival order within one priority.
  std::map<int, std::list<std::unique_ptr<Request>>, std::greater<int>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_requests_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_items_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_with_deadline_ ABSL_GUARDED_BY(mu_) = 0;
  // busy_[i]: instance i is running a batch, on its worker or on a caller's thread (Infer).
  std::vector<bool> busy_ ABSL_GUARDED_BY(mu_);
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // workers exit once the queue is empty
  ExecutionTimeModel execution_time_ ABSL_GUARDED_BY(mu_);
  ModelStats stats_ ABSL_GUARDED_BY(mu_);
  DurationHistogram queue_time_ ABSL_GUARDED_BY(mu_);
  DurationHistogram compute_time_ ABSL_GUARDED_BY(mu_);
};

}  // namespace maas::internal

#endif  // MAAS_LIB_MODEL_QUEUE_H_
