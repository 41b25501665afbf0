#include "maas/server.h"

#include <algorithm>
#include <map>
#include <thread>

#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "util/cpu_cores.h"
#include "serving/deployment.h"
#include "fmt/core.h"
#include "batching/front_end.h"
#include "serving/lifecycle.h"
#include "batching/model_executor.h"
#include "store/names.h"
#include "util/status_macros.h"

namespace maas {
namespace {

absl::Status ValidatePolicy(const VersionPolicy& policy) {
  auto check_selectors = [&]() -> absl::Status {
    for (const std::string& version : policy.versions) {
      absl::StatusOr<internal::VersionSelector> selector = internal::ParseVersionSelector(version);
      if (!selector.ok()) return selector.status();
    }
    return absl::OkStatus();
  };
  switch (policy.kind) {
    case VersionPolicy::Kind::kLatest:
      if (policy.latest_count < 1) {
        return absl::InvalidArgumentError(
            fmt::format("policy Latest({}): expected a count of 1 or more", policy.latest_count));
      }
      return absl::OkStatus();
    case VersionPolicy::Kind::kSpecific:
      if (policy.versions.empty()) {
        return absl::InvalidArgumentError("policy Specific: no versions given");
      }
      return check_selectors();
    case VersionPolicy::Kind::kCanary:
      if (policy.versions.size() != 2) {
        return absl::InvalidArgumentError(fmt::format(
            "policy Canary: expected 2 versions (stable, canary), got {}", policy.versions.size()));
      }
      if (!(policy.canary_percent >= 0 && policy.canary_percent <= 100)) {
        return absl::InvalidArgumentError(fmt::format(
            "policy Canary: canary_percent is {}; expected 0 to 100", policy.canary_percent));
      }
      return check_selectors();
  }
  return absl::InvalidArgumentError("unknown policy kind");
}

absl::Status ValidateDeployOptions(const DeployOptions& options) {
  MAAS_RETURN_IF_ERROR(ValidatePolicy(options.policy));
  if (options.devices.empty()) return absl::InvalidArgumentError("no devices given");
  constexpr int kMaxInstances = 256;
  if (options.instances_per_device < 1 || options.instances_per_device > kMaxInstances) {
    return absl::InvalidArgumentError(fmt::format("instances_per_device is {}; expected 1 to {}",
                                                  options.instances_per_device, kMaxInstances));
  }
  return internal::ValidateBatchingOptions(options.batching);
}

absl::Status CalledFromCallback(std::string_view what) {
  return absl::FailedPreconditionError(fmt::format(
      "{} called from a completion callback would wait for the thread that may have to finish "
      "that callback's model; call it from another thread",
      what));
}

}  // namespace

struct Server::Impl {
  Impl(std::unique_ptr<ModelStore> store, ServerOptions options, int cores)
      : store(std::move(store)), options(std::move(options)), cores(cores) {
    lifecycle = std::make_unique<internal::Lifecycle>(this->options.watch_interval,
                                                      [this] { (void)RefreshAll(); });
  }

  // Runs `task` on the lifecycle thread and waits for its status.
  absl::Status RunOnLifecycle(absl::AnyInvocable<absl::Status() &&> task, std::string_view what);
  // Server::Submit, with the caller's callback in `reply`.
  absl::Status Submit(std::string_view name, std::vector<at::Tensor> inputs,
                      ServerRequestOptions request_options, internal::Reply& reply);
  // On the lifecycle thread: Deploy.
  absl::Status DeployNow(const std::string& name, DeployOptions options);
  // On the lifecycle thread: makes room for `bytes` more under the memory budget by unloading
  // idle models other than `requester`, least recently used first.
  absl::Status Reserve(int64_t bytes, const internal::Deployment* requester);
  // Reserve on behalf of `requester`, as a Deployment::Reserve (valid for one full expression).
  auto ReserveFor(const internal::Deployment* requester) {
    return [this, requester](int64_t bytes) { return Reserve(bytes, requester); };
  }
  // On the lifecycle thread: loads an unloaded model again for the requests waiting for it.
  void Reload(const std::shared_ptr<internal::Deployment>& deployment);
  // On the lifecycle thread: Refresh.
  absl::Status RefreshAll();
  // Whether the calling thread must not wait for the lifecycle thread or a worker.
  bool OnServingThread() const { return internal::InSchedulerWorker() || lifecycle->OnThread(); }

