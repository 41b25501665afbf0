// Scheduler: dynamic batching of concurrent requests onto a model's sessions.
#ifndef MAAS_SCHEDULER_H_
#define MAAS_SCHEDULER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "maas/clock.h"
#include "maas/internal/mutex.h"
#include "maas/session.h"
#include "maas/stats.h"

namespace maas {

namespace internal {
class CoreBudget;
class ModelQueue;
}  // namespace internal

// Open-time options of a Scheduler.
struct SchedulerOptions {
  // CPU cores the scheduler's workers may keep busy at once: a CPU instance takes its session's
  // intra_op_threads cores while it runs a batch and waits when they are taken. CUDA instances
  // take none. 0 means all the machine's cores. Default: 0.
  int cpu_cores = 0;

  // Where time comes from (queue delays, deadlines, statistics). Tests pass a FakeClock.
  // Default: nullptr, meaning RealClock().
  std::shared_ptr<Clock> clock;
};

// How one model's requests are batched. Set per model in AddModel.
struct BatchingOptions {
  // Most items in one execution. A request may hold 1 to max_batch_size items; it is never
  // split. Default: 32.
  int64_t max_batch_size = 32;

  // How long a partial batch may wait for more requests when an instance is free to run it.
  // Zero runs whatever is queued at once: under load, batches still grow by themselves while
  // instances are busy. Raise it (e.g. 1-5 ms) to trade a bounded latency for fuller batches at
  // moderate load. Default: zero.
  absl::Duration max_queue_delay = absl::ZeroDuration();

  // Batch sizes (items) at which a waiting batch runs without using up max_queue_delay, and to
  // which a formed batch is trimmed when a prefix of its requests adds up to one of them. Empty:
  // only max_batch_size counts. Default: empty.
  std::vector<int64_t> preferred_batch_sizes;

  // Most items waiting for this model; a Submit beyond it fails at once with Unavailable, so
  // that overload turns into fast, retryable refusals instead of unbounded latency.
  // Default: 4096.
  int64_t max_queue_size = 4096;

  // Deadline for requests that set none: a request not started within it completes with
  // DeadlineExceeded. Default: infinite.
  absl::Duration default_timeout = absl::InfiniteDuration();
};

// Per-request options.
struct RequestOptions {
  // Higher runs first. Within one priority, requests run in arrival order. Strict: a steady
  // stream of higher-priority work can starve lower priorities (bound them with deadlines).
  // Default: 0.
  int priority = 0;

  // The request completes with DeadlineExceeded if it cannot start by then, and is not started
  // when the model's learned execution time says it would finish after it. The earlier of
  // deadline and now + timeout applies. Defaults: infinite (BatchingOptions::default_timeout
  // applies when both are infinite).
  absl::Time deadline = absl::InfiniteFuture();
  absl::Duration timeout = absl::InfiniteDuration();

  // Which version answers, for a Server serving several: a number ("3"), an alias ("stable")
  // or "latest", among the versions it serves. Empty: the model's version policy decides (its
  // newest or first version, or the canary split). A Scheduler serves exactly the sessions it
  // was given and refuses a request that names a version (InvalidArgument). Default: empty.
  std::string version;
};

using InferenceResult = absl::StatusOr<std::vector<at::Tensor>>;
using InferenceCallback = absl::AnyInvocable<void(InferenceResult) &&>;

// A Scheduler serves models to many application threads: each Submit is a small request of one
// or more items; the scheduler queues it, forms batches of requests whose shapes match, runs them
// on the model's sessions (instances) and hands every caller exactly its own rows of the output.
//
// Behaviour and bounds:
// - No needless waiting: a free instance takes what is queued at once (up to max_batch_size
//   items, highest priority first). Only with max_queue_delay > 0 does a partial batch wait,
//   at most that long, for company. Infer on an idle model runs on the calling thread, so at
//   low load a request costs one Session::Run plus well under a microsecond; under load batches
//   grow by themselves while instances are busy.
// - Validation happens in Submit, against the model's signature: a bad request fails at once
//   (InvalidArgument) and never spoils a batch of good ones. Requests share a batch only when
//   their non-batch dimensions (and devices) match.
// - Backpressure: Submit never blocks; beyond max_queue_size queued items it fails with
//   Unavailable, which callers may retry.
// - Deadlines: a request whose deadline passes while queued completes with DeadlineExceeded
//   without running. Beyond that, the scheduler learns each model's execution time per batch
//   size and does not start a request that would finish after its deadline (DeadlineExceeded at
//   once, instead of wasted compute and a late answer); see docs/scheduler.md.
// - Failures: a model that throws fails the requests of that batch with its error (Internal);
//   other batches and models go on.
//
// Threads: the scheduler owns one worker thread per instance. Workers run batches, then call
// completion callbacks on the same thread, after releasing every library lock; a slow callback
// delays that instance's next batch, so hand heavy work to your own executor. Callbacks must not
// throw (an exception from one is caught and dropped). CPU workers together keep at most
// SchedulerOptions::cpu_cores cores busy.
//
// Lifetime: RemoveModel drains (finishes queued and running requests); ReplaceModel swaps in new
// instances under load and drains the old ones; neither may be called from a callback
// (FailedPrecondition). Destroying the scheduler
// answers queued requests with Cancelled, lets running batches finish and joins every worker.
// Every accepted request gets exactly one answer.
//
// This class is thread-safe.
//
// Example:
//   auto scheduler = maas::Scheduler::Create();
//   std::vector<std::shared_ptr<maas::Session>> instances = {std::move(session)};
//   maas::BatchingOptions batching;
//   batching.max_batch_size = 64;
//   absl::Status added = (*scheduler)->AddModel("mlp", instances, batching);
//   // From any number of threads:
//   absl::StatusOr<std::vector<torch::Tensor>> out = (*scheduler)->Infer("mlp", {x});
class Scheduler {
 public:
  // InvalidArgument: cpu_cores negative.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(SchedulerOptions options = {});

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler();

