// The inference request and response of the gRPC API (KServe v2), to and from LibTorch tensors:
// the same InferRequest as REST decodes, from a ModelInferRequest whose tensors are in
// raw_input_contents or in typed contents.
#ifndef MAASD_GRPC_CODEC_H_
#define MAASD_GRPC_CODEC_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "infer_codec.h"
#include "inference.pb.h"
#include "maas/types.h"

namespace maasd {

// Decodes a gRPC inference request. InvalidArgument, naming the input or parameter, for an
// unknown datatype (BYTES included), a shape that disagrees with the data, values out of the
// datatype's range, FP16 or BF16 given as typed contents (the protocol carries them raw only),
// raw_input_contents whose count differs from the inputs', or an input with both. Nothing is
// allocated for a tensor before its declared size is checked against the data that carries it.
absl::StatusOr<InferRequest> DecodeGrpcInferRequest(const inference::ModelInferRequest& request);

// Fills `response` with the answer of `model` version `version` to `request`: `outputs` in
// the order of `specs`, every tensor in raw_output_contents (as Triton answers).
// InvalidArgument when the request asked for an output the model does not have, or when the
// answer would take more than `max_bytes` (CheckResponseSize).
absl::Status EncodeGrpcInferResponse(std::string_view model, int64_t version,
                                     const InferRequest& request,
                                     const std::vector<maas::TensorSpec>& specs,
                                     const std::vector<at::Tensor>& outputs, size_t max_bytes,
                                     inference::ModelInferResponse* response);

}  // namespace maasd

#endif  // MAASD_GRPC_CODEC_H_
