#include "session/tensor_checks.h"

#include <ATen/ops/linspace.h>
#include <ATen/ops/zeros.h>
#include <c10/util/StringUtil.h>

#include "absl/strings/str_join.h"
#include "fmt/core.h"

namespace maas::internal {
namespace {

std::string Names(const std::vector<TensorSpec>& specs) {
  return absl::StrJoin(specs, ", ",
                       [](std::string* out, const TensorSpec& s) { out->append(s.name); });
}

// The full expected shape as text, e.g. "[batch, 3, any]".
std::string ExpectedShape(const TensorSpec& spec, bool batchable) {
  std::vector<std::string> dims;
  if (batchable) dims.push_back("batch");
  for (int64_t d : spec.shape) dims.push_back(d == kAnyDim ? "any" : std::to_string(d));
  return fmt::format("[{}]", absl::StrJoin(dims, ", "));
}

// Shape problems of one tensor against its spec, or an empty string. Shared by inputs/outputs.
std::string ShapeProblem(const TensorSpec& spec, bool batchable, const at::Tensor& t) {
  const size_t offset = batchable ? 1 : 0;
  bool ok = static_cast<size_t>(t.dim()) == spec.shape.size() + offset;
  for (size_t d = 0; ok && d < spec.shape.size(); ++d) {
    ok = spec.shape[d] == kAnyDim || t.size(static_cast<int64_t>(d + offset)) == spec.shape[d];
  }
  if (ok) return "";
  return fmt::format("expected shape {}, got {}", ExpectedShape(spec, batchable),
                     ShapeString(t.sizes().vec()));
}

// "float32 (FP32)".
std::string BothNames(c10::ScalarType dtype) {
  const std::string_view datatype = DtypeDatatypeName(dtype);
  if (datatype.empty()) return DtypeName(dtype);
  return fmt::format("{} ({})", DtypeName(dtype), datatype);
}

}  // namespace

absl::StatusOr<int64_t> CheckInputs(const ModelSignature& signature,
                                    const std::vector<at::Tensor>& inputs, std::string_view label) {
  if (inputs.size() != signature.inputs.size()) {
    return absl::InvalidArgumentError(fmt::format("{}: expected {} input(s) ({}), got {}", label,
                                                  signature.inputs.size(), Names(signature.inputs),
                                                  inputs.size()));
  }
  int64_t batch = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TensorSpec& spec = signature.inputs[i];
    const at::Tensor& t = inputs[i];
    if (!t.defined()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: input '{}' is an undefined tensor", label, spec.name));
    }
    // Only dense tensors on a real device can be batched and run: a sparse, mkldnn or meta
    // input would otherwise fail the whole batch it joined.
    if (t.layout() != c10::kStrided) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: input '{}' has layout {}; expected a dense (strided) tensor (call .to_dense())",
          label, spec.name, c10::str(t.layout())));
    }
    if (!t.device().is_cpu() && !t.device().is_cuda()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: input '{}' is on device {}; expected the CPU or a CUDA device", label,
                      spec.name, t.device().str()));
    }
    if (t.scalar_type() != spec.dtype) {
      // Both names: PyTorch's for in-process callers, the protocol's for network clients.
      return absl::InvalidArgumentError(fmt::format(
          "{}: input '{}': expected dtype {}, got {}", label, spec.name, BothNames(spec.dtype),
          BothNames(t.scalar_type())));
    }
    if (std::string problem = ShapeProblem(spec, signature.batchable, t); !problem.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: input '{}': {}", label, spec.name, problem));
    }
    if (!signature.batchable) continue;
    if (t.size(0) < 1) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: input '{}' holds a batch of 0 items; at least 1 is needed", label, spec.name));
    }
    if (i == 0) {
      batch = t.size(0);
    } else if (t.size(0) != batch) {
      return absl::InvalidArgumentError(
          fmt::format("{}: input '{}' has batch size {} but input '{}' has {}; they must be equal",
                      label, spec.name, t.size(0), signature.inputs[0].name, batch));
    }
  }
  if (signature.max_batch_size > 0 && batch > signature.max_batch_size) {
    return absl::InvalidArgumentError(
        fmt::format("{}: the inputs hold a batch of {} items; the model accepts at most {}", label,
                    batch, signature.max_batch_size));
  }
  return batch;
}

absl::StatusOr<std::vector<at::Tensor>> CollectOutputs(
    const ModelSignature& signature, c10::IValue returned, int64_t batch, std::string_view label,
    std::optional<c10::ScalarType> compute_dtype) {
  const std::vector<TensorSpec>& specs = signature.outputs;
  std::vector<c10::IValue> values;
  if (returned.isTuple()) {
    values = returned.toTupleRef().elements().vec();
  } else if (returned.isList()) {
    values = returned.toListRef().vec();
  } else if (returned.isGenericDict()) {
    c10::Dict<c10::IValue, c10::IValue> dict = returned.toGenericDict();
    for (const TensorSpec& spec : specs) {
      auto it = dict.find(c10::IValue(spec.name));
      if (it == dict.end()) {
        return absl::InternalError(
            fmt::format("{} returned a dict without the output '{}' that its signature declares",
                        label, spec.name));
      }
      values.push_back(it->value());
    }
  } else {
    values.push_back(std::move(returned));
  }
  if (values.size() != specs.size()) {
    return absl::InternalError(
        fmt::format("{} returned {} value(s); its signature declares {} ({})", label, values.size(),
                    specs.size(), Names(specs)));
  }
  std::vector<at::Tensor> outputs;
  outputs.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const TensorSpec& spec = specs[i];
    if (!values[i].isTensor()) {
      return absl::InternalError(fmt::format("{} returned a {} for output '{}'; expected a Tensor",
                                             label, values[i].tagKind(), spec.name));
    }
    at::Tensor t = std::move(values[i]).toTensor();
    if (compute_dtype && t.scalar_type() == *compute_dtype && c10::isFloatingType(spec.dtype)) {
      t = t.to(spec.dtype);
    }
    if (t.scalar_type() != spec.dtype) {
      return absl::InternalError(
          fmt::format("{} returned output '{}' as {}; its signature declares {}", label, spec.name,
                      DtypeName(t.scalar_type()), DtypeName(spec.dtype)));
    }
    if (std::string problem = ShapeProblem(spec, signature.batchable, t); !problem.empty()) {
      return absl::InternalError(fmt::format(
          "{} returned output '{}' that contradicts its signature: {}", label, spec.name, problem));
    }
    if (signature.batchable && t.size(0) != batch) {
      return absl::InternalError(
          fmt::format("{} returned output '{}' with {} item(s) for a batch of {}", label, spec.name,
                      t.size(0), batch));
    }
    outputs.push_back(std::move(t));
  }
  return outputs;
}

std::vector<at::Tensor> ExampleInputs(const ModelSignature& signature, c10::Device device) {
  std::vector<at::Tensor> inputs;
  for (const TensorSpec& spec : signature.inputs) {
    std::vector<int64_t> shape;
    if (signature.batchable) shape.push_back(1);
    for (int64_t d : spec.shape) shape.push_back(d == kAnyDim ? 1 : d);
    at::TensorOptions options = at::TensorOptions().dtype(spec.dtype).device(device);
    if (at::isFloatingType(spec.dtype)) {
      // Spread values: a graph change that alters results shows on them, not on zeros.
      int64_t count = 1;
      for (int64_t d : shape) count *= d;
      inputs.push_back(at::linspace(0.0, 1.0, count, options).reshape(shape));
    } else {
      inputs.push_back(at::zeros(shape, options));
    }
  }
  return inputs;
}

}  // namespace maas::internal
