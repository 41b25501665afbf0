// Server: deploys models from a ModelStore and serves them, swapping versions under load.
#ifndef MAAS_SERVER_H_
#define MAAS_SERVER_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "maas/clock.h"
#include "maas/deploy_options.h"
#include "maas/model_status.h"
#include "maas/request.h"
#include "maas/session.h"
#include "maas/version_policy.h"

namespace maas {

// Open-time options of a Server.
struct ServerOptions {
  // CPU cores the Server's workers may keep busy at once, across all models; as
  // SchedulerOptions::cpu_cores. 0 means all the cores this process may use. Default: 0.
  int cpu_cores = 0;

  // How often the watcher looks at the store and applies what changed (new versions, alias
  // moves) to every deployed model, as Refresh does. Zero: no watcher; call Refresh yourself.
  // Each look reads each deployed model's folder listing and model.json (tens of
  // microseconds). Default: zero.
  absl::Duration watch_interval = absl::ZeroDuration();

  // A cap on the bytes of the weights of all loaded versions (VersionStatus::memory_bytes).
  // To load a version that would not fit, the Server first unloads whole models that are idle
  // (nothing queued or running), least recently used first; they load again on their next
  // request, which waits for the load. A load that cannot fit fails with ResourceExhausted.
  // A version's size is estimated from its artifact before loading. 0: no cap. Default: 0.
  int64_t memory_budget_bytes = 0;

  // Seeds the random draws of canary splits (VersionPolicy::Canary). With a seed, the versions
  // that a sequence of requests from one thread goes to are the same on every run (tests,
  // replays); 0 seeds from the clock. Default: 0.
  uint64_t random_seed = 0;

  // Where time comes from (queue delays, deadlines, statistics). Default: RealClock().
  std::shared_ptr<Clock> clock;
};

// A Server deploys models from a ModelStore and serves them to many application threads: the
// in-process counterpart of Triton's model control and TensorFlow Serving's version manager,
// with the Scheduler's dynamic batching (see maas/scheduler.h) for every version it serves.
//
// Deploying: Deploy loads the versions a model's VersionPolicy names (verified against their
// SHA-256, graph prepared, warmed up) on the given devices and returns once they serve. The
// common case is one line: `server->Deploy("mlp")`.
//
// Swapping under load: when the policy comes to mean another version (a publish under
// "latest", an alias moved, a canary changed, or Deploy called again with other options), the
// Server loads and warms the new version while the old one serves, then switches traffic to
// it at once: requests accepted before the switch finish on the old version (queued ones
// included), later ones go to the new version, none fails and each is answered by exactly one
// version. Then the old version is unloaded and its memory returned to the system. A version
// that fails to load (unreadable, hash mismatch, warm-up error) is refused: the old one keeps
// serving, the version is marked failed with the reason (Describe) and not retried until the
// next Deploy of the model. Loads run on one background thread at a lowered CPU priority, so
// that they take spare cycles rather than the serving threads' (docs/server.md measures it).
//
// Changes reach the Server when Deploy or Refresh is called, or every watch_interval when the
// watcher is on: the store may be written by other processes, or other machines through a
// shared filesystem.
//
// Requests: Submit and Infer behave as the Scheduler's (validation, batching, priorities,
// deadlines, bounded queues) and may name a version in ServerRequestOptions::version. A model that
// is deployed but has no ready version answers Unavailable with the reason.
//
// Threads: one worker per instance, one lifecycle thread (loads, unloads, the watcher).
// Deploy, Undeploy and Refresh wait for the lifecycle thread; calling them from a completion
// callback is FailedPrecondition (it could wait on its own worker).
//
// Lifetime: destroying the Server answers queued requests with Cancelled, lets running
// batches finish and joins every thread. Every accepted request gets exactly one answer.
//
// This class is thread-safe.
//
// Example:
//   auto server = maas::Server::Create("/srv/models");
//   if (!server.ok()) return server.status();
//   if (absl::Status s = (*server)->Deploy("mlp"); !s.ok()) return s;   // latest version
//   absl::StatusOr<std::vector<torch::Tensor>> y = (*server)->Infer("mlp", {x});
//   // Follow an alias instead, with two instances and larger batches:
//   maas::DeployOptions options;
//   options.policy = maas::VersionPolicy::Specific({"stable"});
//   options.instances_per_device = 2;
//   options.batching.max_batch_size = 64;
//   absl::Status s = (*server)->Deploy("resnet", options);
class Server {
 public:
  // Opens the store at `store_root` read-only (the Server never writes it) and starts the
  // lifecycle thread. NotFound / FailedPrecondition: as ModelStore::Open. InvalidArgument:
  // negative cpu_cores or memory_budget_bytes, a negative or infinite watch_interval.
  static absl::StatusOr<std::unique_ptr<Server>> Create(const std::filesystem::path& store_root,
                                                        ServerOptions options = {});

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Deploys model `name`, or deploys it again with new options (a swap, as above). Returns
  // once the policy's versions serve, or with the first error. InvalidArgument: bad name or
  // options. NotFound: the store has no such model, or the policy names a missing version or
  // alias. Errors of Session::Create (DataLoss, FailedPrecondition, ...) when a version fails
  // to load; the model then stays deployed, serving whatever it served before (nothing, on a
  // first deploy), and the watcher keeps following its policy. ResourceExhausted: the memory
  // budget cannot fit it. FailedPrecondition: called from a completion callback.
  absl::Status Deploy(std::string_view name, DeployOptions options = {});

