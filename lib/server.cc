#include "maas/server.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_join.h"
#include "absl_compat.h"
#include "deployment.h"
#include "fmt/core.h"
#include "lifecycle.h"
#include "model_queue.h"
#include "names.h"
#include "status_macros.h"

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

Server::Server(std::unique_ptr<ModelStore> store, ServerOptions options, int cores)
    : store_(std::move(store)),
      options_(std::move(options)),
      cores_(std::make_unique<internal::CoreBudget>(cores)) {
  lifecycle_ = std::make_unique<internal::Lifecycle>(options_.watch_interval,
                                                     [this] { (void)RefreshAll(); });
}

Server::~Server() {
  lifecycle_->Stop();  // Finishes the running task; no other starts.
  std::vector<std::shared_ptr<internal::Deployment>> deployments;
  {
    internal::MutexLock lock(&mu_);
    for (auto& [name, deployment] : models_) deployments.push_back(std::move(deployment));
    models_.clear();
  }
  for (const auto& deployment : deployments) deployment->Shutdown(/*drain=*/false);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const std::filesystem::path& store_root,
                                                       ServerOptions options) {
  if (options.cpu_cores < 0) {
    return absl::InvalidArgumentError(
        fmt::format("cpu_cores is {}; expected 0 (all) or a positive count", options.cpu_cores));
  }
  if (options.watch_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("watch_interval is negative; expected zero (no watcher)");
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
  if (cores == 0) cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!options.clock) options.clock = RealClock();
  return std::unique_ptr<Server>(new Server(std::move(store), std::move(options), cores));
}

