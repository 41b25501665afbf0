// The one check that an artifact's bytes are what its manifest records, shared by
// ModelStore::Verify and Session::Create so that both say the same thing about the same fault.
#ifndef MAAS_LIB_INTEGRITY_H_
#define MAAS_LIB_INTEGRITY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "maas/types.h"

namespace maas::internal {

// DataLoss naming the artifact, the model and version, what it has and what the manifest
// records, when `size_bytes` differs from the manifest's, or else when `sha256` (if given: a
// caller may check the cheap size first and hash only when it matches) differs. OK otherwise.
absl::Status CheckArtifact(const ModelInfo& info, int64_t size_bytes,
                           const std::optional<std::string>& sha256);

}  // namespace maas::internal

#endif  // MAAS_LIB_INTEGRITY_H_