  // Serves model `name` with `instances` (sessions of the same signature, possibly on different
  // devices), one worker thread each. AlreadyExists: the name is taken. InvalidArgument: no
  // instances, a null one, signatures that differ, or bad batching options (sizes below 1 or
  // max_batch_size above 2^20,
  // preferred sizes above max_batch_size, a max_batch_size above 1 for a model that is not
  // batchable is ignored: such models run one request at a time).
  absl::Status AddModel(std::string_view name, std::vector<std::shared_ptr<Session>> instances,
                        BatchingOptions options = {});

  // Serves `name` with new instances (typically a newer version's sessions) from now on,
  // under load: requests submitted after it starts go to the new instances; what the old ones
  // had queued and running finishes on them; no request fails because of the swap. Returns once
  // the old instances are drained and their workers joined (the caller's references to the old
  // sessions are then the last). The model's statistics start afresh. Errors as AddModel, and
  // NotFound: unknown model. For swaps driven by a store's versions and aliases, see Server.
  absl::Status ReplaceModel(std::string_view name, std::vector<std::shared_ptr<Session>> instances,
                            BatchingOptions options = {});

  // Stops accepting requests for `name` (Submit then answers NotFound), finishes what is queued
  // and running, joins its workers and returns. NotFound: unknown model. FailedPrecondition:
  // called from a completion callback.
  absl::Status RemoveModel(std::string_view name);

  // Submits a request; `done` is called exactly once, later, on a worker thread, with the
  // outputs (the request's own rows, in the signature's order) or an error (DeadlineExceeded,
  // Internal, Cancelled). When Submit itself fails it returns the error and `done` is never
  // called: NotFound (unknown model, or removed meanwhile), InvalidArgument (inputs against the
  // signature; more items than max_batch_size; an empty callback; a version named),
  // Unavailable (queue full), DeadlineExceeded (the deadline had already passed). Never blocks.
  absl::Status Submit(std::string_view name, std::vector<at::Tensor> inputs, RequestOptions options,
                      InferenceCallback done);

  // As above, with the answer (or Submit's error) in a future.
  std::future<InferenceResult> Submit(std::string_view name, std::vector<at::Tensor> inputs,
                                      RequestOptions options = {});

  // Submits and waits for the answer. When the model is idle (nothing queued, no instance
  // running, max_queue_delay 0), the request runs at once on the calling thread, with the
  // instance's session and cores: a lone request then costs what Session::Run costs, without a
  // handoff to a worker thread and back. Under load it queues like any other request.
  // FailedPrecondition when called from a completion callback: waiting there would block the
  // worker thread that may have to answer it; use Submit.
  InferenceResult Infer(std::string_view name, std::vector<at::Tensor> inputs,
                        RequestOptions options = {});

  // A snapshot of a model's statistics. NotFound: unknown model.
  absl::StatusOr<ModelStats> Stats(std::string_view name) const;

  // The names of the models served, sorted.
  std::vector<std::string> Models() const;

 private:
  Scheduler(std::shared_ptr<Clock> clock, int cpu_cores);
  std::shared_ptr<internal::ModelQueue> Find(std::string_view name) const;
  absl::Status NotServed(std::string_view name) const;
  // Checks instances and options and builds (without starting) a queue for them.
  absl::StatusOr<std::shared_ptr<internal::ModelQueue>> MakeQueue(
      std::string_view name, std::vector<std::shared_ptr<Session>> instances,
      BatchingOptions options, std::string_view verb) const;

  const std::shared_ptr<Clock> clock_;
  const std::unique_ptr<internal::CoreBudget> cores_;
  mutable internal::Mutex mu_;
  std::map<std::string, std::shared_ptr<internal::ModelQueue>, std::less<>> models_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace maas

#endif  // MAAS_SCHEDULER_H_
