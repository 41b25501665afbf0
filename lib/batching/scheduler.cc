#include "maas/scheduler.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "util/cpu_cores.h"
#include "fmt/core.h"
#include "batching/front_end.h"
#include "batching/model_executor.h"
#include "store/names.h"

namespace maas {

struct Scheduler::Impl {
  Impl(std::shared_ptr<Clock> clock, int cpu_cores) : clock(std::move(clock)), cores(cpu_cores) {}

  // Checks instances and options and builds (without starting) a queue for them.
  absl::StatusOr<std::shared_ptr<internal::ModelExecutor>> MakeQueue(
      std::string_view name, std::vector<std::shared_ptr<Session>> instances,
      BatchingOptions options, std::string_view verb);

  const std::shared_ptr<Clock> clock;
  internal::CoreBudget cores;
  internal::ModelRegistry<internal::ModelExecutor> models{"served by this scheduler", "served"};
};

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Scheduler::~Scheduler() {
  for (const auto& queue : impl_->models.TakeAll()) queue->Stop(/*drain=*/false);
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(SchedulerOptions options) {
  if (options.cpu_cores < 0) {
    return absl::InvalidArgumentError(
        fmt::format("cpu_cores is {}; expected 0 (all) or a positive count", options.cpu_cores));
  }
  int cores = options.cpu_cores;
  if (cores == 0) cores = internal::AvailableCores();
  std::shared_ptr<Clock> clock = options.clock ? options.clock : RealClock();
  return std::unique_ptr<Scheduler>(new Scheduler(std::make_unique<Impl>(std::move(clock), cores)));
}

absl::StatusOr<std::shared_ptr<internal::ModelExecutor>> Scheduler::Impl::MakeQueue(
    std::string_view name, std::vector<std::shared_ptr<Session>> instances, BatchingOptions options,
    std::string_view verb) {
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
  return std::make_shared<internal::ModelExecutor>(fmt::format("model '{}'", name), /*version=*/0,
                                                std::move(instances), std::move(options), clock,
                                                &cores);
}

absl::Status Scheduler::AddModel(std::string_view name,
                                 std::vector<std::shared_ptr<Session>> instances,
                                 BatchingOptions options) {
  absl::StatusOr<std::shared_ptr<internal::ModelExecutor>> queue =
      impl_->MakeQueue(name, std::move(instances), std::move(options), "add");
  if (!queue.ok()) return queue.status();
  // Started before it is visible, so that a RemoveModel racing in stops a running queue.
  (*queue)->Start();
  if (!impl_->models.Add(name, *queue)) {
    (*queue)->Stop(/*drain=*/false);  // Nothing reached it.
    return absl::AlreadyExistsError(fmt::format("model '{}' is already served", name));
  }
  return absl::OkStatus();
}

absl::Status Scheduler::ReplaceModel(std::string_view name,
                                     std::vector<std::shared_ptr<Session>> instances,
                                     BatchingOptions options) {
  if (internal::InSchedulerWorker()) {
    return absl::FailedPreconditionError(
        "ReplaceModel called from a completion callback would wait for its own worker thread");
  }
  absl::StatusOr<std::shared_ptr<internal::ModelExecutor>> queue =
      impl_->MakeQueue(name, std::move(instances), std::move(options), "replace");
  if (!queue.ok()) return queue.status();
  (*queue)->Start();
  std::shared_ptr<internal::ModelExecutor> old = impl_->models.Replace(name, *queue);
  if (old == nullptr) {
    (*queue)->Stop(/*drain=*/false);
    return absl::NotFoundError(fmt::format("model '{}' is not served", name));
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
  std::shared_ptr<internal::ModelExecutor> queue = impl_->models.Remove(name);
  if (queue == nullptr) return absl::NotFoundError(fmt::format("model '{}' is not served", name));
  queue->Stop(/*drain=*/true);
  return absl::OkStatus();
}

absl::Status Scheduler::Submit(std::string_view name, std::vector<at::Tensor> inputs,
                               RequestOptions options, InferenceCallback done) {
  if (absl::Status s = internal::CheckCallback(done); !s.ok()) return s;
  internal::Reply reply(std::move(done));
  // Loops only when the queue found was closed in between (ReplaceModel, RemoveModel): the
  // request comes back and goes to what serves the name now.
  while (true) {
    std::shared_ptr<internal::ModelExecutor> queue = impl_->models.Find(name);
    if (queue == nullptr) return impl_->models.NotFound(name);
    if (std::optional<absl::Status> submitted = queue->TrySubmit(inputs, options, reply)) {
      return *submitted;
    }
  }
}

std::future<InferenceResult> Scheduler::Submit(std::string_view name,
                                               std::vector<at::Tensor> inputs,
                                               RequestOptions options) {
  return internal::SubmitForFuture([&](InferenceCallback done) {
    return Submit(name, std::move(inputs), options, std::move(done));
  });
}

InferenceResult Scheduler::Infer(std::string_view name, std::vector<at::Tensor> inputs,
                                 RequestOptions options) {
  if (internal::InSchedulerWorker()) {
    // Waiting here would block the worker that may be the one to answer: a deadlock.
    return absl::FailedPreconditionError(
        "Infer called from a completion callback (a scheduler worker thread) would block it; "
        "use Submit with a callback there");
  }
  while (true) {  // As in Submit.
    std::shared_ptr<internal::ModelExecutor> queue = impl_->models.Find(name);
    if (queue == nullptr) return impl_->models.NotFound(name);
    if (std::optional<InferenceResult> result = queue->TryInfer(inputs, options)) {
      return *std::move(result);
    }
  }
}

absl::StatusOr<ModelStats> Scheduler::Stats(std::string_view name) const {
  std::shared_ptr<internal::ModelExecutor> queue = impl_->models.Find(name);
  if (queue == nullptr) return absl::NotFoundError(fmt::format("model '{}' is not served", name));
  return queue->Stats();
}

std::vector<std::string> Scheduler::Models() const { return impl_->models.Names(); }

}  // namespace maas
