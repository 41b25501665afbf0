// A TorchScript module's weights: their bytes, and their precision.
#ifndef MAAS_LIB_MODULE_WEIGHTS_H_
#define MAAS_LIB_MODULE_WEIGHTS_H_

#include <c10/core/ScalarType.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <optional>

#include "maas/session.h"

namespace maas::internal {

// The dtype a precision computes in; nullopt for the module's own.
std::optional<c10::ScalarType> ComputeDtype(Precision precision);

// Bytes of a module's parameters and buffers, each storage once (tied weights share one).
int64_t WeightBytes(const torch::jit::Module& module);

// Converts the floating-point parameters and buffers of a module, in place, to `dtype`; integer
// and boolean ones (indices, counters) stay as they are, unlike Module::to(dtype).
void ConvertFloatingWeights(torch::jit::Module& module, c10::ScalarType dtype);

}  // namespace maas::internal

#endif  // MAAS_LIB_MODULE_WEIGHTS_H_
