#include "infer_codec.h"

#include <ATen/ATen.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "datatypes.h"
#include "absl/container/flat_hash_set.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "fmt/format.h"
#include "util/utf8.h"

namespace maasd {
namespace {

namespace dom = simdjson::dom;

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(message); }

// One parser per thread for documents up to this size: it keeps its buffers between requests
// (no allocation per request once warm), and is never shared. A larger document gets a parser
// of its own, freed with the request: a parser's buffers take about 10x the document, which a
// kept parser would hold for the life of the process, per network thread.
constexpr size_t kKeptParserBytes = size_t{1} << 20;

dom::parser& KeptParser() {
  thread_local dom::parser parser;
  return parser;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", absl::StrJoin(shape, ", "));
}

absl::StatusOr<int64_t> NonNegativeInteger(dom::element value, std::string_view what) {
  int64_t number = 0;
  if (value.get_int64().get(number) != simdjson::SUCCESS || number < 0) {
    return Invalid(
        fmt::format("{} must be a non-negative integer; got {}", what, simdjson::minify(value)));
  }
  return number;
}

// Converts one JSON value to T, or says why it cannot.
template <typename T>
absl::Status Convert(dom::element value, T* out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (value.get_bool().get(*out) == simdjson::SUCCESS) return absl::OkStatus();
    return Invalid(fmt::format("expected true or false, got {}", simdjson::minify(value)));
  } else if constexpr (std::is_integral_v<T>) {
    int64_t number = 0;
    if (value.get_int64().get(number) != simdjson::SUCCESS) {
      return Invalid(fmt::format("expected an integer, got {}", simdjson::minify(value)));
    }
    if (number < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        number > static_cast<int64_t>(std::numeric_limits<T>::max())) {
      return Invalid(fmt::format("{} is out of the datatype's range [{}, {}]", number,
                                 static_cast<int64_t>(std::numeric_limits<T>::min()),
                                 static_cast<int64_t>(std::numeric_limits<T>::max())));
    }
    *out = static_cast<T>(number);
    return absl::OkStatus();
  } else {
    double number = 0;
    if (value.get_double().get(number) != simdjson::SUCCESS) {
      return Invalid(fmt::format("expected a number, got {}", simdjson::minify(value)));
    }
    *out = static_cast<T>(number);
    return absl::OkStatus();
  }
}

// Writes the values of `data` (an array, nested arrays flattened in row-major order, or a lone
// value) to out[0..capacity); counts them in *count, stopping at capacity + 1.
template <typename T>
absl::Status Flatten(dom::element data, T* out, int64_t capacity, int64_t* count) {
  dom::array array;
  if (data.get_array().get(array) == simdjson::SUCCESS) {
    for (dom::element item : array) {
      if (absl::Status s = Flatten(item, out, capacity, count); !s.ok()) return s;
      if (*count > capacity) return absl::OkStatus();
    }
    return absl::OkStatus();
  }
  if (*count >= capacity) {
    ++*count;
    return absl::OkStatus();
  }
  if (absl::Status s = Convert(data, out + *count); !s.ok()) {
    return Invalid(fmt::format("value {}: {}", *count, s.message()));
  }
  ++*count;
  return absl::OkStatus();
}

struct InputHeader {
  TensorHeader tensor;
  std::optional<int64_t> binary_size;
  std::optional<dom::element> data;
};

