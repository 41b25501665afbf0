// Loading an AOTInductor package into LibTorch's loader, after the checks that keep a wrong
// package from failing late or crashing.
#ifndef MAAS_LIB_PACKAGE_LOADER_H_
#define MAAS_LIB_PACKAGE_LOADER_H_

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "maas/model_store.h"

namespace torch::inductor {
class AOTIModelPackageLoader;
}  // namespace torch::inductor

namespace maas::internal {

// A loaded package and the bytes of its weights.
struct LoadedPackage {
  LoadedPackage();
  LoadedPackage(LoadedPackage&&) noexcept;
  ~LoadedPackage();
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  int64_t weight_bytes = 0;
};

// Whether this CPU runs code compiled for `isa`, a package's AOTI_CPU_ISA ("AVX512 AVX512_VNNI"):
// its first word is the base instruction set AOTInductor compiled for (-march=native), which
// the CPU must have; the message names what is missing.
absl::Status CheckCpuIsa(std::string_view isa, std::string_view label);

// Loads an AOTInductor package on `device` after checking that it was compiled for that kind of
// device (and, on the CPU, for this CPU's instruction set): LibTorch's loader would otherwise
// fail late or, for an instruction set, crash.
absl::StatusOr<LoadedPackage> LoadPackage(const ModelInfo& info, std::string_view bytes,
                                          c10::Device device, std::string_view label);

}  // namespace maas::internal

#endif  // MAAS_LIB_PACKAGE_LOADER_H_
