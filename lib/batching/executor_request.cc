#include "batching/executor_request.h"

#include <algorithm>
#include <utility>

#include "fmt/core.h"
#include "session/tensor_checks.h"

namespace maas::internal {

void Reply::Answer(InferenceResult result, int64_t version) {
  try {
    if (served_) {
      std::move(served_)(std::move(result), version);
    } else {
      std::move(done_)(std::move(result));
    }
  } catch (...) {
  }
}

absl::Time DeadlineOf(const RequestOptions& options, absl::Time now) {
  if (options.timeout == absl::InfiniteDuration()) return options.deadline;
  return std::min(options.deadline, now + options.timeout);
}

absl::StatusOr<std::unique_ptr<Request>> PrepareRequest(const ModelSignature& signature,
                                                        const BatchingOptions& batching,
                                                        std::vector<at::Tensor> inputs,
                                                        const RequestOptions& options,
                                                        absl::Time now, const std::string& label) {
  absl::StatusOr<int64_t> batch = CheckInputs(signature, inputs, label);
  if (!batch.ok()) return batch.status();
  auto request = std::make_unique<Request>();
  if (signature.batchable) {
    request->items = *batch;
    if (request->items > batching.max_batch_size) {
      return absl::InvalidArgumentError(
          fmt::format("{}: the request holds {} items, more than max_batch_size {}; split it",
                      label, request->items, batching.max_batch_size));
    }
    for (const at::Tensor& input : inputs) {
      request->key.push_back(static_cast<int64_t>(input.device().type()));
      request->key.push_back(input.device().index());
      request->key.insert(request->key.end(), input.sizes().begin() + 1, input.sizes().end());
    }
  }
  request->inputs = std::move(inputs);
  request->priority = options.priority;
  request->enqueued = now;
  request->deadline = DeadlineOf(options, now);
  if (request->deadline == absl::InfiniteFuture() &&
      batching.default_timeout != absl::InfiniteDuration()) {
    request->deadline = now + batching.default_timeout;
  }
  if (request->deadline <= now) {
    return absl::DeadlineExceededError(
        fmt::format("{}: the request's deadline has already passed", label));
  }
  return request;
}

}  // namespace maas::internal