absl::StatusOr<InputHeader> ReadInputHeader(dom::element input, size_t index) {
  InputHeader header;
  dom::object fields;
  if (input.get_object().get(fields) != simdjson::SUCCESS) {
    return Invalid(fmt::format("inputs[{}] must be an object", index));
  }
  std::string_view name;
  if (fields["name"].get_string().get(name) != simdjson::SUCCESS) {
    return Invalid(fmt::format("inputs[{}] has no \"name\" string", index));
  }
  const std::string what = fmt::format("input '{}'", name);
  std::string_view datatype;
  if (fields["datatype"].get_string().get(datatype) != simdjson::SUCCESS) {
    return Invalid(fmt::format("{} has no \"datatype\" string", what));
  }
  dom::array shape_array;
  if (fields["shape"].get_array().get(shape_array) != simdjson::SUCCESS) {
    return Invalid(fmt::format("{} has no \"shape\" array", what));
  }
  std::vector<int64_t> shape;
  for (dom::element dim : shape_array) {
    int64_t size = 0;
    if (dim.get_int64().get(size) != simdjson::SUCCESS) {
      return Invalid(
          fmt::format("{}: a dimension must be an integer; got {}", what, simdjson::minify(dim)));
    }
    shape.push_back(size);
  }
  absl::StatusOr<TensorHeader> tensor = CheckTensorHeader(name, datatype, std::move(shape));
  if (!tensor.ok()) return tensor.status();
  header.tensor = *std::move(tensor);
  dom::element parameters;
  if (fields["parameters"].get(parameters) == simdjson::SUCCESS) {
    dom::object entries;
    if (parameters.get_object().get(entries) != simdjson::SUCCESS) {
      return Invalid(fmt::format("{}: \"parameters\" must be an object", what));
    }
    for (auto [key, value] : entries) {
      if (key != "binary_data_size") return UnsupportedParameter(what, key, "binary_data_size");
      absl::StatusOr<int64_t> bytes =
          NonNegativeInteger(value, fmt::format("{}: binary_data_size", what));
      if (!bytes.ok()) return bytes.status();
      header.binary_size = *bytes;
    }
  }
  dom::element data;
  if (fields["data"].get(data) == simdjson::SUCCESS) header.data = data;
  if (header.binary_size && header.data) {
    return Invalid(fmt::format("{} has both \"data\" and binary_data_size", what));
  }
  if (!header.binary_size && !header.data) {
    return Invalid(fmt::format("{} has no \"data\" (nor binary_data_size)", what));
  }
  return header;
}

absl::StatusOr<at::Tensor> TensorFromJson(const InputHeader& input, size_t json_size) {
  const TensorHeader& header = input.tensor;
  const std::string what = fmt::format("input '{}'", header.name);
  // Each value takes at least one byte and a separator: a shape that declares more values than
  // the JSON could hold is refused before anything is allocated.
  if (header.numel > static_cast<int64_t>(json_size / 2 + 1)) {
    return Invalid(fmt::format("{}: shape {} declares {} values, more than the request holds", what,
                               ShapeText(header.shape), header.numel));
  }
  at::Tensor tensor = at::empty(header.shape, at::TensorOptions().dtype(header.dtype));
  int64_t count = 0;
  absl::Status filled;
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, header.dtype, "maasd", [&] {
    filled = Flatten(*input.data, tensor.data_ptr<scalar_t>(), header.numel, &count);
  });
  if (!filled.ok()) return Invalid(fmt::format("{}: {}", what, filled.message()));
  if (count != header.numel) {
    return Invalid(fmt::format("{}: shape {} needs {} values; \"data\" holds {}{}", what,
                               ShapeText(header.shape), header.numel,
                               count > header.numel ? "more" : std::to_string(count), ""));
  }
  return tensor;
}

absl::Status ReadParameters(dom::element parameters, InferRequest& request) {
  dom::object fields;
  if (parameters.get_object().get(fields) != simdjson::SUCCESS) {
    return Invalid("\"parameters\" must be an object");
  }
  for (auto [key, value] : fields) {
    if (key == "binary_data_output") {
      if (value.get_bool().get(request.binary_data_output) != simdjson::SUCCESS) {
        return Invalid("parameter binary_data_output must be true or false");
      }
    } else if (key == "priority") {
      absl::StatusOr<int64_t> priority = NonNegativeInteger(value, "parameter priority");
      if (!priority.ok()) return priority.status();
      request.priority = *priority;
    } else if (key == "timeout") {
      absl::StatusOr<int64_t> micros =
          NonNegativeInteger(value, "parameter timeout (microseconds)");
      if (!micros.ok()) return micros.status();
      request.timeout = absl::Microseconds(*micros);
    } else {
      return UnsupportedParameter("the request", key, "binary_data_output, priority, timeout");
    }
  }
  return absl::OkStatus();
}

