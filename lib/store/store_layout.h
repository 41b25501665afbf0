// The store's layout on disk, read and written under its rules: a model's folder, its versions,
// its model.json (aliases, last version), a version's manifest and artifact, the model lock,
// and what crashed publishes leave behind (docs/model-store.md, "On disk").
#ifndef MAAS_LIB_STORE_LAYOUT_H_
#define MAAS_LIB_STORE_LAYOUT_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "maas/model_store.h"
#include "store/manifest.h"
#include "store/store_files.h"

namespace maas::internal {

inline constexpr char kLockFile[] = ".lock";
inline constexpr char kModelMetaFile[] = "model.json";
inline constexpr char kManifestFile[] = "manifest.json";
inline constexpr char kStagingPrefix[] = ".staging-";
inline constexpr char kRemovingPrefix[] = ".removing-";

// Prefixes a parse error of a store file with the file's path, as DataLoss: the store, not the
// caller, is at fault.
absl::Status CorruptFile(const std::filesystem::path& path, const absl::Status& cause);

// "1, 2, 5", or "none", for messages.
std::string VersionList(const std::vector<int64_t>& versions);

// Returns the versions present in a model folder, increasing. Entries that are not version
// folders, and links leading out of the store, are ignored.
std::vector<int64_t> ListVersions(const std::filesystem::path& root,
                                  const std::filesystem::path& model_dir);

// Reads model.json; a missing file is an empty ModelMeta (a model whose aliases were never set).
absl::StatusOr<ModelMeta> ReadModelMeta(const std::filesystem::path& root,
                                        const std::filesystem::path& model_dir);

// Replaces model.json of model `name` atomically.
absl::Status WriteModelMeta(const std::filesystem::path& model_dir, std::string_view name,
                            const ModelMeta& meta);

// Deletes what crashed publishes and removals left behind, and returns what it deleted. Call
// with the model lock held: a staging folder whose own lock is free then belongs to a process
// that died.
std::vector<std::filesystem::path> CleanUpAbandoned(const std::filesystem::path& model_dir);

// Returns the folder of an existing model (one with at least one version).
absl::StatusOr<std::filesystem::path> ModelDir(const std::filesystem::path& root,
                                               std::string_view name);

// Reads the manifest of `version` and finds its artifact. NotFound (listing the versions) when
// it does not exist or was removed while being read; DataLoss when its files are damaged.
absl::StatusOr<ModelInfo> ReadVersion(const std::filesystem::path& root, std::string_view name,
                                      const std::filesystem::path& model_dir, int64_t version);

// A model's folder and model.json, read under the model's lock, held while this lives.
struct LockedModel {
  std::filesystem::path dir;
  FileLock lock;
  ModelMeta meta;
};

// Locks model `name` for `action` (named in messages): FailedPrecondition in a read-only store.
absl::StatusOr<LockedModel> LockModel(const std::filesystem::path& root,
                                      const ModelStoreOptions& options, std::string_view name,
                                      std::string_view action);

}  // namespace maas::internal

#endif  // MAAS_LIB_STORE_LAYOUT_H_
