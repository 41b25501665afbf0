#include "deployment.h"

#include <algorithm>
#include <future>
#include <random>
#include <set>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "absl/strings/str_join.h"
#include "absl_compat.h"
#include "fmt/core.h"
#include "lifecycle.h"
#include "load_hook.h"
#include "names.h"
#include "status_macros.h"

namespace maas::internal {
namespace {

// The options' operator== list every field by hand (C++17 has no defaulted comparisons). A field
// added without updating them would be silently ignored by SameServing; their sizes catch it:
// update operator== and these sizes together.
#if defined(__GLIBCXX__) && (defined(__x86_64__) || defined(__aarch64__))
static_assert(sizeof(BatchingOptions) == 80, "BatchingOptions changed: update its operator==");
static_assert(sizeof(SessionOptions) == 64, "SessionOptions changed: update its operator==");
static_assert(sizeof(VersionPolicy) == 40, "VersionPolicy changed: update its operator==");
static_assert(sizeof(DeployOptions) == 216, "DeployOptions changed: update its operator==");
#endif

// Whether two sets of options load and batch versions the same way: all but the policy, and
// the session's version and device, which the policy and the devices choose.
bool SameServing(DeployOptions a, DeployOptions b) {
  a.policy = b.policy;
  a.session.version = b.session.version;
  a.session.device = b.session.device;
  return a == b;
}

std::atomic<LoadHook> load_hook{nullptr};

// How often Apply resolves the policy again when a version it named vanished from the store
// while it loaded (a publisher removed it): then the policy means another version now.
constexpr int kResolveAttempts = 3;

// `inputs`, named by `names` (ServerRequestOptions::input_names), in the order of `signature`.
absl::StatusOr<std::vector<at::Tensor>> ArrangeByName(const std::vector<at::Tensor>& inputs,
                                                      const std::vector<std::string>& names,
                                                      const ModelSignature& signature,
                                                      int64_t version, std::string_view label) {
  std::vector<std::string> expected;
  for (const TensorSpec& spec : signature.inputs) expected.push_back(spec.name);
  const auto refuse = [&](std::string what) {
    return absl::InvalidArgumentError(fmt::format("{} version {}: {}; its inputs are {}", label,
                                                  version, what, absl::StrJoin(expected, ", ")));
  };
  if (names.size() != inputs.size()) {
    return refuse(fmt::format("{} input names for {} inputs", names.size(), inputs.size()));
  }
  std::vector<at::Tensor> arranged(signature.inputs.size());
  std::vector<bool> given(signature.inputs.size(), false);
  for (size_t i = 0; i < names.size(); ++i) {
    const auto found = std::find(expected.begin(), expected.end(), names[i]);
    if (found == expected.end()) return refuse(fmt::format("no input is named '{}'", names[i]));
    const size_t position = static_cast<size_t>(found - expected.begin());
    if (given[position]) return refuse(fmt::format("input '{}' is given twice", names[i]));
    given[position] = true;
    arranged[position] = inputs[i];
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!given[i]) return refuse(fmt::format("input '{}' is missing", expected[i]));
  }
  return arranged;
}

}  // namespace

void SetLoadHookForTesting(LoadHook hook) { load_hook.store(hook); }

void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

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
  routes->unavailable = absl::UnavailableError(fmt::format("{} is loading", label_));
  routes_ = std::move(routes);
}

Deployment::~Deployment() { Shutdown(/*drain=*/false); }

// --- Request path -------------------------------------------------------------------------

Route Deployment::Pick(std::string_view version) {
  last_used_.store(absl::ToUnixNanos(clock_->Now()), std::memory_order_relaxed);
  std::shared_ptr<const Routes> routes;
  {
    MutexLock lock(&mu_);
    routes = routes_;
  }
  return RouteRequest(
      *routes, version,
      [this] { return UniformDraw(random_seed_, draws_.fetch_add(1, std::memory_order_relaxed)); },
      label_);
}

Deployment::WaitResult Deployment::Wait(Waiting& waiting) {
  bool ask = false;
  {
    MutexLock lock(&mu_);
    if (!routes_->unloaded) return WaitResult::kRouteAgain;  // Loaded again meanwhile.
    if (static_cast<int64_t>(waiting_.size()) >= options_.batching.max_queue_size) {
      return WaitResult::kFull;
    }
    // A timeout counts from now, not from when the request is routed after the reload.
    waiting.options.deadline = DeadlineOf(waiting.options, clock_->Now());
    waiting.options.timeout = absl::InfiniteDuration();
    waiting_.push_back(std::move(waiting));
    ask = !reload_asked_;
    reload_asked_ = true;
  }
  if (ask) on_unloaded_request_();
  return WaitResult::kWaiting;
}

