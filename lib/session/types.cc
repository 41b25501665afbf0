#include "maas/types.h"

#include <set>

#include "absl/strings/str_join.h"
#include "fmt/core.h"

namespace maas {
namespace {

struct DtypeEntry {
  c10::ScalarType dtype;
  const char* name;      // In manifests: the Python API's name.
  const char* datatype;  // The Open Inference Protocol's name.
};

// The dtypes maas serves.
constexpr DtypeEntry kDtypes[] = {
    {c10::ScalarType::Float, "float32", "FP32"},     {c10::ScalarType::Double, "float64", "FP64"},
    {c10::ScalarType::Half, "float16", "FP16"},      {c10::ScalarType::BFloat16, "bfloat16", "BF16"},
    {c10::ScalarType::Byte, "uint8", "UINT8"},       {c10::ScalarType::Char, "int8", "INT8"},
    {c10::ScalarType::Short, "int16", "INT16"},      {c10::ScalarType::Int, "int32", "INT32"},
    {c10::ScalarType::Long, "int64", "INT64"},       {c10::ScalarType::Bool, "bool", "BOOL"},
};

constexpr size_t kMaxRank = 16;

std::string SupportedDtypeNames() {
  return absl::StrJoin(kDtypes, ", ",
                       [](std::string* out, const DtypeEntry& e) { out->append(e.name); });
}

bool IsTensorNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

absl::Status ValidateSpecs(const std::vector<TensorSpec>& specs, const char* kind) {
  if (specs.empty()) {
    return absl::InvalidArgumentError(
        fmt::format("signature has no {}s; at least one {} is required", kind, kind));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    if (spec.name.empty() || spec.name.size() > 128) {
      return absl::InvalidArgumentError(fmt::format(
          "{} {} has a name of {} characters; expected 1 to 128", kind, i, spec.name.size()));
    }
    for (char c : spec.name) {
      if (!IsTensorNameChar(c)) {
        return absl::InvalidArgumentError(fmt::format(
            "{} {} name '{}' holds a character outside [A-Za-z0-9._:-]", kind, i, spec.name));
      }
    }
    if (!seen.insert(spec.name).second) {
      return absl::InvalidArgumentError(
          fmt::format("{} name '{}' appears twice; names must be unique", kind, spec.name));
    }
    if (DtypeName(spec.dtype).rfind("unsupported", 0) == 0) {
      return absl::InvalidArgumentError(fmt::format("{} '{}' has dtype {}; supported: {}", kind,
                                                    spec.name, DtypeName(spec.dtype),
                                                    SupportedDtypeNames()));
    }
    if (spec.shape.size() > kMaxRank) {
      return absl::InvalidArgumentError(fmt::format("{} '{}' has {} dimensions; at most {} allowed",
                                                    kind, spec.name, spec.shape.size(), kMaxRank));
    }
    // Fixed dimensions are bounded so that no product of them overflows, and a signature read
    // from a hostile store cannot ask a warm-up for exabytes.
    constexpr int64_t kMaxItemElements = int64_t{1} << 31;
    int64_t elements = 1;
    for (int64_t dim : spec.shape) {
      if (dim < 1 && dim != kAnyDim) {
        return absl::InvalidArgumentError(
            fmt::format("{} '{}' has shape {}: every dimension must be positive or -1 (any)", kind,
                        spec.name, ShapeString(spec.shape)));
      }
      if (dim > kMaxItemElements || (dim > 0 && (elements *= dim) > kMaxItemElements)) {
        return absl::InvalidArgumentError(
            fmt::format("{} '{}' has shape {}: more than {} elements per item", kind, spec.name,
                        ShapeString(spec.shape), kMaxItemElements));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string DtypeName(c10::ScalarType dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return e.name;
  }
  return fmt::format("unsupported({})", c10::toString(dtype));
}

std::string_view DtypeDatatypeName(c10::ScalarType dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return e.datatype;
  }
  return {};
}

absl::StatusOr<c10::ScalarType> ParseDtype(std::string_view name) {
  for (const DtypeEntry& e : kDtypes) {
    if (name == e.name || name == e.datatype) return e.dtype;
  }
  return absl::InvalidArgumentError(fmt::format(
      "unknown dtype '{}'; expected one of {} (or the protocol's names: {})", name,
      SupportedDtypeNames(),
      absl::StrJoin(kDtypes, ", ",
                    [](std::string* out, const DtypeEntry& e) { out->append(e.datatype); })));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", absl::StrJoin(shape, ", "));
}

absl::Status ValidateSignature(const ModelSignature& signature) {
  if (absl::Status s = ValidateSpecs(signature.inputs, "input"); !s.ok()) return s;
  if (absl::Status s = ValidateSpecs(signature.outputs, "output"); !s.ok()) return s;
  if (!signature.batchable && (signature.min_batch_size != 1 || signature.max_batch_size != 0)) {
    return absl::InvalidArgumentError(fmt::format(
        "batch sizes {} to {} given for a model that is not batchable; expected the defaults "
        "(1 and 0)",
        signature.min_batch_size, signature.max_batch_size));
  }
  if (signature.min_batch_size < 1) {
    return absl::InvalidArgumentError(
        fmt::format("min_batch_size is {}; expected 1 or more", signature.min_batch_size));
  }
  if (signature.max_batch_size != 0 && signature.max_batch_size < signature.min_batch_size) {
    return absl::InvalidArgumentError(fmt::format(
        "max_batch_size is {}; expected 0 (no limit) or at least min_batch_size ({})",
        signature.max_batch_size, signature.min_batch_size));
  }
  return absl::OkStatus();
}

std::string_view ModelFormatName(ModelFormat format) {
  switch (format) {
    case ModelFormat::kTorchScript:
      return "torchscript";
    case ModelFormat::kAotInductor:
      return "aot_inductor";
  }
  return "unknown";
}

}  // namespace maas
