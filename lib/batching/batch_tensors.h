// Turning requests' tensors into one batch and the batch's outputs back into each request's
// rows: the tensor side of batching (the policy, free of tensors, is BatchQueue).
#ifndef MAAS_LIB_BATCH_TENSORS_H_
#define MAAS_LIB_BATCH_TENSORS_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

namespace maas::internal {

// The requests' inputs concatenated along the batch dimension, one tensor per input:
// `inputs[r][i]` is input i of request r. For a session on a GPU, host inputs are assembled
// straight into page-locked memory, from which Session::Run copies them to the device
// asynchronously: one host copy per batch, not two. May throw (c10::Error).
std::vector<at::Tensor> Concatenate(const std::vector<const std::vector<at::Tensor>*>& inputs,
                                    c10::Device device);

// Each request's rows of the batch's outputs: request r gets rows_per_request[r] rows, in
// order, as views (no copies).
std::vector<std::vector<at::Tensor>> SplitRows(const std::vector<at::Tensor>& outputs,
                                               const std::vector<int64_t>& rows_per_request);

}  // namespace maas::internal

#endif  // MAAS_LIB_BATCH_TENSORS_H_
