// A request inside an executor: how it is answered, what the batching policy and the run need
// of it, and how it is made from what a caller submits (validated, keyed, given its deadline).
#ifndef MAAS_LIB_EXECUTOR_REQUEST_H_
#define MAAS_LIB_EXECUTOR_REQUEST_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batching/batch_task.h"
#include "maas/batching_options.h"
#include "maas/request.h"
#include "maas/types.h"

namespace maas::internal {

// How a request is answered: the caller's callback, told the version that answered or not.
// Move-only.
class Reply {
 public:
  Reply() = default;
  Reply(InferenceCallback done) : done_(std::move(done)) {}  // NOLINT: implicit by design
  Reply(ServedCallback done) : served_(std::move(done)) {}   // NOLINT
  explicit operator bool() const { return done_ || served_; }

  // Calls the callback, once. Call it outside every library lock; an exception from the
  // callback is dropped.
  void Answer(InferenceResult result, int64_t version);

 private:
  InferenceCallback done_;
  ServedCallback served_;
};

// One submitted request, owned by the queue until it is answered.
struct Request : BatchTask {
  std::vector<at::Tensor> inputs;
  Reply reply;
};

// The deadline of a request with `options` made at `now`: the earlier of its deadline and now +
// its timeout (InfiniteFuture when neither is set). The one place a timeout becomes a deadline.
absl::Time DeadlineOf(const RequestOptions& options, absl::Time now);

// A request for a model with `signature` batched by `batching`, made at `now` from `inputs` and
// `options`, taking `inputs`: the inputs checked against the signature (count, dtype, rank,
// dimensions, batch sizes), its items within max_batch_size, its key (device and non-batch
// dimensions of every input) and its deadline (default_timeout when it sets none).
// InvalidArgument or DeadlineExceeded (already passed) naming `label` otherwise.
absl::StatusOr<std::unique_ptr<Request>> PrepareRequest(const ModelSignature& signature,
                                                        const BatchingOptions& batching,
                                                        std::vector<at::Tensor> inputs,
                                                        const RequestOptions& options,
                                                        absl::Time now, const std::string& label);

}  // namespace maas::internal

#endif  // MAAS_LIB_EXECUTOR_REQUEST_H_
