// libFuzzer target: maasd's decoders of inference requests, fed any bytes. Byte 0 chooses:
//   - bit 7 clear: REST (JSON tensors and the binary tensor data extension). Bit 0 says whether
//     an Inference-Header-Content-Length comes with the body, bytes 1-2 its value; bit 1 asks
//     for binary outputs; from byte 3 on, the body.
//   - bit 7 set: gRPC. From byte 1 on, a serialized ModelInferRequest, as gRPC hands it over
//     once protobuf has parsed the wire bytes (typed contents, raw contents, shapes,
//     parameters).
// Besides no crash and no sanitizer report: every refusal says why, a decoded request holds one
// named tensor per input, and encoding those tensors back as outputs succeeds, in the
// protocol's own encoding.
#include <ATen/ATen.h>
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "grpc_codec.h"
#include "infer_codec.h"

namespace {

void CheckDecoded(const absl::StatusOr<maasd::InferRequest>& request, bool grpc, bool binary) {
  if (!request.ok()) {
    if (request.status().message().empty()) __builtin_trap();  // every refusal says why
    return;
  }
  if (request->inputs.size() != request->input_names.size()) __builtin_trap();
  std::vector<maas::TensorSpec> specs;
  for (size_t i = 0; i < request->inputs.size(); ++i) {
    specs.push_back({request->input_names[i], request->inputs[i].scalar_type(), {}});
  }
  maasd::InferRequest all_outputs;
  all_outputs.binary_data_output = binary;
  if (grpc) {
    inference::ModelInferResponse response;
    if (!maasd::EncodeGrpcInferResponse("fuzz", 1, all_outputs, specs, request->inputs,
                                          SIZE_MAX, &response)
             .ok() ||
        response.raw_output_contents_size() != static_cast<int>(specs.size())) {
      __builtin_trap();
    }
  } else if (!maasd::EncodeInferResponse("fuzz", 1, all_outputs, specs, request->inputs, SIZE_MAX)
                    .ok()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // as maasd: no line per malformed message
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  if (data[0] & 0x80) {
    inference::ModelInferRequest message;
    if (!message.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
    CheckDecoded(maasd::DecodeGrpcInferRequest(message), true, false);
    return 0;
  }
  std::optional<size_t> json_size;
  if (data[0] & 1) json_size = static_cast<size_t>(data[1]) << 8 | data[2];
  const std::string_view body(reinterpret_cast<const char*>(data + 3), size - 3);
  CheckDecoded(maasd::DecodeInferRequest(body, json_size), false, (data[0] & 2) != 0);
  return 0;
}