absl::Status ReadOutputs(dom::element outputs, InferRequest& request) {
  dom::array array;
  if (outputs.get_array().get(array) != simdjson::SUCCESS) {
    return Invalid("\"outputs\" must be an array");
  }
  for (dom::element output : array) {
    InferRequest::Output wanted;
    std::string_view name;
    if (output["name"].get_string().get(name) != simdjson::SUCCESS) {
      return Invalid("every entry of \"outputs\" needs a \"name\" string");
    }
    wanted.name = std::string(name);
    wanted.binary = request.binary_data_output;
    dom::element parameters;
    if (output["parameters"].get(parameters) == simdjson::SUCCESS) {
      const std::string where = fmt::format("output '{}'", name);
      dom::object entries;
      if (parameters.get_object().get(entries) != simdjson::SUCCESS) {
        return Invalid(fmt::format("{}: \"parameters\" must be an object", where));
      }
      for (auto [key, value] : entries) {
        if (key != "binary_data") return UnsupportedParameter(where, key, "binary_data");
        if (value.get_bool().get(wanted.binary) != simdjson::SUCCESS) {
          return Invalid(fmt::format("{}: binary_data must be true or false", where));
        }
      }
    }
    request.outputs.push_back(std::move(wanted));
  }
  return CheckOutputsDistinct(request.outputs);
}

// The longest JSON text of one value of `dtype`, its comma included.
size_t JsonCharsAtMost(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::Bool:
      return 6;  // false,
    case c10::ScalarType::Byte:
      return 4;
    case c10::ScalarType::Char:
      return 5;
    case c10::ScalarType::Short:
      return 7;
    case c10::ScalarType::Int:
      return 12;
    case c10::ScalarType::Double:
      return 25;  // -2.2250738585072014e-308,
    default:
      return 21;  // int64's -9223372036854775808, and every shorter float.
  }
}

// Appends the values of a contiguous CPU tensor as a flat JSON array.
template <typename T>
void AppendValues(const at::Tensor& tensor, std::string& out) {
  const T* values = tensor.data_ptr<T>();
  const int64_t n = tensor.numel();
  fmt::memory_buffer buffer;
  buffer.push_back('[');
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) buffer.push_back(',');
    if constexpr (std::is_same_v<T, bool>) {
      const std::string_view word = values[i] ? "true" : "false";
      buffer.append(word.data(), word.data() + word.size());
    } else if constexpr (std::is_integral_v<T>) {
      fmt::format_to(std::back_inserter(buffer), "{}", static_cast<int64_t>(values[i]));
    } else {
      using Wide = std::conditional_t<std::is_same_v<T, double>, double, float>;
      const Wide value = static_cast<Wide>(values[i]);
      if (std::isfinite(value)) {
        fmt::format_to(std::back_inserter(buffer), "{}", value);
      } else {
        const std::string_view word =
            std::isnan(value) ? "NaN" : (value > 0 ? "Infinity" : "-Infinity");
        buffer.append(word.data(), word.data() + word.size());
      }
    }
  }
  buffer.push_back(']');
  out.append(buffer.data(), buffer.size());
}

}  // namespace