absl::Status Server::RunOnLifecycle(absl::AnyInvocable<absl::Status() &&> task,
                                    std::string_view what) {
  if (internal::InSchedulerWorker() || lifecycle_->OnThread()) return CalledFromCallback(what);
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> future = promise->get_future();
  lifecycle_->Post([task = std::move(task), promise, what = std::string(what)](bool run) mutable {
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
  return RunOnLifecycle(
      [this, name = std::string(name), options = std::move(options)]() mutable -> absl::Status {
        // Fail fast, and deploy nothing, when the store has no such model.
        MAAS_RETURN_IF_ERROR(store_->Versions(name).status());
        std::shared_ptr<internal::Deployment> deployment = Find(name);
        if (deployment != nullptr) {
          // A redeploy whose policy does not resolve changes nothing.
          MAAS_RETURN_IF_ERROR(deployment->CheckPolicy(*store_, options.policy));
          deployment->SetOptions(std::move(options));
        } else {
          // The reload callback finds the deployment through a weak pointer: a stale reload
          // task must not act on a later deployment of the same name.
          auto self = std::make_shared<std::weak_ptr<internal::Deployment>>();
          deployment = std::make_shared<internal::Deployment>(
              name, std::move(options), options_.clock, cores_.get(), [this, self] {
                lifecycle_->Post([this, self](bool run) {
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
          internal::MutexLock lock(&mu_);
          models_.emplace(name, deployment);
        }
        internal::Deployment* self = deployment.get();
        return deployment->Apply(*store_,
                                 [this, self](int64_t bytes) { return Reserve(bytes, self); });
      },
      "Deploy");
}

absl::Status Server::Undeploy(std::string_view name) {
  return RunOnLifecycle(
      [this, name = std::string(name)]() -> absl::Status {
        std::shared_ptr<internal::Deployment> deployment;
        {
          internal::MutexLock lock(&mu_);
          auto it = models_.find(name);
          if (it != models_.end()) {
            deployment = std::move(it->second);
            models_.erase(it);
          }
        }
        if (deployment == nullptr) return NotDeployed(name);
        deployment->Shutdown(/*drain=*/true);
        return absl::OkStatus();
      },
      "Undeploy");
}

absl::Status Server::Refresh() {
  return RunOnLifecycle([this] { return RefreshAll(); }, "Refresh");
}

absl::Status Server::RefreshAll() {
  std::vector<std::shared_ptr<internal::Deployment>> deployments;
  {
    internal::MutexLock lock(&mu_);
    for (const auto& [name, deployment] : models_) deployments.push_back(deployment);
  }
  absl::Status first_error;
  for (const auto& deployment : deployments) {
    if (deployment->unloaded()) continue;  // Loads again on demand, as the store is then.
    internal::Deployment* self = deployment.get();
    absl::Status applied =
        deployment->Apply(*store_, [this, self](int64_t bytes) { return Reserve(bytes, self); });
    if (first_error.ok()) first_error = applied;
  }
  return first_error;
}

void Server::Reload(const std::shared_ptr<internal::Deployment>& deployment) {
  internal::Deployment* self = deployment.get();
  absl::Status loaded =
      deployment->Restore(*store_, [this, self](int64_t bytes) { return Reserve(bytes, self); });
  // A partial failure (one version of several) still serves the waiting requests.
  if (!deployment->unloaded()) {
    loaded = absl::OkStatus();
  } else if (loaded.ok()) {
    loaded = absl::UnavailableError("no version of the policy could be loaded");
  }
  deployment->ReleaseWaiting(loaded);
}

absl::Status Server::Reserve(int64_t bytes, const internal::Deployment* requester) {
  const int64_t budget = options_.memory_budget_bytes;
  if (budget == 0) return absl::OkStatus();
  std::vector<std::shared_ptr<internal::Deployment>> deployments;
  {
    internal::MutexLock lock(&mu_);
    for (const auto& [name, deployment] : models_) deployments.push_back(deployment);
  }
  // What is in use, and what unloading every idle model but the requester would free.
  int64_t used = 0, freeable = 0;
  std::vector<std::string> busy;
  std::vector<std::pair<absl::Time, std::shared_ptr<internal::Deployment>>> idle;
  for (const auto& deployment : deployments) {
    const int64_t bytes_in_use = deployment->memory_bytes();
    used += bytes_in_use;
    if (deployment.get() == requester || bytes_in_use == 0) continue;
    if (deployment->Idle()) {
      freeable += bytes_in_use;
      idle.emplace_back(deployment->last_used(), deployment);
    } else {
      busy.push_back(deployment->name());
    }
  }
  if (used + bytes <= budget) return absl::OkStatus();
  if (used - freeable + bytes > budget) {
    // Unloading would not make room: unload nothing.
    return absl::ResourceExhaustedError(fmt::format(
        "memory budget of {} bytes: {} in use, {} more needed for model '{}'; unloading every "
        "idle model would free only {} (busy models: {})",
        budget, used, bytes, requester->name(), freeable,
        busy.empty() ? "none" : absl::StrJoin(busy, ", ")));
  }
  // Least recently used first.
  std::sort(idle.begin(), idle.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [last_used, victim] : idle) {
    if (used + bytes <= budget) break;
    used -= victim->memory_bytes();
    victim->Unload(fmt::format("unloaded to make room for model '{}' (memory budget {} bytes)",
                               requester->name(), budget));
  }
  return absl::OkStatus();
}

std::shared_ptr<internal::Deployment> Server::Find(std::string_view name) const {
  internal::MutexLock lock(&mu_);
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

absl::Status Server::NotDeployed(std::string_view name) const {
  std::vector<std::string> deployed = Models();
  return absl::NotFoundError(
      fmt::format("model '{}' is not deployed (deployed: {})", name,
                  deployed.empty() ? "none" : absl::StrJoin(deployed, ", ")));
}

absl::Status Server::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                            RequestOptions options, InferenceCallback done) {
  if (!done) return absl::InvalidArgumentError("Submit needs a completion callback");
  std::shared_ptr<internal::Deployment> deployment = Find(name);
  if (deployment == nullptr) return NotDeployed(name);
  return deployment->Submit(std::move(inputs), std::move(options), std::move(done));
}

std::future<InferenceResult> Server::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                                            RequestOptions options) {
  auto promise = std::make_shared<std::promise<InferenceResult>>();
  std::future<InferenceResult> future = promise->get_future();
  absl::Status submitted =
      Submit(name, std::move(inputs), std::move(options),
             [promise](InferenceResult result) { promise->set_value(std::move(result)); });
  if (!submitted.ok()) promise->set_value(std::move(submitted));
  return future;
}

InferenceResult Server::Infer(std::string_view name, std::vector<at::Tensor> inputs,
                              RequestOptions options) {
  if (internal::InSchedulerWorker() || lifecycle_->OnThread()) {
    return absl::FailedPreconditionError(
        "Infer called from a completion callback (a worker thread) would block it; use Submit "
        "with a callback there");
  }
  std::shared_ptr<internal::Deployment> deployment = Find(name);
  if (deployment == nullptr) return NotDeployed(name);
  return deployment->Infer(std::move(inputs), std::move(options));
}

absl::StatusOr<ModelStatus> Server::Describe(std::string_view name) const {
  std::shared_ptr<internal::Deployment> deployment = Find(name);
  if (deployment == nullptr) return NotDeployed(name);
  return deployment->Describe();
}

std::vector<std::string> Server::Models() const {
  internal::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, deployment] : models_) names.push_back(name);
  return names;
}

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