  const std::unique_ptr<ModelStore> store;
  const ServerOptions options;
  internal::CoreBudget cores;
  internal::ModelRegistry<internal::Deployment> models{"deployed", "deployed"};
  // Last: destroyed first, so that no task runs once the members above go.
  std::unique_ptr<internal::Lifecycle> lifecycle;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  impl_->lifecycle->Stop();  // Finishes the running task; no other starts.
  for (const auto& deployment : impl_->models.TakeAll()) deployment->Shutdown(/*drain=*/false);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const std::filesystem::path& store_root,
                                                       ServerOptions options) {
  if (options.cpu_cores < 0) {
    return absl::InvalidArgumentError(
        fmt::format("cpu_cores is {}; expected 0 (all) or a positive count", options.cpu_cores));
  }
  if (options.watch_interval < absl::ZeroDuration() ||
      options.watch_interval == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        "watch_interval is negative or infinite; expected a finite interval, or zero (no watcher)");
  }
  if (options.memory_budget_bytes < 0) {
    return absl::InvalidArgumentError(fmt::format(
        "memory_budget_bytes is {}; expected 0 (no cap) or more", options.memory_budget_bytes));
  }
  ModelStoreOptions store_options;
  store_options.create_if_missing = false;
  store_options.read_only = true;
  MAAS_ASSIGN_OR_RETURN(std::unique_ptr<ModelStore> store,
                        ModelStore::Open(store_root, store_options));
  int cores = options.cpu_cores;
  if (cores == 0) cores = internal::AvailableCores();
  if (!options.clock) options.clock = RealClock();
  if (options.random_seed == 0) options.random_seed = absl::ToUnixNanos(absl::Now()) | 1;
  return std::unique_ptr<Server>(
      new Server(std::make_unique<Impl>(std::move(store), std::move(options), cores)));
}

absl::Status Server::Impl::RunOnLifecycle(absl::AnyInvocable<absl::Status() &&> task,
                                          std::string_view what) {
  if (OnServingThread()) return CalledFromCallback(what);
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> future = promise->get_future();
  lifecycle->Post([task = std::move(task), promise, what = std::string(what)](bool run) mutable {
    promise->set_value(run ? std::move(task)()
                           : absl::CancelledError(fmt::format(
                                 "{}: the server shut down before it could run", what)));
  });
  return future.get();
}

absl::Status Server::Deploy(std::string_view name, DeployOptions options) {
  MAAS_RETURN_IF_ERROR(internal::ValidateModelName(name));
  if (absl::Status s = ValidateDeployOptions(options); !s.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("cannot deploy model '{}': {}", name, s.message()));
  }
  return impl_->RunOnLifecycle(
      [impl = impl_.get(), name = std::string(name), options = std::move(options)]() mutable {
        return impl->DeployNow(name, std::move(options));
      },
      "Deploy");
}

absl::Status Server::Impl::DeployNow(const std::string& name, DeployOptions deploy_options) {
  // Fail fast, and deploy or change nothing, when the store has no such model or the policy
  // names a version or alias it does not have.
  MAAS_RETURN_IF_ERROR(store->Versions(name).status());
  MAAS_RETURN_IF_ERROR(internal::ResolveTarget(*store, name, deploy_options.policy).status());
  std::shared_ptr<internal::Deployment> deployment = models.Find(name);
  if (deployment != nullptr) {
    deployment->SetOptions(std::move(deploy_options));
  } else {
    // The reload callback finds the deployment through a weak pointer: a stale reload task
    // must not act on a later deployment of the same name.
    auto self = std::make_shared<std::weak_ptr<internal::Deployment>>();
    deployment = std::make_shared<internal::Deployment>(
        name, std::move(deploy_options), options.clock, &cores, options.random_seed, [this, self] {
          lifecycle->Post([this, self](bool run) {
            std::shared_ptr<internal::Deployment> d = self->lock();
            if (d == nullptr) return;
            if (!run) {
              d->ReleaseWaiting(absl::CancelledError("the server is shutting down"));
              return;
            }
            Reload(d);
          });
        });
    *self = deployment;
    models.Add(name, deployment);  // Only this thread adds: the name is free.
  }
  return deployment->Apply(*store, ReserveFor(deployment.get()));
}

absl::Status Server::Undeploy(std::string_view name) {
  return impl_->RunOnLifecycle(
      [impl = impl_.get(), name = std::string(name)]() -> absl::Status {
        std::shared_ptr<internal::Deployment> deployment = impl->models.Remove(name);
        if (deployment == nullptr) return impl->models.NotFound(name);
        deployment->Shutdown(/*drain=*/true);
        return absl::OkStatus();
      },
      "Undeploy");
}

absl::Status Server::Refresh() {
  return impl_->RunOnLifecycle([impl = impl_.get()] { return impl->RefreshAll(); }, "Refresh");
}

absl::Status Server::Impl::RefreshAll() {
  absl::Status first_error;
  for (const auto& deployment : models.All()) {
    if (deployment->unloaded()) continue;  // Loads again on demand, as the store is then.
    absl::Status applied = deployment->Apply(*store, ReserveFor(deployment.get()));
    if (first_error.ok()) first_error = applied;
  }
  return first_error;
}