absl::Status Deployment::WaitingFull() const {
  return absl::UnavailableError(fmt::format(
      "{} is loading again after it was unloaded for memory, and max_queue_size requests already "
      "wait for it; retry later",
      label_));
}

absl::Status Deployment::Submit(std::vector<at::Tensor> inputs, ServerRequestOptions options,
                                Reply& reply) {
  // Loops only when a swap retired the chosen queue in between: the next Pick sees newer routes.
  while (true) {
    Route route = Pick(options.version);
    if (route.wait) {
      Waiting waiting{std::move(inputs), std::move(options), std::move(reply)};
      const WaitResult waited = Wait(waiting);
      if (waited == WaitResult::kWaiting) return absl::OkStatus();
      reply = std::move(waiting.reply);
      if (waited == WaitResult::kFull) return WaitingFull();
      inputs = std::move(waiting.inputs);
      options = std::move(waiting.options);
      continue;
    }
    if (route.queue == nullptr) return route.status;
    std::vector<at::Tensor> arranged;  // Keeps `inputs` as given, for a route taken again.
    if (!options.input_names.empty()) {
      MAAS_ASSIGN_OR_RETURN(arranged,
                            ArrangeByName(inputs, options.input_names, route.queue->signature(),
                                          route.queue->version(), label_));
    }
    std::vector<at::Tensor>& submitting = options.input_names.empty() ? inputs : arranged;
    if (std::optional<absl::Status> submitted =
            route.queue->TrySubmit(submitting, options, reply)) {
      return *submitted;
    }
  }
}

InferenceResult Deployment::Infer(std::vector<at::Tensor> inputs, ServerRequestOptions options) {
  while (true) {
    Route route = Pick(options.version);
    if (route.wait) {
      const absl::Time deadline = DeadlineOf(options, clock_->Now());
      auto promise = std::make_shared<std::promise<InferenceResult>>();
      std::future<InferenceResult> future = promise->get_future();
      Waiting waiting{std::move(inputs), std::move(options),
                      InferenceCallback([promise](InferenceResult result) {
                        promise->set_value(std::move(result));
                      })};
      const WaitResult waited = Wait(waiting);
      if (waited == WaitResult::kFull) return WaitingFull();
      if (waited == WaitResult::kWaiting) {
        if (deadline == absl::InfiniteFuture()) return future.get();
        // Not past the deadline: the request itself is answered (DeadlineExceeded, not run)
        // once the model is loaded, to nobody.
        const absl::Duration left = std::max(deadline - clock_->Now(), absl::ZeroDuration());
        if (future.wait_for(absl::ToChronoNanoseconds(left)) == std::future_status::ready) {
          return future.get();
        }
        return absl::DeadlineExceededError(fmt::format(
            "{}: the deadline passed while the model was loading again after it was unloaded "
            "for memory",
            label_));
      }
      inputs = std::move(waiting.inputs);
      options = std::move(waiting.options);
      continue;
    }
    if (route.queue == nullptr) return route.status;
    std::vector<at::Tensor> arranged;
    if (!options.input_names.empty()) {
      MAAS_ASSIGN_OR_RETURN(arranged,
                            ArrangeByName(inputs, options.input_names, route.queue->signature(),
                                          route.queue->version(), label_));
    }
    std::vector<at::Tensor>& submitting = options.input_names.empty() ? inputs : arranged;
    if (std::optional<InferenceResult> result = route.queue->TryInfer(submitting, options)) {
      return *std::move(result);
    }
  }
}

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

