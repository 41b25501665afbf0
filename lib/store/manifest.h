// The JSON files of the store: a version's manifest.json and a model's model.json.
#ifndef MAAS_LIB_MANIFEST_H_
#define MAAS_LIB_MANIFEST_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "util/json.h"
#include "maas/types.h"

namespace maas::internal {

// Format version written into the store's marker, model.json and the manifests of TorchScript
// versions; readers refuse files with a higher one than they know.
inline constexpr int64_t kStoreFormat = 1;
// The format of the manifest of an AOTInductor package's version: a maas that predates packages
// (which reads format 1 only) then refuses that version clearly instead of looking for model.pt.
inline constexpr int64_t kPackageManifestFormat = 2;

// The artifact's file name in a version's folder: model.pt or model.pt2.
std::string_view ArtifactFileName(ModelFormat format);

Json SignatureToJson(const ModelSignature& signature);
// InvalidArgument describing the first problem; `where` prefixes the message.
absl::StatusOr<ModelSignature> SignatureFromJson(const Json& json, std::string_view where);

// A version's manifest. `artifact_path` is not stored: the reader knows where the file lies.
std::string ManifestToText(const ModelInfo& info);
// Parses a manifest; any problem is InvalidArgument naming the field.
absl::StatusOr<ModelInfo> ManifestFromText(std::string_view text);

// model.json: per-model state that is not a version.
struct ModelMeta {
  int64_t last_version = 0;                // Highest version ever published; never reused.
  std::map<std::string, int64_t> aliases;  // alias -> version
};
std::string ModelMetaToText(std::string_view name, const ModelMeta& meta);
absl::StatusOr<ModelMeta> ModelMetaFromText(std::string_view text);

}  // namespace maas::internal

#endif  // MAAS_LIB_MANIFEST_H_