absl::StatusOr<TensorHeader> CheckTensorHeader(std::string_view name, std::string_view datatype,
                                               std::vector<int64_t> shape) {
  TensorHeader header;
  header.name = std::string(name);
  header.datatype = std::string(datatype);
  const std::string what = fmt::format("input '{}'", name);
  std::optional<c10::ScalarType> dtype = DtypeFromDatatype(datatype);
  if (!dtype) {
    return Invalid(fmt::format(
        "{} has datatype {}; expected one of BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, BF16, "
        "FP32, FP64 (maas serves LibTorch tensors: no BYTES, no unsigned types above 8 bits)",
        what, datatype));
  }
  header.dtype = *dtype;
  // The product is checked against the request's bytes later; here it must only not overflow.
  // Checked on the product of the sizes other than 0: a zero size makes the tensor empty, but
  // LibTorch still computes its strides from the other sizes (and throws when they overflow).
  int64_t extent = 1;
  for (const int64_t size : shape) {
    if (size < 0) {
      return Invalid(
          fmt::format("{}: a dimension must be a non-negative integer; got {}", what, size));
    }
    if (size > 1 && extent > std::numeric_limits<int64_t>::max() / 16 / size) {
      return Invalid(fmt::format("{}: shape {} is too large", what, ShapeText(shape)));
    }
    extent *= std::max<int64_t>(size, 1);
    header.numel *= size;
  }
  header.shape = std::move(shape);
  return header;
}

absl::StatusOr<at::Tensor> TensorFromBytes(const TensorHeader& header, std::string_view bytes) {
  const std::string what = fmt::format("input '{}'", header.name);
  const int64_t element = static_cast<int64_t>(c10::elementSize(header.dtype));
  if (header.numel * element != static_cast<int64_t>(bytes.size())) {
    return Invalid(fmt::format("{}: shape {} of {} needs {} bytes; got {}", what,
                               ShapeText(header.shape), header.datatype, header.numel * element,
                               bytes.size()));
  }
  at::Tensor tensor = at::empty(header.shape, at::TensorOptions().dtype(header.dtype));
  if (!bytes.empty()) std::memcpy(tensor.data_ptr(), bytes.data(), bytes.size());
  if (header.dtype == c10::ScalarType::Bool) {
    for (unsigned char byte : bytes) {
      if (byte > 1)
        return Invalid(fmt::format("{}: a BOOL byte is {}; expected 0 or 1", what, byte));
    }
  }
  return tensor;
}

absl::StatusOr<std::vector<ChosenOutput>> ChooseOutputs(
    std::string_view model, int64_t version, const InferRequest& request,
    const std::vector<maas::TensorSpec>& specs) {
  std::vector<ChosenOutput> chosen;
  if (request.outputs.empty()) {
    for (size_t i = 0; i < specs.size(); ++i) chosen.push_back({i, request.binary_data_output});
    return chosen;
  }
  for (const InferRequest::Output& wanted : request.outputs) {
    size_t i = 0;
    while (i < specs.size() && specs[i].name != wanted.name) ++i;
    if (i == specs.size()) {
      std::vector<std::string> names;
      for (const maas::TensorSpec& spec : specs) names.push_back(spec.name);
      return Invalid(fmt::format("model '{}' version {} has no output '{}'; its outputs are {}",
                                 model, version, wanted.name, absl::StrJoin(names, ", ")));
    }
    chosen.push_back({i, wanted.binary});
  }
  return chosen;
}

void AppendJsonString(std::string_view text, std::string& out) {
  out.push_back('"');
  // Client bytes (a model name in a URL) may be invalid UTF-8, which would make the JSON
  // invalid: such bytes become U+FFFD.
  maas::internal::ForEachValidUtf8(text, [&out](std::string_view piece) {
    for (char c : piece) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
          } else {
            out.push_back(c);
          }
      }
    }
  });
  out.push_back('"');
}

std::string JsonString(std::string_view text) {
  std::string out;
  AppendJsonString(text, out);
  return out;
}