absl::StatusOr<std::shared_ptr<ModelExecutor>> Deployment::Load(const ModelStore& store,
                                                             int64_t version,
                                                             const DeployOptions& options,
                                                             Reserve reserve,
                                                             int64_t* memory_bytes) const {
  const std::string number = std::to_string(version);
  if (LoadHook hook = load_hook.load()) hook(name_, version);
  MAAS_ASSIGN_OR_RETURN(ModelInfo info, store.Get(name_, number));
  // Before loading, the artifact's size stands for its weights.
  MAAS_RETURN_IF_ERROR(reserve(info.size_bytes * static_cast<int64_t>(options.devices.size())));
  // One Session per device, shared by that device's instances: Session::Run is thread-safe
  // and the weights are then held once.
  std::vector<std::shared_ptr<Session>> instances;
  *memory_bytes = 0;
  absl::Status loaded;
  RunNiced([&] {
    for (const c10::Device& device : options.devices) {
      SessionOptions session_options = options.session;
      session_options.version = number;
      session_options.device = device;
      absl::StatusOr<std::unique_ptr<Session>> session =
          Session::Create(store, name_, session_options);
      if (!session.ok()) {
        loaded = session.status();
        return;
      }
      *memory_bytes += (*session)->memory_bytes();
      std::shared_ptr<Session> shared = std::move(*session);
      for (int i = 0; i < options.instances_per_device; ++i) instances.push_back(shared);
    }
  });
  MAAS_RETURN_IF_ERROR(loaded);
  // Started from this thread, so that the workers keep the application's priority.
  auto queue = std::make_shared<ModelExecutor>(fmt::format("{} version {}", label_, version), version,
                                            std::move(instances), options.batching, clock_, cores_);
  queue->Start();
  return queue;
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
        Load(store, version, options, reserve, &bytes);
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
    const RoutePlan plan = PlanRoutes(ready, target, routes_->split);
    auto routes = std::make_shared<Routes>();
    routes->aliases = target.aliases;
    for (int64_t version : plan.serve) routes->queues[version] = ReadyQueue(version, fresh);
    routes->split = plan.split;
    if (routes->queues.empty()) {
      routes->unloaded = routes_->unloaded;  // Unloaded and not loaded again: ask again later.
      routes->unavailable = absl::UnavailableError(
          fmt::format("{} has no ready version{}", label_,
                      first_error.ok() ? "" : fmt::format(" ({})", first_error.message())));
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
      if (v.queue != nullptr && routes->queues.count(it->first) == 0) {
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
    routes->unloaded = true;
    routes->aliases = routes_->aliases;
    unloaded_split_ = routes_->split;  // Restore brings back exactly what served.
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

void Deployment::ReleaseWaiting(const absl::Status& load_status) {
  std::vector<Waiting> waiting;
  {
    MutexLock lock(&mu_);
    waiting.swap(waiting_);
    reload_asked_ = false;
  }
  for (Waiting& w : waiting) {
    if (!load_status.ok()) {
      w.reply.Answer(
          absl::Status(load_status.code(), fmt::format("{} could not be loaded again: {}", label_,
                                                       load_status.message())),
          /*version=*/0);
      continue;
    }
    // Submit leaves the reply with us when it refuses the request.
    absl::Status submitted = Submit(std::move(w.inputs), std::move(w.options), w.reply);
    if (!submitted.ok()) w.reply.Answer(std::move(submitted), /*version=*/0);
  }
}

void Deployment::Shutdown(bool drain) {
  std::vector<std::shared_ptr<ModelExecutor>> queues;
  std::vector<Waiting> waiting;
  {
    MutexLock lock(&mu_);
    auto routes = std::make_shared<Routes>();
    routes->unavailable = absl::NotFoundError(fmt::format("{} is not deployed", label_));
    routes_ = std::move(routes);
    for (auto& [version, v] : versions_) {
      if (v.queue != nullptr) queues.push_back(std::move(v.queue));
    }
    versions_.clear();
    waiting.swap(waiting_);
  }
  for (const auto& queue : queues) queue->Stop(drain);
  for (Waiting& w : waiting) {
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
  MutexLock lock(&mu_);
  status.policy = options_.policy;
  status.ready = !routes_->split.empty() || routes_->unloaded;
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
    vs.traffic_share = routes_->split.ShareOf(version);
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
    if (!waiting_.empty()) return false;
    for (const auto& [version, v] : versions_) {
      if (v.queue != nullptr) queues.push_back(v.queue);
    }
  }
  return std::all_of(queues.begin(), queues.end(),
                     [](const std::shared_ptr<ModelExecutor>& queue) { return queue->Idle(); });
}

bool Deployment::unloaded() const {
  MutexLock lock(&mu_);
  return routes_->unloaded;
}

}  // namespace maas::internal
