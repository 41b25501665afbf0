#include "grpc_codec.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <string>
#include <type_traits>

#include "absl/strings/str_join.h"
#include "datatypes.h"
#include "fmt/core.h"

namespace maasd {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(message); }

// A parameter's value as a non-negative integer (clients send int64_param, Triton's uint64).
absl::StatusOr<int64_t> NonNegativeParameter(const std::string& name,
                                             const inference::InferParameter& value) {
  switch (value.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      if (value.int64_param() >= 0) return value.int64_param();
      break;
    case inference::InferParameter::kUint64Param:
      if (value.uint64_param() <= uint64_t{std::numeric_limits<int64_t>::max()}) {
        return static_cast<int64_t>(value.uint64_param());
      }
      break;
    default:
      break;
  }
  return Invalid(
      fmt::format("parameter {} must be a non-negative int64_param or uint64_param; "
                  "got {}",
                  name, value.ShortDebugString()));
}

// Copies `values` (a typed contents field) into a new tensor of `header`'s shape, each value
// checked against T's range.
template <typename T, typename Values>
absl::StatusOr<at::Tensor> Fill(const TensorHeader& header, const Values& values,
                                std::string_view field) {
  if (values.size() != header.numel) {
    return Invalid(
        fmt::format("input '{}': shape [{}] of {} needs {} values in contents.{}; it "
                    "holds {}",
                    header.name, absl::StrJoin(header.shape, ", "), header.datatype, header.numel,
                    field, values.size()));
  }
  at::Tensor tensor = at::empty(header.shape, at::TensorOptions().dtype(header.dtype));
  T* out = tensor.data_ptr<T>();
  int64_t i = 0;
  for (const auto value : values) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                  !std::is_same_v<T, std::decay_t<decltype(value)>>) {
      const int64_t wide = static_cast<int64_t>(value);  // From int32 or uint32.
      if (wide < int64_t{std::numeric_limits<T>::min()} ||
          wide > int64_t{std::numeric_limits<T>::max()}) {
        return Invalid(
            fmt::format("input '{}': value {} is {}, out of the datatype's range [{}, "
                        "{}]",
                        header.name, i, wide, static_cast<int64_t>(std::numeric_limits<T>::min()),
                        static_cast<int64_t>(std::numeric_limits<T>::max())));
      }
    }
    out[i++] = static_cast<T>(value);
  }
  return tensor;
}

absl::StatusOr<at::Tensor> TensorFromContents(const TensorHeader& header,
                                              const inference::InferTensorContents& contents) {
  switch (header.dtype) {
    case c10::ScalarType::Bool:
      return Fill<bool>(header, contents.bool_contents(), "bool_contents");
    case c10::ScalarType::Byte:
      return Fill<uint8_t>(header, contents.uint_contents(), "uint_contents");
    case c10::ScalarType::Char:
      return Fill<int8_t>(header, contents.int_contents(), "int_contents");
    case c10::ScalarType::Short:
      return Fill<int16_t>(header, contents.int_contents(), "int_contents");
    case c10::ScalarType::Int:
      return Fill<int32_t>(header, contents.int_contents(), "int_contents");
    case c10::ScalarType::Long:
      return Fill<int64_t>(header, contents.int64_contents(), "int64_contents");
    case c10::ScalarType::Float:
      return Fill<float>(header, contents.fp32_contents(), "fp32_contents");
    case c10::ScalarType::Double:
      return Fill<double>(header, contents.fp64_contents(), "fp64_contents");
    default:
      return Invalid(
          fmt::format("input '{}': {} has no typed contents in the protocol; send it in "
                      "raw_input_contents",
                      header.name, header.datatype));
  }
}

}  // namespace