  // Stops serving `name`: new requests answer NotFound, queued and running ones finish, then
  // every version is unloaded and its memory returned. Returns when done. NotFound: not
  // deployed. FailedPrecondition: called from a completion callback.
  absl::Status Undeploy(std::string_view name);

  // Applies the store's current state to every deployed model now (what the watcher does every
  // watch_interval) and returns when done: new versions and alias moves are loaded and swapped
  // in, versions the policies no longer name are unloaded. Returns the first error (the models
  // concerned keep serving what they served). FailedPrecondition: from a completion callback.
  absl::Status Refresh();

  // As Scheduler::Submit, on the version ServerRequestOptions::version names or the policy chooses.
  // Also NotFound when the model is not deployed or does not serve the version named, and
  // Unavailable when it has no ready version. A model unloaded for memory is loaded again
  // first; the request waits for that (its deadline applies), and Submit does not block.
  absl::Status Submit(std::string_view name, std::vector<at::Tensor> inputs,
                      ServerRequestOptions options, InferenceCallback done);

  // As above, and `done` is also told which version answered (the version policy's choice, a
  // canary draw, or the one named): what a network front end reports to its clients.
  absl::Status Submit(std::string_view name, std::vector<at::Tensor> inputs,
                      ServerRequestOptions options, ServedCallback done);

  // As above, with the answer (or Submit's error) in a future.
  std::future<InferenceResult> Submit(std::string_view name, std::vector<at::Tensor> inputs,
                                      ServerRequestOptions options = {});

  // Submits and waits for the answer; as Scheduler::Infer (a lone request on an idle model runs
  // on the calling thread).
  InferenceResult Infer(std::string_view name, std::vector<at::Tensor> inputs,
                        ServerRequestOptions options = {});

  // Describes a deployed model: policy, versions with their state, reason, aliases, traffic
  // share, memory and statistics. NotFound: not deployed.
  absl::StatusOr<ModelStatus> Describe(std::string_view name) const;

  // The version of model `name` that a request naming `version` reaches now, as routing chooses
  // it: a number or an alias when it serves, "latest" for the newest ready version (a newer one
  // still loading is not yet "latest"), empty for the version taking the largest share of
  // requests that name none. A model unloaded for memory answers with the versions that will
  // serve when it loads again. NotFound: not deployed, or no such version served (the message
  // lists what is); InvalidArgument: a malformed version; Unavailable: no version is ready yet
  // (loading, or all failed: the message says why).
  absl::StatusOr<int64_t> ResolveVersion(std::string_view name, std::string_view version) const;

  // The names of the deployed models, sorted.
  std::vector<std::string> Models() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace maas

#endif  // MAAS_SERVER_H_
