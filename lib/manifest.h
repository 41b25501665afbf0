// The JSON files of the store: a version's manifest.json and a model's model.json.
#ifndef MAAS_LIB_MANIFEST_H_
#define MAAS_LIB_MANIFEST_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "json.h"
#include "maas/types.h"

namespace maas::internal {

// Format version written into every file; readers refuse files with a higher one.
inline constexpr int64_t kStoreFormat = 1;

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
