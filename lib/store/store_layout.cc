#include "store/store_layout.h"

#include <algorithm>
#include <optional>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "store/names.h"
#include "util/posix_files.h"
#include "util/status_macros.h"

namespace maas::internal {

namespace fs = std::filesystem;

// Prefixes a parse error of a store file with the file's path, as DataLoss: the store, not the
// caller, is at fault.
absl::Status CorruptFile(const fs::path& path, const absl::Status& cause) {
  return absl::DataLossError(fmt::format("{}: {}", path.string(), cause.message()));
}

std::string VersionList(const std::vector<int64_t>& versions) {
  return versions.empty() ? "none" : absl::StrJoin(versions, ", ");
}

// Returns the versions present in a model folder, increasing. Entries that are not version
// folders, and links leading out of the store, are ignored.
std::vector<int64_t> ListVersions(const fs::path& root, const fs::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (const std::string& name : posix::ListFolder(model_dir, ec)) {
    int64_t version = ParseVersionFolderName(name);
    if (version < 1) continue;
    const fs::path entry = model_dir / name;
    std::error_code type_ec;
    if (posix::LinkTypeOf(entry, type_ec) == posix::FileType::kSymlink &&
        !ResolveInside(root, entry).ok()) {
      continue;
    }
    if (!posix::IsDirectory(entry, type_ec)) continue;
    versions.push_back(version);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

// Reads model.json; a missing file is an empty ModelMeta (a model whose aliases were never set).
absl::StatusOr<ModelMeta> ReadModelMeta(const fs::path& root, const fs::path& model_dir) {
  fs::path path = model_dir / kModelMetaFile;
  absl::StatusOr<fs::path> resolved = ResolveInside(root, path);
  if (absl::IsNotFound(resolved.status())) return ModelMeta{};
  if (!resolved.ok()) return resolved.status();
  MAAS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(*resolved));
  absl::StatusOr<ModelMeta> meta = ModelMetaFromText(text);
  if (!meta.ok()) return CorruptFile(path, meta.status());
  return meta;
}

absl::Status WriteModelMeta(const fs::path& model_dir, std::string_view name,
                            const ModelMeta& meta) {
  return ReplaceFileAtomically(model_dir / kModelMetaFile, ModelMetaToText(name, meta));
}

// Deletes what crashed publishes and removals left behind, and returns what it deleted. Call
// with the model lock held: a staging folder whose own lock is free then belongs to a process
// that died.
std::vector<fs::path> CleanUpAbandoned(const fs::path& model_dir) {
  std::error_code ec;
  std::vector<fs::path> abandoned;
  for (const std::string& name : posix::ListFolder(model_dir, ec)) {
    const fs::path entry = model_dir / name;
    if (absl::StartsWith(name, kStagingPrefix)) {
      absl::StatusOr<std::optional<FileLock>> lock =
          FileLock::TryAcquireExisting(entry / kLockFile);
      if (absl::IsNotFound(lock.status()) || (lock.ok() && lock->has_value())) {
        abandoned.push_back(entry);
      }
    } else if (absl::StartsWith(name, kRemovingPrefix) ||
               absl::StartsWith(name, std::string(kModelMetaFile) + ".tmp-")) {
      abandoned.push_back(entry);
    }
  }
  std::vector<fs::path> removed;
  for (const fs::path& path : abandoned) {
    std::error_code failed;
    posix::RemoveAll(path, failed);
    if (!failed) removed.push_back(path);
  }
  return removed;
}

// Returns the folder of an existing model (one with at least one version).
absl::StatusOr<fs::path> ModelDir(const fs::path& root, std::string_view name) {
  MAAS_RETURN_IF_ERROR(ValidateModelName(name));
  absl::StatusOr<fs::path> dir = ResolveInside(root, root / std::string(name));
  if (absl::IsNotFound(dir.status()) || (dir.ok() && ListVersions(root, *dir).empty())) {
    return absl::NotFoundError(
        fmt::format("model '{}' not found in store {}", name, root.string()));
  }
  return dir;
}

absl::StatusOr<ModelInfo> ReadVersion(const fs::path& root, std::string_view name,
                                      const fs::path& model_dir, int64_t version) {
  fs::path version_dir = model_dir / std::to_string(version);
  absl::StatusOr<fs::path> resolved = ResolveInside(root, version_dir);
  if (absl::IsNotFound(resolved.status())) {
    return absl::NotFoundError(fmt::format("model '{}' has no version {} (versions: {})", name,
                                           version, VersionList(ListVersions(root, model_dir))));
  }
  if (!resolved.ok()) return resolved.status();

  // A version removed while we read it is NotFound, not a corrupt store: Remove renames the
  // folder away first, so a vanished folder tells the two apart.
  auto missing = [&](absl::Status data_loss) {
    std::error_code ec;
    if (!posix::Exists(version_dir, ec)) {
      return absl::NotFoundError(
          fmt::format("model '{}' version {} was removed while being read", name, version));
    }
    return data_loss;
  };
  fs::path manifest_path = version_dir / kManifestFile;
  absl::StatusOr<fs::path> manifest_file = ResolveInside(root, manifest_path);
  if (absl::IsNotFound(manifest_file.status())) {
    return missing(absl::DataLossError(fmt::format("{} is missing", manifest_path.string())));
  }
  if (!manifest_file.ok()) return manifest_file.status();
  absl::StatusOr<std::string> text = ReadSmallFile(*manifest_file);
  if (absl::IsNotFound(text.status())) return missing(CorruptFile(manifest_path, text.status()));
  if (!text.ok()) return CorruptFile(manifest_path, text.status());
  absl::StatusOr<ModelInfo> info = ManifestFromText(*text);
  if (!info.ok()) return CorruptFile(manifest_path, info.status());
  if (info->name != name || info->version != version) {
    return CorruptFile(manifest_path,
                       absl::InvalidArgumentError(fmt::format(
                           "it describes model '{}' version {}, but lies in the folder of model "
                           "'{}' version {}",
                           info->name, info->version, name, version)));
  }

  fs::path artifact_path = version_dir / ArtifactFileName(info->format);
  absl::StatusOr<fs::path> artifact = ResolveInside(root, artifact_path);
  if (absl::IsNotFound(artifact.status())) {
    return missing(absl::DataLossError(fmt::format(
        "artifact {} of model '{}' version {} is missing", artifact_path.string(), name, version)));
  }
  if (!artifact.ok()) return artifact.status();
  info->artifact_path = *artifact;
  return info;
}

absl::StatusOr<LockedModel> LockModel(const fs::path& root, const ModelStoreOptions& options,
                                      std::string_view name, std::string_view action) {
  if (options.read_only) {
    return absl::FailedPreconditionError(fmt::format(
        "cannot {} of model '{}': store {} was opened read-only", action, name, root.string()));
  }
  MAAS_ASSIGN_OR_RETURN(fs::path model_dir, ModelDir(root, name));
  MAAS_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(model_dir / kLockFile));
  MAAS_ASSIGN_OR_RETURN(ModelMeta meta, ReadModelMeta(root, model_dir));
  // Publish does not write model.json; bring its high-water mark up to date for the writer.
  std::vector<int64_t> versions = ListVersions(root, model_dir);
  if (!versions.empty()) meta.last_version = std::max(meta.last_version, versions.back());
  return LockedModel{std::move(model_dir), std::move(lock), std::move(meta)};
}

}  // namespace maas::internal
