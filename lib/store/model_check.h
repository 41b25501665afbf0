// Publish's check of an artifact, the one check of the store that needs LibTorch: which format
// it is, and whether maas can serve it with the declared signature.
#ifndef MAAS_LIB_MODEL_CHECK_H_
#define MAAS_LIB_MODEL_CHECK_H_

#include <filesystem>

#include "absl/status/statusor.h"
#include "maas/types.h"

namespace maas::internal {

// What the check found.
struct CheckedModel {
  ModelFormat format = ModelFormat::kTorchScript;
  // The declared signature, with the batch bounds of an AOTInductor package filled in.
  ModelSignature signature;
};

// Reads `path`, refuses a damaged zip archive, then:
// - a TorchScript archive: loads it on the CPU and checks that it has a `forward` method whose
//   argument count admits the signature's inputs;
// - an AOTInductor package: reads the input checks compiled into it (without loading it: it may
//   be compiled for a GPU this machine lacks) and reconciles the signature with them
//   (internal::ReconcileSignature).
// InvalidArgument with the reason otherwise. Never throws.
absl::StatusOr<CheckedModel> CheckModelFile(const std::filesystem::path& path,
                                            const ModelSignature& signature);

}  // namespace maas::internal

#endif  // MAAS_LIB_MODEL_CHECK_H_