absl::StatusOr<InferRequest> DecodeGrpcInferRequest(const inference::ModelInferRequest& request) {
  InferRequest decoded;
  decoded.id = request.id();
  for (const auto& [name, value] : request.parameters()) {
    if (name == "priority") {
      absl::StatusOr<int64_t> priority = NonNegativeParameter(name, value);
      if (!priority.ok()) return priority.status();
      decoded.priority = *priority;
    } else if (name == "timeout") {
      absl::StatusOr<int64_t> micros = NonNegativeParameter("timeout (microseconds)", value);
      if (!micros.ok()) return micros.status();
      decoded.timeout = absl::Microseconds(*micros);
    } else if (name == "triton_enable_empty_final_response") {
      // Triton's clients (perf_analyzer) ask for a final empty response of decoupled models;
      // maasd's models answer once, and that answer is the final one: nothing to change.
    } else {
      return UnsupportedParameter("the request", name,
                                  "priority, timeout, triton_enable_empty_final_response");
    }
  }
  for (const auto& output : request.outputs()) {
    for (const auto& [key, value] : output.parameters()) {
      // REST's binary-output switch, which the KServe SDK's clients also send over gRPC. A
      // gRPC answer always carries raw_output_contents, which those clients read either way.
      if (key != "binary_data") {
        return UnsupportedParameter(fmt::format("output '{}'", output.name()), key,
                                    "binary_data");
      }
      if (value.parameter_choice_case() != inference::InferParameter::kBoolParam) {
        return Invalid(fmt::format("output '{}': parameter binary_data must be a bool_param; got {}",
                                   output.name(), value.ShortDebugString()));
      }
    }
    decoded.outputs.push_back({output.name(), false});
  }
  if (absl::Status s = CheckOutputsDistinct(decoded.outputs); !s.ok()) return s;
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return Invalid(
        fmt::format("raw_input_contents has {} entries for {} inputs; give one per "
                    "input, in the order of inputs",
                    request.raw_input_contents_size(), request.inputs_size()));
  }
  for (int i = 0; i < request.inputs_size(); ++i) {
    const inference::ModelInferRequest::InferInputTensor& input = request.inputs(i);
    if (std::find(decoded.input_names.begin(), decoded.input_names.end(), input.name()) !=
        decoded.input_names.end()) {
      return Invalid(fmt::format("input '{}' is given twice", input.name()));
    }
    for (const auto& [key, value] : input.parameters()) {
      // The KServe SDK's gRPC client sends REST's binary_data_size with raw contents: checked
      // against the raw entry's size, so that a client and maasd never disagree on the bytes.
      if (key != "binary_data_size") {
        return UnsupportedParameter(fmt::format("input '{}'", input.name()), key,
                                    "binary_data_size");
      }
      absl::StatusOr<int64_t> size =
          NonNegativeParameter(fmt::format("binary_data_size of input '{}'", input.name()), value);
      if (!size.ok()) return size.status();
      if (!raw) {
        return Invalid(fmt::format(
            "input '{}' declares binary_data_size but the request has no raw_input_contents",
            input.name()));
      }
      if (static_cast<size_t>(*size) != request.raw_input_contents(i).size()) {
        return Invalid(fmt::format(
            "input '{}': binary_data_size is {} but its raw_input_contents entry has {} bytes",
            input.name(), *size, request.raw_input_contents(i).size()));
      }
    }
    absl::StatusOr<TensorHeader> header = CheckTensorHeader(
        input.name(), input.datatype(), {input.shape().begin(), input.shape().end()});
    if (!header.ok()) return header.status();
    absl::StatusOr<at::Tensor> tensor;
    if (raw) {
      if (input.has_contents()) {
        return Invalid(
            fmt::format("input '{}' has contents, and the request raw_input_contents: "
                        "use one or the other",
                        input.name()));
      }
      tensor = TensorFromBytes(*header, request.raw_input_contents(i));
    } else {
      tensor = TensorFromContents(*header, input.contents());
    }
    if (!tensor.ok()) return tensor.status();
    decoded.input_names.push_back(input.name());
    decoded.inputs.push_back(*std::move(tensor));
  }
  return decoded;
}

absl::Status EncodeGrpcInferResponse(std::string_view model, int64_t version,
                                     const InferRequest& request,
                                     const std::vector<maas::TensorSpec>& specs,
                                     const std::vector<at::Tensor>& outputs, size_t max_bytes,
                                     inference::ModelInferResponse* response) {
  absl::StatusOr<std::vector<ChosenOutput>> chosen = ChooseOutputs(model, version, request, specs);
  if (!chosen.ok()) return chosen.status();
  for (ChosenOutput& output : *chosen) output.binary = true;  // raw_output_contents
  if (absl::Status s = CheckResponseSize(model, version, *chosen, outputs, max_bytes); !s.ok()) {
    return s;
  }
  response->set_model_name(std::string(model));
  response->set_model_version(std::to_string(version));
  response->set_id(request.id);
  for (const ChosenOutput& output : *chosen) {
    const at::Tensor tensor = outputs[output.index].cpu().contiguous();
    const std::string_view datatype = DatatypeOf(tensor.scalar_type());
    if (datatype.empty()) {
      return absl::InternalError(
          fmt::format("output '{}' has dtype {}, which the protocol cannot "
                      "carry",
                      specs[output.index].name, c10::toString(tensor.scalar_type())));
    }
    inference::ModelInferResponse::InferOutputTensor* entry = response->add_outputs();
    entry->set_name(specs[output.index].name);
    entry->set_datatype(std::string(datatype));
    for (const int64_t size : tensor.sizes()) entry->add_shape(size);
    response->add_raw_output_contents()->assign(static_cast<const char*>(tensor.data_ptr()),
                                                tensor.nbytes());
  }
  return absl::OkStatus();
}

}  // namespace maasd
