// The inference request and response of the REST API (KServe v2): JSON tensors and the binary
// tensor data extension, to and from LibTorch tensors.
#ifndef MAASD_INFER_CODEC_H_
#define MAASD_INFER_CODEC_H_

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "maas/types.h"

namespace maasd {

// An inference request as a client sent it, its tensors decoded.
struct InferRequest {
  std::string id;  // Echoed in the response; may be empty.
  std::vector<std::string> input_names;
  std::vector<at::Tensor> inputs;  // In the client's order, named by input_names.
  struct Output {
    std::string name;
    bool binary = false;  // Sent with the binary tensor data extension.
  };
  // The outputs asked for, in the response's order; empty: all of them.
  std::vector<Output> outputs;
  // The request's "binary_data_output": outputs not listed go binary too.
  bool binary_data_output = false;
  // The protocol's priority: 1 is the highest, larger numbers lower; 0 for the default.
  int64_t priority = 0;
  // The "timeout" parameter (the protocol gives microseconds); infinite when absent.
  absl::Duration timeout = absl::InfiniteDuration();
};

// A tensor's declaration, checked: a known datatype, dimensions neither negative nor
// overflowing (their product fits in an int64 many times over).
struct TensorHeader {
  std::string name;
  std::string datatype;  // As the client wrote it.
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<int64_t> shape;
  int64_t numel = 1;
};

// Checks the declaration of input `name`. InvalidArgument naming the input: an unknown datatype
// (BYTES included), a negative dimension, a shape too large to count.
absl::StatusOr<TensorHeader> CheckTensorHeader(std::string_view name, std::string_view datatype,
                                               std::vector<int64_t> shape);

// The tensor that `header` declares, its values the row-major, little-endian `bytes`.
// InvalidArgument naming the input when their size disagrees with the shape, or a BOOL byte is
// neither 0 nor 1.
absl::StatusOr<at::Tensor> TensorFromBytes(const TensorHeader& header, std::string_view bytes);

// Decodes a REST inference request. `body` is the whole HTTP body; `json_size` the value of
// the Inference-Header-Content-Length header when present (the JSON then is the first
// `json_size` bytes, and the inputs' binary data follow, in the order of the inputs that declare
// a binary_data_size). InvalidArgument, naming the input or field, for malformed JSON, an
// unknown datatype (BYTES included: no LibTorch dtype holds strings), a shape that disagrees
// with the data's length, values out of the datatype's range, or binary data that is missing,
// short or left over. Nothing is allocated for a tensor before its declared size is checked
// against the bytes that carry it.
absl::StatusOr<InferRequest> DecodeInferRequest(std::string_view body,
                                                std::optional<size_t> json_size);

// An output that a request asks for: its index in the signature's outputs, and whether it goes
// back with the binary tensor data extension (REST).
struct ChosenOutput {
  size_t index = 0;
  bool binary = false;
};

// The outputs `request` asks for, in its order; every output of the signature, in its order,
// when it names none. InvalidArgument naming an output that `model` version `version` (whose
// outputs are `specs`) does not have.
absl::StatusOr<std::vector<ChosenOutput>> ChooseOutputs(std::string_view model, int64_t version,
                                                        const InferRequest& request,
                                                        const std::vector<maas::TensorSpec>& specs);

// InvalidArgument for the parameter `key` of `where` ("the request", "input 'x'", "output 'y'")
// that maasd does not implement: it is refused rather than ignored, since a client relying on
// it would otherwise get a different answer than it asked for (stale shared memory, scores
// instead of labels, a stateless run of a sequence step). The message says why and lists
// `known`, the parameters of that place maasd does implement.
absl::Status UnsupportedParameter(std::string_view where, std::string_view key,
                                  std::string_view known);

// InvalidArgument naming an output that `outputs` asks for twice (a request naming one output
// many times would otherwise get an answer many times its size).
absl::Status CheckOutputsDistinct(const std::vector<InferRequest::Output>& outputs);

// An upper bound on the bytes of the answer carrying `chosen` of `outputs`: binary outputs
// take their bytes, JSON ones the longest text of their datatype per value.
size_t ResponseBytesAtMost(const std::vector<ChosenOutput>& chosen,
                           const std::vector<at::Tensor>& outputs);

// InvalidArgument when the answer of `model` version `version` would take more than
// `max_bytes` (ResponseBytesAtMost), naming both; checked before the answer is built.
absl::Status CheckResponseSize(std::string_view model, int64_t version,
                               const std::vector<ChosenOutput>& chosen,
                               const std::vector<at::Tensor>& outputs, size_t max_bytes);

// An encoded response: the body, and the size of its JSON part when binary outputs follow it
// (the value of the Inference-Header-Content-Length header).
struct EncodedResponse {
  std::string body;
  std::optional<size_t> json_size;
};

// Encodes the answer of `model` version `version` to `request`: `outputs` in the order of
// `specs` (the signature of that version). InvalidArgument when the request asked for an
// output the model does not have, or when the answer would take more than `max_bytes`
// (CheckResponseSize). Floating-point values are written in their shortest exact form; NaN and
// infinities as NaN, Infinity and -Infinity (as Python's json module reads them).
absl::StatusOr<EncodedResponse> EncodeInferResponse(std::string_view model, int64_t version,
                                                    const InferRequest& request,
                                                    const std::vector<maas::TensorSpec>& specs,
                                                    const std::vector<at::Tensor>& outputs,
                                                    size_t max_bytes);

// Appends `text` to `out` as a JSON string, quotes included.
void AppendJsonString(std::string_view text, std::string& out);

// `text` as a JSON string, quotes included.
std::string JsonString(std::string_view text);

}  // namespace maasd

#endif  // MAASD_INFER_CODEC_H_
