#include "serving/deployment.h"

#include <algorithm>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "serving/lifecycle.h"
#include "store/names.h"
#include "util/status_macros.h"
#include "serving/version_loader.h"
#include "store/version_resolver.h"

namespace maas::internal {
namespace {

// How often Apply resolves the policy again when a version it named vanished from the store
// while it loaded (a publisher removed it): then the policy means another version now.
constexpr int kResolveAttempts = 3;

}  // namespace

Deployment::Deployment(std::string name, DeployOptions options, std::shared_ptr<Clock> clock,
                       CoreBudget* cores, uint64_t random_seed,
                       std::function<void()> on_unloaded_request)
    : name_(std::move(name)),
      label_(fmt::format("model '{}'", name_)),
      clock_(std::move(clock)),
      cores_(cores),
      random_seed_(random_seed),
      on_unloaded_request_(std::move(on_unloaded_request)),
      last_used_(absl::ToUnixNanos(clock_->Now())),
      options_(std::move(options)) {
  auto routes = std::make_shared<Routes>();
  routes->state = Routes::Unavailable{absl::UnavailableError(fmt::format("{} is loading", label_))};
  routes_ = std::move(routes);
}

Deployment::~Deployment() { Shutdown(/*drain=*/false); }

// --- Lifecycle ----------------------------------------------------------------------------

void Deployment::SetOptions(DeployOptions options) {
  MutexLock lock(&mu_);
  const bool reload = !SameServing(options, options_);
  options_ = std::move(options);
  for (auto it = versions_.begin(); it != versions_.end();) {
    Version& v = it->second;
    if (v.state == ModelState::kFailed) {
      it = versions_.erase(it);
      continue;
    }
    if (reload && v.queue != nullptr) v.stale = true;
    v.stale_error.clear();
    ++it;
  }
}

void Deployment::SetState(int64_t version, ModelState state, std::string reason) {
  Version& v = versions_[version];
  v.state = state;
  v.reason = std::move(reason);
  v.since = clock_->Now();
}

absl::Status Deployment::Apply(const ModelStore& store, Reserve reserve) {
  DeployOptions options;
  {
    MutexLock lock(&mu_);
    options = options_;
  }
  absl::Status applied;
  for (int attempt = 0; attempt < kResolveAttempts; ++attempt) {
    absl::StatusOr<Target> target = ResolveTarget(store, name_, options.policy);
    if (!target.ok()) {
      MutexLock lock(&mu_);
      last_error_ = std::string(target.status().message());
      last_refresh_ = clock_->Now();
      return target.status();
    }
    bool vanished = false;
    applied = ApplyTarget(store, reserve, options, *target, &vanished);
    if (!vanished) break;
  }
  return applied;
}

absl::Status Deployment::Restore(const ModelStore& store, Reserve reserve) {
  DeployOptions options;
  Target target;
  {
    MutexLock lock(&mu_);
    options = options_;
    for (const auto& [version, v] : versions_) {
      if (v.state == ModelState::kUnloaded) target.versions.push_back(version);
    }
    target.split = unloaded_split_;
    target.aliases = routes_->aliases;
  }
  if (target.versions.empty()) return Apply(store, reserve);
  bool vanished = false;  // The next Apply follows the store as it is then.
  return ApplyTarget(store, reserve, options, target, &vanished);
}

absl::Status Deployment::ApplyTarget(const ModelStore& store, Reserve reserve,
                                     const DeployOptions& options, const Target& target,
                                     bool* vanished) {
  std::vector<LoadStep> steps;
  {
    MutexLock lock(&mu_);
    steps = PlanLoads(Facts(), target, label_);
  }
  // Load what the plan says, one version at a time, while the current routes serve.
  std::map<int64_t, std::shared_ptr<ModelExecutor>> fresh;
  std::map<int64_t, int64_t> fresh_bytes;
  absl::Status first_error;
  auto note = [&first_error](absl::Status status) {
    if (first_error.ok()) first_error = std::move(status);
  };
  for (const LoadStep& step : steps) {
    const int64_t version = step.version;
    if (!step.skip.ok()) {
      note(step.skip);
      continue;
    }
    {
      MutexLock lock(&mu_);
      auto it = versions_.find(version);
      if (it == versions_.end() || it->second.state != ModelState::kReady) {
        SetState(version, ModelState::kLoading, "");
      }
    }
    int64_t bytes = 0;
    absl::StatusOr<std::shared_ptr<ModelExecutor>> queue =
        LoadVersion(store, name_, version, options, reserve, clock_, cores_, &bytes);
    MutexLock lock(&mu_);
    if (queue.ok()) {
      fresh[version] = *std::move(queue);
      fresh_bytes[version] = bytes;
      pending_bytes_ += bytes;  // Counted by the budget from now on.
      continue;
    }
    note(queue.status());
    if (absl::IsNotFound(queue.status()) && versions_[version].state != ModelState::kReady) {
      // Removed from the store since the target was resolved: not a failure of the version;
      // the policy is resolved again.
      versions_.erase(version);
      *vanished = true;
      continue;
    }
    Version& v = versions_[version];
    if (v.state == ModelState::kReady) {  // Reloading with new options: keep the old.
      if (!absl::IsResourceExhausted(queue.status())) {
        v.stale_error = std::string(queue.status().message());
      }
      continue;
    }
    SetState(version, ModelState::kFailed, std::string(queue.status().message()));
    v.retry = absl::IsResourceExhausted(queue.status());
  }

  // Switch the routes as planned, then retire what they no longer use.
  std::vector<std::pair<int64_t, std::shared_ptr<ModelExecutor>>> retired;
  {
    MutexLock lock(&mu_);
    std::set<int64_t> ready;
    for (const auto& [version, queue] : fresh) ready.insert(version);
    for (const auto& [version, v] : versions_) {
      if (v.state == ModelState::kReady) ready.insert(version);
    }
    const RoutePlan plan =
        PlanRoutes(ready, target, routes_->serving() ? routes_->serving()->split : Split());
    auto routes = std::make_shared<Routes>();
    routes->aliases = target.aliases;
    Routes::Serving serving;
    for (int64_t version : plan.serve) serving.executors[version] = ReadyQueue(version, fresh);
    serving.split = plan.split;
    if (!serving.executors.empty()) {
      routes->state = std::move(serving);
    } else if (routes_->unloaded()) {
      routes->state = Routes::Unloaded{};  // Unloaded and not loaded again: ask again later.
    } else {
      routes->state = Routes::Unavailable{absl::UnavailableError(
          fmt::format("{} has no ready version{}", label_,
                      first_error.ok() ? "" : fmt::format(" ({})", first_error.message())))};
    }

    for (auto& [version, queue] : fresh) {
      Version& v = versions_[version];
      if (v.queue != nullptr && v.queue != queue) retired.emplace_back(-1, v.queue);
      v.queue = queue;
      v.memory_bytes = fresh_bytes[version];
      v.retry = false;
      v.stale = false;
      if (v.state != ModelState::kReady) SetState(version, ModelState::kReady, "");
    }
    pending_bytes_ = 0;
    for (auto it = versions_.begin(); it != versions_.end();) {
      Version& v = it->second;
      const bool targeted =
          std::binary_search(target.versions.begin(), target.versions.end(), it->first);
      if (v.queue != nullptr && !Serves(*routes, it->first)) {
        retired.emplace_back(it->first, v.queue);
        SetState(it->first, ModelState::kUnloading, "");
        ++it;
      } else if (v.queue == nullptr && !targeted) {
        it = versions_.erase(it);  // A failure (or unloaded record) the policy dropped.
      } else {
        ++it;
      }
    }
    routes_ = std::move(routes);
    last_error_ = first_error.ok() ? "" : std::string(first_error.message());
    last_refresh_ = clock_->Now();
  }
  Retire(std::move(retired));
  return first_error;
}

std::map<int64_t, VersionFacts> Deployment::Facts() const {
  std::map<int64_t, VersionFacts> facts;
  for (const auto& [version, v] : versions_) facts.emplace(version, v);
  return facts;
}

std::shared_ptr<ModelExecutor> Deployment::ReadyQueue(
    int64_t version, const std::map<int64_t, std::shared_ptr<ModelExecutor>>& fresh) const {
  if (auto it = fresh.find(version); it != fresh.end()) return it->second;
  auto it = versions_.find(version);
  return it != versions_.end() && it->second.state == ModelState::kReady ? it->second.queue
                                                                         : nullptr;
}

void Deployment::Retire(std::vector<std::pair<int64_t, std::shared_ptr<ModelExecutor>>> retired) {
  if (retired.empty()) return;
  for (auto& [version, queue] : retired) queue->Stop(/*drain=*/true);
  {
    MutexLock lock(&mu_);
    for (auto& [version, queue] : retired) {
      auto it = versions_.find(version);
      if (it != versions_.end() && it->second.queue == queue) versions_.erase(it);
    }
  }
  retired.clear();  // The last references to the sessions: their memory goes here.
  ReturnFreedMemory();
}

void Deployment::Unload(const std::string& reason) {
  std::vector<std::shared_ptr<ModelExecutor>> queues;
  {
    MutexLock lock(&mu_);
    auto routes = std::make_shared<Routes>();
    routes->state = Routes::Unloaded{};
    routes->aliases = routes_->aliases;
    // Restore brings back exactly what served.
    unloaded_split_ = routes_->serving() ? routes_->serving()->split : Split();
    routes_ = std::move(routes);
    for (auto& [version, v] : versions_) {
      if (v.queue == nullptr) continue;
      queues.push_back(std::move(v.queue));
      v.memory_bytes = 0;
      SetState(version, ModelState::kUnloaded, reason);
    }
  }
  // Requests that slipped in before the routes changed finish first.
  for (const auto& queue : queues) queue->Stop(/*drain=*/true);
  queues.clear();
  ReturnFreedMemory();
}

void Deployment::Shutdown(bool drain) {
  std::vector<std::shared_ptr<ModelExecutor>> queues;
  std::vector<WaitingRequest> waiting;
  {
    MutexLock lock(&mu_);
    auto routes = std::make_shared<Routes>();
    routes->state =
        Routes::Unavailable{absl::NotFoundError(fmt::format("{} is not deployed", label_))};
    routes_ = std::move(routes);
    for (auto& [version, v] : versions_) {
      if (v.queue != nullptr) queues.push_back(std::move(v.queue));
    }
    versions_.clear();
    waiting = waiting_room_.TakeAll();
  }
  for (const auto& queue : queues) queue->Stop(drain);
  for (WaitingRequest& w : waiting) {
    w.reply.Answer(absl::CancelledError(
                       fmt::format("{} was undeployed before it could be loaded again", label_)),
                   /*version=*/0);
  }
  if (!queues.empty()) {
    queues.clear();
    ReturnFreedMemory();
  }
}

// --- Any thread ---------------------------------------------------------------------------

ModelStatus Deployment::Describe() const {
  ModelStatus status;
  status.name = name_;
  status.refused = refused_.Snapshot();
  MutexLock lock(&mu_);
  status.policy = options_.policy;
  status.ready = routes_->serving() != nullptr || routes_->unloaded();
  status.last_error = last_error_;
  status.last_refresh = last_refresh_;
  for (const auto& [version, v] : versions_) {
    VersionStatus vs;
    vs.version = version;
    vs.state = v.state;
    vs.reason = v.reason;
    if (!v.stale_error.empty()) {
      vs.reason =
          "serves with its previous options; loading it with the new ones failed: " + v.stale_error;
    }
    vs.since = v.since;
    vs.memory_bytes = v.memory_bytes;
    for (const auto& [alias, target] : routes_->aliases) {
      if (target == version) vs.aliases.push_back(alias);
    }
    if (const Routes::Serving* serving = routes_->serving()) {
      vs.traffic_share = serving->split.ShareOf(version);
    }
    if (v.queue != nullptr) {
      vs.stats = v.queue->Stats();
      std::set<const Session*> sessions;  // Instances on one device share one.
      for (const std::shared_ptr<Session>& session : v.queue->instances()) {
        if (sessions.insert(session.get()).second) {
          vs.device_reserved_bytes += session->device_reserved_bytes();
        }
      }
    }
    status.versions.push_back(std::move(vs));
  }
  return status;
}

absl::StatusOr<int64_t> Deployment::ResolveVersion(std::string_view selector) const {
  MutexLock lock(&mu_);
  std::vector<int64_t> versions;
  const Split* split = nullptr;
  if (const Routes::Serving* serving = routes_->serving()) {
    for (const auto& [version, executor] : serving->executors) versions.push_back(version);
    split = &serving->split;
  } else if (routes_->unloaded()) {
    for (const auto& [version, v] : versions_) {
      if (v.state == ModelState::kUnloaded) versions.push_back(version);
    }
    split = &unloaded_split_;
  } else {
    return std::get<Routes::Unavailable>(routes_->state).why;
  }
  if (!selector.empty()) {
    return internal::ResolveVersion(selector,
                                    {label_, /*serving=*/true, versions, routes_->aliases});
  }
  const std::pair<int64_t, double>* largest = nullptr;
  for (const std::pair<int64_t, double>& slot : split->slots()) {
    if (largest == nullptr || slot.second > largest->second) largest = &slot;
  }
  if (largest == nullptr)
    return absl::UnavailableError(fmt::format("{} has no ready version", label_));
  return largest->first;
}

int64_t Deployment::memory_bytes() const {
  MutexLock lock(&mu_);
  int64_t bytes = pending_bytes_;
  for (const auto& [version, v] : versions_) bytes += v.memory_bytes;
  return bytes;
}

bool Deployment::Idle() const {
  std::vector<std::shared_ptr<ModelExecutor>> queues;
  {
    MutexLock lock(&mu_);
    if (!waiting_room_.empty()) return false;
    for (const auto& [version, v] : versions_) {
      if (v.queue != nullptr) queues.push_back(v.queue);
    }
  }
  return std::all_of(queues.begin(), queues.end(),
                     [](const std::shared_ptr<ModelExecutor>& queue) { return queue->Idle(); });
}

bool Deployment::unloaded() const {
  MutexLock lock(&mu_);
  return routes_->unloaded();
}

}  // namespace maas::internal