absl::StatusOr<InferRequest> DecodeInferRequest(std::string_view body,
                                                std::optional<size_t> json_size) {
  if (json_size && *json_size > body.size()) {
    return Invalid(
        fmt::format("Inference-Header-Content-Length is {} but the body has only {} bytes",
                    *json_size, body.size()));
  }
  const std::string_view json = body.substr(0, json_size.value_or(body.size()));
  std::string_view binary = body.substr(json.size());
  std::optional<dom::parser> own_parser;
  dom::parser& parser = json.size() <= kKeptParserBytes ? KeptParser() : own_parser.emplace();
  dom::element root;
  if (simdjson::error_code error = parser.parse(json.data(), json.size()).get(root)) {
    return Invalid(
        fmt::format("the request body is not valid JSON: {}", simdjson::error_message(error)));
  }
  dom::object fields;
  if (root.get_object().get(fields) != simdjson::SUCCESS) {
    return Invalid("the request body must be a JSON object");
  }
  InferRequest request;
  std::string_view id;
  if (fields["id"].get_string().get(id) == simdjson::SUCCESS) request.id = std::string(id);
  dom::element parameters;
  if (fields["parameters"].get(parameters) == simdjson::SUCCESS) {
    if (absl::Status s = ReadParameters(parameters, request); !s.ok()) return s;
  }
  dom::element outputs;
  if (fields["outputs"].get(outputs) == simdjson::SUCCESS) {
    if (absl::Status s = ReadOutputs(outputs, request); !s.ok()) return s;
  }
  dom::array inputs;
  if (fields["inputs"].get_array().get(inputs) != simdjson::SUCCESS) {
    return Invalid("the request has no \"inputs\" array");
  }
  size_t index = 0;
  for (dom::element input : inputs) {
    absl::StatusOr<InputHeader> header = ReadInputHeader(input, index++);
    if (!header.ok()) return header.status();
    const std::string& name = header->tensor.name;
    for (const std::string& seen : request.input_names) {
      if (seen == name) return Invalid(fmt::format("input '{}' is given twice", seen));
    }
    absl::StatusOr<at::Tensor> tensor;
    if (header->binary_size) {
      if (!json_size) {
        return Invalid(
            fmt::format("input '{}' declares binary_data_size but the request has no "
                        "Inference-Header-Content-Length header",
                        name));
      }
      if (static_cast<uint64_t>(*header->binary_size) > binary.size()) {
        return Invalid(fmt::format("input '{}': binary_data_size is {} but only {} bytes follow",
                                   name, *header->binary_size, binary.size()));
      }
      tensor = TensorFromBytes(header->tensor, binary.substr(0, *header->binary_size));
      binary.remove_prefix(*header->binary_size);
    } else {
      tensor = TensorFromJson(*header, json.size());
    }
    if (!tensor.ok()) return tensor.status();
    request.input_names.push_back(name);
    request.inputs.push_back(*std::move(tensor));
  }
  if (!binary.empty()) {
    return Invalid(
        fmt::format("{} bytes of binary data follow the inputs that declare them", binary.size()));
  }
  return request;
}

absl::Status UnsupportedParameter(std::string_view where, std::string_view key,
                                  std::string_view known) {
  std::string why;
  if (key == "sequence_id" || key == "sequence_start" || key == "sequence_end") {
    why = "maasd serves no sequence (stateful) models: each request runs on its own";
  } else if (key == "shared_memory_region" || key == "shared_memory_byte_size" ||
             key == "shared_memory_offset") {
    why = "maasd does not implement the shared-memory extension: send the tensor in the "
          "request (and read it from the answer)";
  } else if (key == "classification") {
    why = "maasd does not implement the classification extension (class_count): ask for the "
          "output itself and take its top classes";
  } else {
    why = "maasd does not know it";
  }
  return Invalid(fmt::format("{}: parameter '{}' is not supported ({}); {} takes {}", where,
                             maas::internal::ValidUtf8(key), why, where,
                             known.empty() ? "no parameters" : known));
}

