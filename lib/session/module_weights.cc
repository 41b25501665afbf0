#include "session/module_weights.h"

#include <unordered_set>

namespace maas::internal {

// The dtype a precision computes in; nullopt for the module's own.
std::optional<c10::ScalarType> ComputeDtype(Precision precision) {
  switch (precision) {
    case Precision::kFloat16:
      return c10::ScalarType::Half;
    case Precision::kBFloat16:
      return c10::ScalarType::BFloat16;
    case Precision::kAsSaved:
      break;
  }
  return std::nullopt;
}

// Bytes of a module's parameters and buffers, each storage once (tied weights share one).
int64_t WeightBytes(const torch::jit::Module& module) {
  std::unordered_set<const void*> seen;
  int64_t bytes = 0;
  auto add = [&](const at::Tensor& tensor) {
    if (!tensor.defined() || !tensor.has_storage()) return;
    if (seen.insert(tensor.storage().unsafeGetStorageImpl()).second) {
      bytes += static_cast<int64_t>(tensor.storage().nbytes());
    }
  };
  for (const at::Tensor& parameter : module.parameters(/*recurse=*/true)) add(parameter);
  for (const at::Tensor& buffer : module.buffers(/*recurse=*/true)) add(buffer);
  return bytes;
}

// Converts the floating-point parameters and buffers of a module, in place, to `dtype`; integer
// and boolean ones (indices, counters) stay as they are, unlike Module::to(dtype).
void ConvertFloatingWeights(torch::jit::Module& module, c10::ScalarType dtype) {
  auto convert = [dtype](at::Tensor tensor) {
    if (tensor.defined() && tensor.is_floating_point() && tensor.scalar_type() != dtype) {
      tensor.set_data(tensor.to(dtype));
    }
  };
  for (const at::Tensor& parameter : module.parameters(/*recurse=*/true)) convert(parameter);
  for (const at::Tensor& buffer : module.buffers(/*recurse=*/true)) convert(buffer);
}

}  // namespace maas::internal
