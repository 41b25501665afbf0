// One model deployed in a Server: its versions, their queues, and the routing of requests to
// them, swapped whole when versions change.
#ifndef MAAS_LIB_DEPLOYMENT_H_
#define MAAS_LIB_DEPLOYMENT_H_

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "maas/clock.h"
#include "maas/deploy_options.h"
#include "maas/model_status.h"
#include "maas/model_store.h"
#include "maas/request.h"
#include "batching/model_executor.h"
#include "util/mutex.h"
#include "serving/refusal_counts.h"
#include "serving/routes.h"
#include "serving/version_loader.h"
#include "serving/version_plan.h"
#include "serving/waiting_room.h"

namespace maas::internal {

// A deployed model. Request-path methods may be called from any thread; the lifecycle methods
// only from the Server's lifecycle thread (they are not reentrant). This class is thread-safe.
class Deployment {
 public:
  using Reserve = internal::Reserve;

  // `on_unloaded_request` is called (outside any lock) when a request arrives while the model
  // is unloaded for memory and no reload was asked for yet: the Server then posts a reload.
  // `random_seed` seeds the canary split's draws (ServerOptions::random_seed, resolved).
  Deployment(std::string name, DeployOptions options, std::shared_ptr<Clock> clock,
             CoreBudget* cores, uint64_t random_seed, std::function<void()> on_unloaded_request);
  ~Deployment();

  // --- Request path ---
  // As Server::Submit; on an error `reply` is left as it was (never called).
  absl::Status Submit(std::vector<at::Tensor> inputs, ServerRequestOptions options, Reply& reply);
  InferenceResult Infer(std::vector<at::Tensor> inputs, ServerRequestOptions options);

  // --- Lifecycle thread ---
  // Replaces the options; the next Apply reloads every version when they change how versions
  // are loaded or batched. Clears the failures so that failed versions are tried again.
  void SetOptions(DeployOptions options);
  // Brings the served versions in line with the policy and the store: loads what it newly
  // names (and reloads what new options made stale), switches the routes, unloads what it no
  // longer names. Returns the first error; what served before keeps serving in place of a
  // version that failed.
  absl::Status Apply(const ModelStore& store, Reserve reserve);
  // After Unload: loads again exactly the versions that served, with the same split (Apply
  // follows the policy on the next refresh); Apply when there is nothing to restore.
  absl::Status Restore(const ModelStore& store, Reserve reserve);
  // Unloads every version (memory budget); requests then wait for Apply.
  void Unload(const std::string& reason);
  // Re-routes the requests that waited for a reload after Apply, or answers them with
  // `load_status` when it failed.
  void ReleaseWaiting(const absl::Status& load_status);
  // Stops serving: new requests are NotFound; queued requests finish (`drain`) or are
  // Cancelled; every version is unloaded.
  void Shutdown(bool drain);

  // --- Any thread ---
  ModelStatus Describe() const;
  // As Server::ResolveVersion.
  absl::StatusOr<int64_t> ResolveVersion(std::string_view selector) const;
  int64_t memory_bytes() const;
  // Nothing queued, running or waiting for a reload.
  bool Idle() const;
  bool unloaded() const;
  absl::Time last_used() const { return absl::FromUnixNanos(last_used_.load()); }
  const std::string& name() const { return name_; }

 private:
  // A version the model has: what the plans know of it, and what carrying them out keeps.
  struct Version : VersionFacts {
    absl::Time since;
    std::shared_ptr<ModelExecutor> queue;  // While ready (or being unloaded).
    int64_t memory_bytes = 0;
  };
  enum class Parked { kWaiting, kRouteAgain, kFull };

  Route Pick(std::string_view version);
  // The one way of a request: routes it and hands it, arranged by name if it names its inputs,
  // to the chosen version's executor with `deliver(executor, inputs)`, or, while the model is
  // unloaded for memory, to `park()`. Either returns nullopt, leaving the request as it was,
  // when the routes changed meanwhile: then it is routed again.
  template <typename Result, typename Deliver, typename ParkIt>
  Result RouteAndDeliver(std::vector<at::Tensor>& inputs, const ServerRequestOptions& options,
                         Deliver deliver, ParkIt park);
  // Puts `request` in the waiting room (kWaiting), unless the routes changed meanwhile
  // (kRouteAgain) or the room is full (kFull); then it is left as it was.
  Parked Park(WaitingRequest& request);
  // Loads and routes as the plans say for `target`. Sets *vanished when a version it meant to
  // load was removed from the store meanwhile (Apply then resolves the policy again).
  absl::Status ApplyTarget(const ModelStore& store, Reserve reserve, const DeployOptions& options,
                           const Target& target, bool* vanished);
  // What the plans need to know of every version.
  std::map<int64_t, VersionFacts> Facts() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The queue of `version` from `fresh` (just loaded), else of a ready version, else null.
  std::shared_ptr<ModelExecutor> ReadyQueue(
      int64_t version, const std::map<int64_t, std::shared_ptr<ModelExecutor>>& fresh) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops retired queues (draining them), then forgets the versions that had them.
  void Retire(std::vector<std::pair<int64_t, std::shared_ptr<ModelExecutor>>> retired);
  void SetState(int64_t version, ModelState state, std::string reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string name_;
  const std::string label_;  // "model 'mlp'"
  const std::shared_ptr<Clock> clock_;
  CoreBudget* const cores_;
  const uint64_t random_seed_;
  std::atomic<uint64_t> draws_{0};  // Draws of the canary split so far.
  const std::function<void()> on_unloaded_request_;
  std::atomic<int64_t> last_used_;
  RefusalCounts refused_;

  mutable Mutex mu_;
  std::shared_ptr<const Routes> routes_ ABSL_GUARDED_BY(mu_);
  DeployOptions options_ ABSL_GUARDED_BY(mu_);
  // Bytes of versions loaded by the running Apply and not yet published in versions_.
  int64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The split when the model was unloaded for memory, for Restore.
  Split unloaded_split_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Version> versions_ ABSL_GUARDED_BY(mu_);
  WaitingRoom waiting_room_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time last_refresh_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace maas::internal

#endif  // MAAS_LIB_DEPLOYMENT_H_