absl::Status CheckOutputsDistinct(const std::vector<InferRequest::Output>& outputs) {
  absl::flat_hash_set<absl::string_view> seen;
  for (const InferRequest::Output& output : outputs) {
    if (!seen.insert(maas::internal::ToAbsl(output.name)).second) {
      return Invalid(fmt::format("output '{}' is asked for twice; name each output once",
                                 output.name));
    }
  }
  return absl::OkStatus();
}

size_t ResponseBytesAtMost(const std::vector<ChosenOutput>& chosen,
                           const std::vector<at::Tensor>& outputs) {
  size_t bytes = 256;  // The names, model and id are counted with each output's framing.
  for (const ChosenOutput& output : chosen) {
    const at::Tensor& tensor = outputs[output.index];
    const size_t numel = static_cast<size_t>(tensor.numel());
    bytes += 256 + 24 * static_cast<size_t>(tensor.dim()) +
             (output.binary ? static_cast<size_t>(tensor.nbytes())
                            : numel * JsonCharsAtMost(tensor.scalar_type()));
  }
  return bytes;
}

absl::Status CheckResponseSize(std::string_view model, int64_t version,
                               const std::vector<ChosenOutput>& chosen,
                               const std::vector<at::Tensor>& outputs, size_t max_bytes) {
  const size_t bytes = ResponseBytesAtMost(chosen, outputs);
  if (bytes <= max_bytes) return absl::OkStatus();
  return Invalid(fmt::format(
      "the answer of model '{}' version {} would take up to {} bytes, above the limit of {} "
      "(--max-response-bytes); ask for fewer outputs or rows, or binary outputs",
      model, version, bytes, max_bytes));
}

absl::StatusOr<EncodedResponse> EncodeInferResponse(std::string_view model, int64_t version,
                                                    const InferRequest& request,
                                                    const std::vector<maas::TensorSpec>& specs,
                                                    const std::vector<at::Tensor>& outputs,
                                                    size_t max_bytes) {
  absl::StatusOr<std::vector<ChosenOutput>> chosen = ChooseOutputs(model, version, request, specs);
  if (!chosen.ok()) return chosen.status();
  if (absl::Status s = CheckResponseSize(model, version, *chosen, outputs, max_bytes); !s.ok()) {
    return s;
  }
  EncodedResponse response;
  std::string& out = response.body;
  out += "{\"model_name\":";
  AppendJsonString(model, out);
  out += fmt::format(",\"model_version\":\"{}\"", version);
  if (!request.id.empty()) {
    out += ",\"id\":";
    AppendJsonString(request.id, out);
  }
  out += ",\"outputs\":[";
  std::vector<at::Tensor> binary_parts;
  for (size_t k = 0; k < chosen->size(); ++k) {
    const auto [i, binary] = (*chosen)[k];
    const at::Tensor tensor = outputs[i].cpu().contiguous();
    const std::string_view datatype = DatatypeOf(tensor.scalar_type());
    if (datatype.empty()) {
      return absl::InternalError(
          fmt::format("output '{}' has dtype {}, which the protocol cannot carry", specs[i].name,
                      c10::toString(tensor.scalar_type())));
    }
    if (k > 0) out += ',';
    out += "{\"name\":";
    AppendJsonString(specs[i].name, out);
    out += fmt::format(",\"datatype\":\"{}\",\"shape\":[{}]", datatype,
                       absl::StrJoin(tensor.sizes(), ","));
    if (binary) {
      out += fmt::format(",\"parameters\":{{\"binary_data_size\":{}}}}}", tensor.nbytes());
      binary_parts.push_back(tensor);
      continue;
    }
    out += ",\"data\":";
    AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, tensor.scalar_type(), "maasd",
                               [&] { AppendValues<scalar_t>(tensor, out); });
    out += '}';
  }
  out += "]}";
  if (!binary_parts.empty()) {
    response.json_size = out.size();
    for (const at::Tensor& part : binary_parts) {
      out.append(static_cast<const char*>(part.data_ptr()), part.nbytes());
    }
  }
  return response;
}

}  // namespace maasd
