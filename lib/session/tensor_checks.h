// Checks of tensors against a ModelSignature: inputs before a run, outputs after it.
#ifndef MAAS_LIB_TENSOR_CHECKS_H_
#define MAAS_LIB_TENSOR_CHECKS_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "maas/types.h"

namespace maas::internal {

// Checks count, dtype, rank, fixed dimensions and (when batchable) equal batch sizes of at least
// one and at most the signature's max_batch_size. InvalidArgument "<label>: input 'x' ...: expected ..., got ..." otherwise. Returns the
// batch size (0 when the signature is not batchable).
absl::StatusOr<int64_t> CheckInputs(const ModelSignature& signature,
                                    const std::vector<at::Tensor>& inputs, std::string_view label);

// Turns what forward returned (a Tensor, a tuple or list of Tensors, or a dict from output name
// to Tensor) into the outputs in the signature's order, and checks each one's dtype, rank,
// fixed dimensions and batch size. Internal "<label> returned ..." when they contradict it.
// With `compute_dtype` (a model run in reduced precision), outputs of that dtype declared as
// another floating-point dtype are converted to it first.
absl::StatusOr<std::vector<at::Tensor>> CollectOutputs(
    const ModelSignature& signature, c10::IValue returned, int64_t batch, std::string_view label,
    std::optional<c10::ScalarType> compute_dtype = std::nullopt);

// Inputs matching the signature: wildcard dimensions 1, a batch of 1 when batchable; floating
// point values spread over [0, 1], other dtypes zero (valid indices, false).
std::vector<at::Tensor> ExampleInputs(const ModelSignature& signature, c10::Device device);

}  // namespace maas::internal

#endif  // MAAS_LIB_TENSOR_CHECKS_H_
