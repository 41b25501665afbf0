#include "maas/scheduler.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_join.h"
#include "fmt/core.h"
#include "model_queue.h"
#include "names.h"

namespace maas {
namespace {

// A Scheduler serves the sessions it was given; it has no versions or aliases to choose from.
absl::Status VersionRefused(std::string_view name, std::string_view version) {
  return absl::InvalidArgumentError(fmt::format(
      "request for model '{}' names version '{}', but a Scheduler serves exactly the sessions "
      "given to AddModel; leave RequestOptions::version empty (versions are chosen by a "
      "maas::Server)",
      name, version));
}

}  // namespace

Scheduler::Scheduler(std::shared_ptr<Clock> clock, int cpu_cores)
    : clock_(std::move(clock)), cores_(std::make_unique<internal::CoreBudget>(cpu_cores)) {}

Scheduler::~Scheduler() {
  std::vector<std::shared_ptr<internal::ModelQueue>> queues;
  {
    internal::MutexLock lock(&mu_);
    for (auto& [name, queue] : models_) queues.push_back(std::move(queue));
    models_.clear();
  }
  for (const auto& queue : queues) queue->Stop(/*drain=*/false);
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(SchedulerOptions options) {
  if (options.cpu_cores < 0) {
    return absl::InvalidArgumentError(
        fmt::format("cpu_cores is {}; expected 0 (all) or a positive count", options.cpu_cores));
  }
  int cores = options.cpu_cores;
  if (cores == 0) cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::shared_ptr<Clock> clock = options.clock ? options.clock : RealClock();
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(clock), cores));
}

absl::StatusOr<std::shared_ptr<internal::ModelQueue>> Scheduler::MakeQueue(
    std::string_view name, std::vector<std::shared_ptr<Session>> instances, BatchingOptions options,
    std::string_view verb) const {
  if (absl::Status s = internal::ValidateModelName(name); !s.ok()) return s;
  auto invalid = [&](const std::string& why) {
    return absl::InvalidArgumentError(fmt::format("cannot {} model '{}': {}", verb, name, why));
  };
  if (instances.empty()) return invalid("no instances given");
  for (size_t i = 0; i < instances.size(); ++i) {
    if (instances[i] == nullptr) return invalid(fmt::format("instance {} is null", i));
    if (instances[i]->info().signature != instances[0]->info().signature) {
      return invalid(fmt::format(
          "instance {} ({} version {}) has another signature than instance 0 ({} version {})", i,
          instances[i]->info().name, instances[i]->info().version, instances[0]->info().name,
          instances[0]->info().version));
    }
  }
  if (absl::Status s = internal::ValidateBatchingOptions(options); !s.ok()) {
    return invalid(std::string(s.message()));
  }
  return std::make_shared<internal::ModelQueue>(fmt::format("model '{}'", name),
                                                std::move(instances), std::move(options), clock_,
                                                cores_.get());
}

absl::Status Scheduler::AddModel(std::string_view name,
                                 std::vector<std::shared_ptr<Session>> instances,
                                 BatchingOptions options) {
  absl::StatusOr<std::shared_ptr<internal::ModelQueue>> queue =
      MakeQueue(name, std::move(instances), std::move(options), "add");
  if (!queue.ok()) return queue.status();
  internal::MutexLock lock(&mu_);
  if (models_.find(name) != models_.end()) {
    return absl::AlreadyExistsError(fmt::format("model '{}' is already served", name));
  }
  (*queue)->Start();
  models_.emplace(std::string(name), *std::move(queue));
  return absl::OkStatus();
}

