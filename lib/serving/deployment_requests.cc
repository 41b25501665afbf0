// Deployment's request path: route, then deliver to a version's executor or park in the waiting
// room; and the waiting requests' release after a reload.
#include <future>
#include <memory>

#include "serving/deployment.h"
#include "fmt/core.h"
#include "serving/input_names.h"

namespace maas::internal {

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

Deployment::Parked Deployment::Park(WaitingRequest& request) {
  bool ask = false;
  {
    MutexLock lock(&mu_);
    if (!routes_->unloaded()) return Parked::kRouteAgain;  // Loaded again meanwhile.
    if (!waiting_room_.Enter(request, options_.batching.max_queue_size, clock_->Now(), &ask)) {
      return Parked::kFull;
    }
  }
  if (ask) on_unloaded_request_();
  return Parked::kWaiting;
}

template <typename Result, typename Deliver, typename ParkIt>
Result Deployment::RouteAndDeliver(std::vector<at::Tensor>& inputs,
                                   const ServerRequestOptions& options, Deliver deliver,
                                   ParkIt park) {
  // Loops only when a swap retired the chosen executor in between, or the model was loaded
  // again while the request was being parked: the next Pick sees newer routes.
  while (true) {
    Route route = Pick(options.version);
    if (route.wait) {
      if (std::optional<Result> parked = park()) return *std::move(parked);
      continue;
    }
    if (route.queue == nullptr) return refused_.Count(route.status);
    std::vector<at::Tensor> arranged;  // Keeps `inputs` as given, for a route taken again.
    if (!options.input_names.empty()) {
      absl::StatusOr<std::vector<at::Tensor>> by_name = ArrangeByName(
          inputs, options.input_names, route.queue->signature(), route.queue->version(), label_);
      if (!by_name.ok()) return refused_.Count(by_name.status());
      arranged = *std::move(by_name);
    }
    if (std::optional<Result> delivered =
            deliver(*route.queue, options.input_names.empty() ? inputs : arranged)) {
      return *std::move(delivered);
    }
  }
}

absl::Status Deployment::Submit(std::vector<at::Tensor> inputs, ServerRequestOptions options,
                                Reply& reply) {
  return RouteAndDeliver<absl::Status>(
      inputs, options,
      [&](ModelExecutor& executor, std::vector<at::Tensor>& submitting) {
        return executor.TrySubmit(submitting, options, reply);
      },
      [&]() -> std::optional<absl::Status> {
        WaitingRequest waiting{std::move(inputs), std::move(options), std::move(reply)};
        const Parked parked = Park(waiting);
        if (parked == Parked::kWaiting) return absl::OkStatus();
        inputs = std::move(waiting.inputs);
        options = std::move(waiting.options);
        reply = std::move(waiting.reply);
        if (parked == Parked::kFull) return refused_.Count(WaitingRoomFull(label_));
        return std::nullopt;
      });
}

InferenceResult Deployment::Infer(std::vector<at::Tensor> inputs, ServerRequestOptions options) {
  return RouteAndDeliver<InferenceResult>(
      inputs, options,
      [&](ModelExecutor& executor, std::vector<at::Tensor>& submitting) {
        return executor.TryInfer(submitting, options);
      },
      [&]() -> std::optional<InferenceResult> {
        // As Submit, answered through a promise that this thread waits for.
        const absl::Time deadline = DeadlineOf(options, clock_->Now());
        auto promise = std::make_shared<std::promise<InferenceResult>>();
        std::future<InferenceResult> future = promise->get_future();
        WaitingRequest waiting{std::move(inputs), std::move(options),
                               InferenceCallback([promise](InferenceResult result) {
                                 promise->set_value(std::move(result));
                               })};
        const Parked parked = Park(waiting);
        if (parked == Parked::kWaiting) return AwaitReload(future, deadline, *clock_, label_);
        if (parked == Parked::kFull) return refused_.Count(WaitingRoomFull(label_));
        inputs = std::move(waiting.inputs);
        options = std::move(waiting.options);
        return std::nullopt;
      });
}

void Deployment::ReleaseWaiting(const absl::Status& load_status) {
  std::vector<WaitingRequest> waiting;
  {
    MutexLock lock(&mu_);
    waiting = waiting_room_.TakeAll();
  }
  for (WaitingRequest& w : waiting) {
    if (!load_status.ok()) {
      w.reply.Answer(refused_.Count(absl::Status(
                         load_status.code(), fmt::format("{} could not be loaded again: {}",
                                                         label_, load_status.message()))),
                     /*version=*/0);
      continue;
    }
    // Submit leaves the reply with us when it refuses the request.
    absl::Status submitted = Submit(std::move(w.inputs), std::move(w.options), w.reply);
    if (!submitted.ok()) w.reply.Answer(std::move(submitted), /*version=*/0);
  }
}

}  // namespace maas::internal
