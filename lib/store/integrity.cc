#include "store/integrity.h"

#include "fmt/core.h"

namespace maas::internal {

absl::Status CheckArtifact(const ModelInfo& info, int64_t size_bytes,
                           const std::optional<std::string>& sha256) {
  if (size_bytes != info.size_bytes) {
    return absl::DataLossError(fmt::format(
        "artifact {} of model '{}' version {} has {} bytes; its manifest records {}",
        info.artifact_path.string(), info.name, info.version, size_bytes, info.size_bytes));
  }
  if (sha256 && *sha256 != info.sha256) {
    return absl::DataLossError(
        fmt::format("artifact {} of model '{}' version {} has SHA-256 {}; its manifest records {}",
                    info.artifact_path.string(), info.name, info.version, *sha256, info.sha256));
  }
  return absl::OkStatus();
}

}  // namespace maas::internal