absl::Status Scheduler::ReplaceModel(std::string_view name,
                                     std::vector<std::shared_ptr<Session>> instances,
                                     BatchingOptions options) {
  if (internal::InSchedulerWorker()) {
    return absl::FailedPreconditionError(
        "ReplaceModel called from a completion callback would wait for its own worker thread");
  }
  absl::StatusOr<std::shared_ptr<internal::ModelQueue>> queue =
      MakeQueue(name, std::move(instances), std::move(options), "replace");
  if (!queue.ok()) return queue.status();
  std::shared_ptr<internal::ModelQueue> old;
  {
    internal::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(fmt::format("model '{}' is not served", name));
    }
    (*queue)->Start();
    old = std::exchange(it->second, *std::move(queue));
  }
  // Requests that found the old queue closed are handed back and routed to the new one.
  old->Stop(/*drain=*/true);
  return absl::OkStatus();
}

absl::Status Scheduler::RemoveModel(std::string_view name) {
  if (internal::InSchedulerWorker()) {
    return absl::FailedPreconditionError(
        "RemoveModel called from a completion callback would wait for its own worker thread");
  }
  std::shared_ptr<internal::ModelQueue> queue;
  {
    internal::MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      return absl::NotFoundError(fmt::format("model '{}' is not served", name));
    }
    queue = std::move(it->second);
    models_.erase(it);
  }
  queue->Stop(/*drain=*/true);
  return absl::OkStatus();
}

absl::Status Scheduler::NotServed(std::string_view name) const {
  std::vector<std::string> served = Models();
  return absl::NotFoundError(fmt::format("model '{}' is not served by this scheduler (served: {})",
                                         name,
                                         served.empty() ? "none" : absl::StrJoin(served, ", ")));
}

std::shared_ptr<internal::ModelQueue> Scheduler::Find(std::string_view name) const {
  internal::MutexLock lock(&mu_);
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

absl::Status Scheduler::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                               RequestOptions options, InferenceCallback done) {
  if (!done) return absl::InvalidArgumentError("Submit needs a completion callback");
  if (!options.version.empty()) return VersionRefused(name, options.version);
  // Loops only when the queue found was closed in between (ReplaceModel, RemoveModel): the
  // request comes back and goes to what serves the name now.
  while (true) {
    std::shared_ptr<internal::ModelQueue> queue = Find(name);
    if (queue == nullptr) return NotServed(name);
    if (std::optional<absl::Status> submitted = queue->TrySubmit(inputs, options, done)) {
      return *submitted;
    }
  }
}

std::future<InferenceResult> Scheduler::Submit(std::string_view name,
                                               std::vector<at::Tensor> inputs,
                                               RequestOptions options) {
  auto promise = std::make_shared<std::promise<InferenceResult>>();
  std::future<InferenceResult> future = promise->get_future();
  absl::Status submitted =
      Submit(name, std::move(inputs), options,
             [promise](InferenceResult result) { promise->set_value(std::move(result)); });
  if (!submitted.ok()) promise->set_value(std::move(submitted));
  return future;
}

InferenceResult Scheduler::Infer(std::string_view name, std::vector<at::Tensor> inputs,
                                 RequestOptions options) {
  if (internal::InSchedulerWorker()) {
    // Waiting here would block the worker that may be the one to answer: a deadlock.
    return absl::FailedPreconditionError(
        "Infer called from a completion callback (a scheduler worker thread) would block it; "
        "use Submit with a callback there");
  }
  if (!options.version.empty()) return VersionRefused(name, options.version);
  while (true) {  // As in Submit.
    std::shared_ptr<internal::ModelQueue> queue = Find(name);
    if (queue == nullptr) return NotServed(name);
    if (std::optional<InferenceResult> result = queue->TryInfer(inputs, options)) {
      return *std::move(result);
    }
  }
}

absl::StatusOr<ModelStats> Scheduler::Stats(std::string_view name) const {
  std::shared_ptr<internal::ModelQueue> queue = Find(name);
  if (queue == nullptr) return absl::NotFoundError(fmt::format("model '{}' is not served", name));
  return queue->Stats();
}

std::vector<std::string> Scheduler::Models() const {
  internal::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, queue] : models_) names.push_back(name);
  return names;
}

}  // namespace maas
