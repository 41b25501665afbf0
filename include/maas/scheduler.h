// Scheduler: dynamic batching of concurrent requests onto a model's sessions.
#ifndef MAAS_SCHEDULER_H_
#define MAAS_SCHEDULER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "maas/batching_options.h"
#include "maas/clock.h"
#include "maas/request.h"
#include "maas/session.h"
#include "maas/stats.h"

namespace maas {

template <typename Options>
inline constexpr bool IsServerRequestOptions = std::is_base_of_v<ServerRequestOptions, Options>;

// Open-time options of a Scheduler.
struct SchedulerOptions {
  // CPU cores the scheduler's workers may keep busy at once: a CPU instance takes its session's
  // intra_op_threads cores while it runs a batch and waits when they are taken. CUDA instances
  // take none. 0 means all the cores this process may use: the CPUs of its affinity mask,
  // capped by its cgroup's CPU quota (a container's or pod's CPU limit). Default: 0.
  int cpu_cores = 0;

  // Where time comes from (queue delays, deadlines, statistics). Tests pass a FakeClock.
  // Default: nullptr, meaning RealClock().
  std::shared_ptr<Clock> clock;
};

// A Scheduler serves models to many application threads: each Submit is a small request of one
// or more items; the scheduler queues it, forms batches of requests whose shapes match, runs them
// on the model's sessions (instances) and hands every caller exactly its own rows of the output.
//
// Behaviour and bounds:
// - The machine used, no tuning needed: by default each session is run by a worker per core of
//   the budget, plus one that runs a batch on all the cores when nothing else runs (see
//   BatchingOptions::workers_per_session).
// - No needless waiting: a free worker takes what is queued (up to the batch size limit,
//   highest priority first). With adaptive batching (the default) a partial batch waits only
//   for requests it expects from the recent load (callers just answered), at most a quarter of
//   its predicted execution time; with max_queue_delay > 0 it waits up to that long instead.
//   Infer on an idle model with a lone caller runs on the calling thread, so a request costs
//   one Session::Run plus well under a microsecond; under load batches grow while workers are
//   busy, and their size limit grows while larger batches run measurably faster per item.
// - Validation happens in Submit, against the model's signature: a bad request fails at once
//   (InvalidArgument) and never spoils a batch of good ones. Requests share a batch only when
//   their non-batch dimensions (and devices) match.
// - Backpressure: Submit never blocks; beyond max_queue_size queued items it fails with
//   Unavailable, which callers may retry.
// - Deadlines: a request whose deadline passes while queued completes with DeadlineExceeded
//   without running. Beyond that, the scheduler learns each model's execution time per batch
//   size and does not start a request that would finish after its deadline (DeadlineExceeded at
//   once, instead of wasted compute and a late answer); see docs/scheduler.md.
// - Failures: when a model throws on a batch of several requests, each of them runs again
//   alone, so that only the requests it fails on get its error (Internal) and one bad request
//   does not fail its neighbours; other batches and models go on.
//
// Threads: the scheduler owns the worker threads (BatchingOptions::workers_per_session). Workers
// run batches, then call completion callbacks on the same thread, after releasing every library
// lock; a slow callback delays that worker's next batch, so hand heavy work to your own
// executor. Callbacks must not
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
//   absl::Status added = (*scheduler)->AddModel("mlp", {std::move(session)});  // defaults
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
  // devices), each run by BatchingOptions::workers_per_session worker threads. AlreadyExists:
  // the name is taken. InvalidArgument: no instances, a null one, signatures that differ, or bad
  // batching options (sizes below 1 or max_batch_size above 2^20, workers_per_session above 256,
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
  // signature; more items than max_batch_size; an empty callback),
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

  // A Scheduler serves exactly the sessions it was given: choosing a version is a Server's
  // (ServerRequestOptions::version). These keep a ServerRequestOptions from being passed here
  // and silently losing its version: such a call does not compile.
  template <typename Options, typename = std::enable_if_t<IsServerRequestOptions<Options>>>
  absl::Status Submit(std::string_view, std::vector<at::Tensor>, const Options&,
                      InferenceCallback) = delete;
  template <typename Options, typename = std::enable_if_t<IsServerRequestOptions<Options>>>
  std::future<InferenceResult> Submit(std::string_view, std::vector<at::Tensor>,
                                      const Options&) = delete;
  template <typename Options, typename = std::enable_if_t<IsServerRequestOptions<Options>>>
  InferenceResult Infer(std::string_view, std::vector<at::Tensor>, const Options&) = delete;

  // A snapshot of a model's statistics. NotFound: unknown model.
  absl::StatusOr<ModelStats> Stats(std::string_view name) const;

  // The names of the models served, sorted.
  std::vector<std::string> Models() const;

 private:
  struct Impl;
  explicit Scheduler(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace maas

#endif  // MAAS_SCHEDULER_H_
