// The one check of the store that needs LibTorch: is an artifact a servable TorchScript module?
#ifndef MAAS_LIB_TORCHSCRIPT_CHECK_H_
#define MAAS_LIB_TORCHSCRIPT_CHECK_H_

#include <filesystem>

#include "absl/status/status.h"
#include "maas/types.h"

namespace maas::internal {

// Loads `path` on the CPU and checks that it has a `forward` method whose argument count admits
// the signature's inputs. InvalidArgument with LibTorch's reason otherwise. Never throws.
absl::Status CheckTorchScript(const std::filesystem::path& path, const ModelSignature& signature);

}  // namespace maas::internal

#endif  // MAAS_LIB_TORCHSCRIPT_CHECK_H_
