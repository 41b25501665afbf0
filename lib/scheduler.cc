#include "maas/scheduler.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_join.h"
#include "fmt/core.h"
#include "model_queue.h"
#include "names.h"

namespace maas {

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

absl::Status Scheduler::AddModel(std::string_view name,
                                 std::vector<std::shared_ptr<Session>> instances,
                                 BatchingOptions options) {
  if (absl::Status s = internal::ValidateModelName(name); !s.ok()) return s;
  auto invalid = [&](const std::string& why) {
    return absl::InvalidArgumentError(fmt::format("cannot add model '{}': {}", name, why));
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
  if (options.max_batch_size < 1) {
    return invalid(fmt::format("max_batch_size is {}; expected 1 or more", options.max_batch_size));
  }
  constexpr int64_t kMaxBatchSize = int64_t{1} << 20, kMaxQueueSize = int64_t{1} << 40;
  if (options.max_batch_size > kMaxBatchSize) {
    return invalid(fmt::format("max_batch_size is {}; at most {} is supported",
                               options.max_batch_size, kMaxBatchSize));
  }
  if (options.max_queue_size > kMaxQueueSize) {
    return invalid(fmt::format("max_queue_size is {}; at most {} is supported",
                               options.max_queue_size, kMaxQueueSize));
  }
  if (options.max_queue_size < options.max_batch_size) {
    return invalid(fmt::format("max_queue_size {} is below max_batch_size {}",
                               options.max_queue_size, options.max_batch_size));
  }
  if (options.max_queue_delay < absl::ZeroDuration()) return invalid("max_queue_delay is negative");
  if (options.default_timeout <= absl::ZeroDuration()) {
    return invalid("default_timeout must be positive (or infinite)");
  }
  for (int64_t size : options.preferred_batch_sizes) {
    if (size < 1 || size > options.max_batch_size) {
      return invalid(fmt::format("preferred batch size {} is outside 1..max_batch_size ({})", size,
                                 options.max_batch_size));
    }
  }

  internal::MutexLock lock(&mu_);
  if (models_.find(name) != models_.end()) {
    return absl::AlreadyExistsError(fmt::format("model '{}' is already served", name));
  }
  auto queue = std::make_shared<internal::ModelQueue>(std::string(name), std::move(instances),
                                                      std::move(options), clock_, cores_.get());
  queue->Start();
  models_.emplace(std::string(name), std::move(queue));
  return absl::OkStatus();
}

absl::Status Scheduler::RemoveModel(std::string_view name) {
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

std::shared_ptr<internal::ModelQueue> Scheduler::Find(std::string_view name) const {
  internal::MutexLock lock(&mu_);
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

absl::Status Scheduler::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                               RequestOptions options, InferenceCallback done) {
  if (!done) return absl::InvalidArgumentError("Submit needs a completion callback");
  std::shared_ptr<internal::ModelQueue> queue = Find(name);
  if (queue == nullptr) {
    std::vector<std::string> served = Models();
    return absl::NotFoundError(
        fmt::format("model '{}' is not served by this scheduler (served: {})", name,
                    served.empty() ? "none" : absl::StrJoin(served, ", ")));
  }
  return queue->Enqueue(std::move(inputs), options, std::move(done));
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
  std::shared_ptr<internal::ModelQueue> queue = Find(name);
  if (queue == nullptr) return Submit(name, std::move(inputs), options).get();  // NotFound
  return queue->Infer(std::move(inputs), options);
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
