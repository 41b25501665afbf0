// libFuzzer target: maasd's decoder of REST inference requests (JSON tensors and the binary
// tensor data extension), fed any bytes. Byte 0 says whether an
// Inference-Header-Content-Length comes with the body, bytes 1-2 its value; the rest is the body.
// Besides no crash and no sanitizer report: a decoded request holds one named tensor per
// input, and encoding those tensors back as outputs succeeds.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "infer_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  std::optional<size_t> json_size;
  if (data[0] & 1) json_size = static_cast<size_t>(data[1]) << 8 | data[2];
  const std::string_view body(reinterpret_cast<const char*>(data + 3), size - 3);
  absl::StatusOr<maasd::InferRequest> request = maasd::DecodeInferRequest(body, json_size);
  if (!request.ok()) {
    if (request.status().message().empty()) __builtin_trap();  // every refusal says why
    return 0;
  }
  if (request->inputs.size() != request->input_names.size()) __builtin_trap();
  std::vector<maas::TensorSpec> specs;
  for (size_t i = 0; i < request->inputs.size(); ++i) {
    specs.push_back({request->input_names[i], request->inputs[i].scalar_type(), {}});
  }
  maasd::InferRequest all_outputs;
  all_outputs.binary_data_output = (data[0] & 2) != 0;
  absl::StatusOr<maasd::EncodedResponse> encoded =
      maasd::EncodeInferResponse("fuzz", 1, all_outputs, specs, request->inputs);
  if (!encoded.ok()) __builtin_trap();
  return 0;
}