void Server::Impl::Reload(const std::shared_ptr<internal::Deployment>& deployment) {
  absl::Status loaded = deployment->Restore(*store, ReserveFor(deployment.get()));
  // A partial failure (one version of several) still serves the waiting requests.
  if (!deployment->unloaded()) {
    loaded = absl::OkStatus();
  } else if (loaded.ok()) {
    loaded = absl::UnavailableError("no version of the policy could be loaded");
  }
  deployment->ReleaseWaiting(loaded);
}

absl::Status Server::Impl::Reserve(int64_t bytes, const internal::Deployment* requester) {
  const int64_t budget = options.memory_budget_bytes;
  if (budget == 0) return absl::OkStatus();
  std::vector<internal::ModelMemory> memory;
  std::map<std::string, std::shared_ptr<internal::Deployment>, std::less<>> by_name;
  for (const auto& deployment : models.All()) {
    memory.push_back({deployment->name(), deployment->memory_bytes(),
                      deployment.get() != requester && deployment->Idle(),
                      deployment->last_used()});
    by_name.emplace(deployment->name(), deployment);
  }
  MAAS_ASSIGN_OR_RETURN(std::vector<std::string> victims,
                        internal::PlanEviction(memory, requester->name(), bytes, budget));
  for (const std::string& name : victims) {
    by_name.at(name)->Unload(
        fmt::format("unloaded to make room for model '{}' (memory budget {} bytes)",
                    requester->name(), budget));
  }
  return absl::OkStatus();
}

absl::Status Server::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                            ServerRequestOptions options, InferenceCallback done) {
  if (absl::Status s = internal::CheckCallback(done); !s.ok()) return s;
  internal::Reply reply(std::move(done));
  return impl_->Submit(name, std::move(inputs), std::move(options), reply);
}

absl::Status Server::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                            ServerRequestOptions options, ServedCallback done) {
  if (absl::Status s = internal::CheckCallback(done); !s.ok()) return s;
  internal::Reply reply(std::move(done));
  return impl_->Submit(name, std::move(inputs), std::move(options), reply);
}

absl::Status Server::Impl::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                                  ServerRequestOptions request_options, internal::Reply& reply) {
  std::shared_ptr<internal::Deployment> deployment = models.Find(name);
  if (deployment == nullptr) return models.NotFound(name);
  return deployment->Submit(std::move(inputs), std::move(request_options), reply);
}

std::future<InferenceResult> Server::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                                            ServerRequestOptions options) {
  return internal::SubmitForFuture([&](InferenceCallback done) {
    return Submit(name, std::move(inputs), std::move(options), std::move(done));
  });
}

InferenceResult Server::Infer(std::string_view name, std::vector<at::Tensor> inputs,
                              ServerRequestOptions options) {
  if (impl_->OnServingThread()) {
    return absl::FailedPreconditionError(
        "Infer called from a completion callback (a worker thread) would block it; use Submit "
        "with a callback there");
  }
  std::shared_ptr<internal::Deployment> deployment = impl_->models.Find(name);
  if (deployment == nullptr) return impl_->models.NotFound(name);
  return deployment->Infer(std::move(inputs), std::move(options));
}

absl::StatusOr<ModelStatus> Server::Describe(std::string_view name) const {
  std::shared_ptr<internal::Deployment> deployment = impl_->models.Find(name);
  if (deployment == nullptr) return impl_->models.NotFound(name);
  return deployment->Describe();
}

absl::StatusOr<int64_t> Server::ResolveVersion(std::string_view name,
                                               std::string_view version) const {
  std::shared_ptr<internal::Deployment> deployment = impl_->models.Find(name);
  if (deployment == nullptr) return impl_->models.NotFound(name);
  return deployment->ResolveVersion(version);
}

std::vector<std::string> Server::Models() const { return impl_->models.Names(); }

// --- Small value types --------------------------------------------------------------------

VersionPolicy VersionPolicy::Latest(int count) {
  VersionPolicy policy;
  policy.kind = Kind::kLatest;
  policy.latest_count = count;
  return policy;
}

VersionPolicy VersionPolicy::Specific(std::vector<std::string> versions) {
  VersionPolicy policy;
  policy.kind = Kind::kSpecific;
  policy.versions = std::move(versions);
  return policy;
}

VersionPolicy VersionPolicy::Canary(std::string stable, std::string canary, double canary_percent) {
  VersionPolicy policy;
  policy.kind = Kind::kCanary;
  policy.versions = {std::move(stable), std::move(canary)};
  policy.canary_percent = canary_percent;
  return policy;
}

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kLoading:
      return "loading";
    case ModelState::kReady:
      return "ready";
    case ModelState::kUnloading:
      return "unloading";
    case ModelState::kUnloaded:
      return "unloaded";
    case ModelState::kFailed:
      return "failed";
  }
  return "unknown";
}

}  // namespace maas
