#include "session/package_loader.h"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <string>
#include <thread>

#include "session/aoti_package.h"
#include "fmt/core.h"
#include "util/status_macros.h"
#include "session/torch_errors.h"

namespace maas::internal {

LoadedPackage::LoadedPackage() = default;
LoadedPackage::LoadedPackage(LoadedPackage&&) noexcept = default;
LoadedPackage::~LoadedPackage() = default;

// Whether this CPU runs code compiled for `isa`, a package's AOTI_CPU_ISA ("AVX512 AVX512_VNNI"):
// its first word is the base instruction set AOTInductor compiled for (-march=native), which
// the CPU must have; the message names what is missing.
absl::Status CheckCpuIsa(std::string_view isa, std::string_view label) {
  const std::string_view base = isa.substr(0, isa.find(' '));
  __builtin_cpu_init();
  bool present = true;
  if (base == "AVX512") {
    present = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  } else if (base == "AVX2") {
    present = __builtin_cpu_supports("avx2");
  }
  if (!present) {
    return absl::FailedPreconditionError(fmt::format(
        "{}: the package was compiled for CPUs with {} ({}), which this CPU lacks; compile it on "
        "a machine like the ones that serve it",
        label, base, isa));
  }
  return absl::OkStatus();
}

// Loads an AOTInductor package on `device` after checking that it was compiled for that kind of
// device (and, on the CPU, for this CPU's instruction set): LibTorch's loader would otherwise
// fail late or, for an instruction set, crash.
absl::StatusOr<LoadedPackage> LoadPackage(const ModelInfo& info, std::string_view bytes,
                                          c10::Device device, std::string_view label) {
  MAAS_ASSIGN_OR_RETURN(PackageDescription description,
                        InspectPackage(bytes, info.artifact_path.string()));
  const std::string wanted = device.is_cuda() ? "cuda" : "cpu";
  if (description.device != wanted) {
    return absl::FailedPreconditionError(fmt::format(
        "{}: the AOTInductor package was compiled for device '{}' but this session runs on '{}'; "
        "export and compile it on that device (or deploy it on a '{}' device)",
        label, description.device, device.str(), description.device));
  }
  if (device.is_cpu()) MAAS_RETURN_IF_ERROR(CheckCpuIsa(description.cpu_isa, label));
  LoadedPackage loaded;
  try {
    // One model instance per core (and one more): the most that Scheduler workers and callers
    // of Run can use at once; they share the weights, each has its own activations.
    const size_t runners = std::max(2u, std::thread::hardware_concurrency() + 1);
    loaded.loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        info.artifact_path.string(), description.model_name, /*run_single_threaded=*/false, runners,
        device.is_cuda() ? device.index() : c10::DeviceIndex(-1));
    // Each constant's own bytes: a package may keep them all in one blob.
    for (const auto& [name, tensor] :
         loaded.loader->get_runner()->extract_constants_map(/*use_inactive=*/false)) {
      if (tensor.defined()) loaded.weight_bytes += static_cast<int64_t>(tensor.nbytes());
    }
  } catch (...) {
    return StatusFromCurrentException(
        absl::StatusCode::kFailedPrecondition,
        fmt::format("{}: LibTorch cannot load the AOTInductor package {}", label,
                    info.artifact_path.string()));
  }
  return loaded;
}

}  // namespace maas::internal
