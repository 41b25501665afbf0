#include "maas/model_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "store/integrity.h"
#include "maas/version.h"
#include "store/manifest.h"
#include "store/model_check.h"
#include "store/names.h"
#include "util/posix_files.h"
#include "store/publish_hook.h"
#include "store/sha256.h"
#include "util/status_macros.h"
#include "store/store_files.h"
#include "store/store_layout.h"
#include "store/version_resolver.h"

// On-disk layout (docs/model-store.md):
//   <root>/.maas-store.json            marker with the format version
//   <root>/<model>/.lock               flock serializing changes to the model
//   <root>/<model>/model.json          last version ever published and the aliases
//   <root>/<model>/<N>/model.pt        the artifact (read-only): a TorchScript archive,
//                   or model.pt2       an AOTInductor package
//   <root>/<model>/<N>/manifest.json   signature, sha256, size, creation time, ...
//   <root>/<model>/.staging-<unique>/  a publish in progress (or abandoned by a crash)
//   <root>/<model>/.removing-<unique>/ a removal in progress (or abandoned by a crash)

namespace maas {
namespace fs = std::filesystem;
using internal::CleanUpAbandoned;
using internal::CorruptFile;
using internal::FileLock;
using internal::kLockFile;
using internal::kManifestFile;
using internal::kModelMetaFile;
using internal::kRemovingPrefix;
using internal::kStagingPrefix;
using internal::ListVersions;
using internal::LockedModel;
using internal::LockModel;
using internal::ModelDir;
using internal::ModelMeta;
using internal::ReadModelMeta;
using internal::ReadVersion;
using internal::VersionList;
using internal::WriteModelMeta;

namespace {

constexpr char kMarkerFile[] = ".maas-store.json";

std::atomic<internal::PublishHook> publish_hook{nullptr};

void RunPublishHook(std::string_view point) {
  if (internal::PublishHook hook = publish_hook.load()) hook(point);
}

}  // namespace

namespace internal {
void SetPublishHookForTesting(PublishHook hook) { publish_hook.store(hook); }
}  // namespace internal

ModelStore::ModelStore(fs::path root, Options options)
    : root_(std::move(root)), options_(options) {}

ModelStore::~ModelStore() = default;

absl::StatusOr<std::unique_ptr<ModelStore>> ModelStore::Open(const fs::path& root,
                                                             Options options) {
  if (root.empty()) return absl::InvalidArgumentError("store root is an empty path");
  std::error_code ec;
  fs::path absolute = internal::posix::Absolute(root, ec);
  if (ec) return internal::FileError("resolve", root, ec);
  if (!internal::posix::Exists(absolute, ec)) {
    if (!options.create_if_missing || options.read_only) {
      return absl::NotFoundError(fmt::format(
          "store root {} does not exist (and the options forbid creating it)", absolute.string()));
    }
    internal::posix::CreateDirectories(absolute, ec);
    if (ec) return internal::FileError("create the store root", absolute, ec);
  }
  if (!internal::posix::IsDirectory(absolute, ec)) {
    return absl::FailedPreconditionError(
        fmt::format("store root {} exists but is not a folder", absolute.string()));
  }
  fs::path canonical = internal::posix::Canonical(absolute, ec);
  if (ec) return internal::FileError("resolve", absolute, ec);

  fs::path marker = canonical / kMarkerFile;
  absl::StatusOr<std::string> text = internal::ReadSmallFile(marker);
  if (text.ok()) {
    absl::StatusOr<internal::Json> json = internal::ParseJson(*text);
    if (!json.ok()) return CorruptFile(marker, json.status());
    auto format = json->is_object() ? json->find("format") : json->end();
    if (format == json->end() || !internal::IsInt64(*format)) {
      return CorruptFile(marker, absl::InvalidArgumentError("lacks an integer \"format\""));
    }
    if (format->get<int64_t>() < 1) {
      return CorruptFile(
          marker, absl::InvalidArgumentError(
                      fmt::format("\"format\" is {}; formats start at 1", format->get<int64_t>())));
    }
    if (format->get<int64_t>() > internal::kStoreFormat) {
      return absl::FailedPreconditionError(fmt::format(
          "store {} has format {}, newer than the format {} this maas ({}) understands",
          canonical.string(), format->get<int64_t>(), internal::kStoreFormat, Version()));
    }
  } else if (absl::IsNotFound(text.status()) && !options.read_only) {
    internal::Json marker_json;
    marker_json["format"] = internal::kStoreFormat;
    marker_json["about"] = "A maas model store; see docs/model-store.md of maas for the layout.";
    MAAS_RETURN_IF_ERROR(internal::ReplaceFileAtomically(marker, internal::DumpJson(marker_json)));
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  return std::unique_ptr<ModelStore>(new ModelStore(std::move(canonical), options));
}

absl::StatusOr<ModelInfo> ModelStore::Publish(std::string_view name, const fs::path& model_file,
                                              const ModelSignature& signature,
                                              const PublishOptions& options) {
  if (options_.read_only) {
    return absl::FailedPreconditionError(
        fmt::format("cannot publish '{}': store {} was opened read-only", name, root_.string()));
  }
  MAAS_RETURN_IF_ERROR(internal::ValidateModelName(name));
  if (absl::Status s = ValidateSignature(signature); !s.ok()) {
    return absl::InvalidArgumentError(fmt::format("cannot publish '{}': {}", name, s.message()));
  }
  std::error_code ec;
  if (!internal::posix::Exists(model_file, ec)) {
    return absl::NotFoundError(
        fmt::format("cannot publish '{}': {} does not exist", name, model_file.string()));
  }
  if (!internal::posix::IsRegularFile(model_file, ec)) {
    return absl::InvalidArgumentError(
        fmt::format("cannot publish '{}': {} is not a regular file", name, model_file.string()));
  }

  // The model folder: created on first publish; an existing one must not lead out of the store.
  fs::path model_dir = root_ / std::string(name);
  internal::posix::CreateDirectory(model_dir, ec);
  if (ec) return internal::FileError("create", model_dir, ec);
  MAAS_ASSIGN_OR_RETURN(model_dir, internal::ResolveInside(root_, model_dir));

  // Stage: a private folder, created under the model lock together with its own lock file so
  // that a cleaner holding the model lock can tell a live publish from an abandoned one.
  fs::path staging = model_dir / (kStagingPrefix + internal::UniqueName());
  std::optional<FileLock> staging_lock;
  {
    MAAS_ASSIGN_OR_RETURN(FileLock model_lock, FileLock::Acquire(model_dir / kLockFile));
    CleanUpAbandoned(model_dir);
    internal::posix::CreateDirectory(staging, ec);
    if (ec) return internal::FileError("create", staging, ec);
    MAAS_ASSIGN_OR_RETURN(staging_lock, FileLock::Acquire(staging / kLockFile));
  }
  struct RemoveOnExit {
    fs::path path;
    ~RemoveOnExit() {
      std::error_code ignored;
      internal::posix::RemoveAll(path, ignored);  // A no-op once the folder was renamed into place.
    }
  } remove_staging{staging};

  // Copy, hash and check the copy: what is checked is exactly what gets published.
  fs::path staged_artifact = staging / internal::ArtifactFileName(ModelFormat::kTorchScript);
  MAAS_ASSIGN_OR_RETURN(internal::CopyResult copy,
                        internal::CopyAndHash(model_file, staged_artifact));
  absl::StatusOr<internal::CheckedModel> checked =
      internal::CheckModelFile(staged_artifact, signature);
  if (!checked.ok()) {
    return absl::InvalidArgumentError(fmt::format("cannot publish '{}' from {}: {}", name,
                                                  model_file.string(), checked.status().message()));
  }
  const std::string_view artifact_file = internal::ArtifactFileName(checked->format);
  if (staged_artifact.filename() != artifact_file) {
    const fs::path renamed = staging / artifact_file;
    if (internal::RenameFile(staged_artifact, renamed) != 0) {
      return internal::FileError("rename into place", renamed,
                                 std::error_code(errno, std::generic_category()));
    }
  }
  RunPublishHook("staged");

  ModelInfo info;
  info.name = std::string(name);
  info.sha256 = copy.sha256;
  info.size_bytes = copy.size_bytes;
  info.format = checked->format;
  info.signature = checked->signature;
  info.description = options.description;
  info.labels = options.labels;

  // Commit: pick the number and rename the staged folder into place under the model lock.
  MAAS_ASSIGN_OR_RETURN(FileLock model_lock, FileLock::Acquire(model_dir / kLockFile));
  MAAS_ASSIGN_OR_RETURN(ModelMeta meta, ReadModelMeta(root_, model_dir));
  std::vector<int64_t> versions = ListVersions(root_, model_dir);
  info.version = std::max(meta.last_version, versions.empty() ? 0 : versions.back()) + 1;
  if (info.version > internal::kMaxVersion) {
    return absl::ResourceExhaustedError(fmt::format(
        "cannot publish '{}': version numbers are used up to {}", name, internal::kMaxVersion));
  }
  info.created = absl::Now();
  MAAS_RETURN_IF_ERROR(internal::WriteFileDurably(staging / kManifestFile,
                                                  internal::ManifestToText(info),
                                                  /*read_only=*/true));
  RunPublishHook("committing");
  internal::posix::Remove(staging / kLockFile,
                          ec);  // Safe: cleaners need the model lock, which we hold.
  staging_lock.reset();
  MAAS_RETURN_IF_ERROR(internal::SyncFolder(staging));
  fs::path version_dir = model_dir / std::to_string(info.version);
  if (internal::RenameFile(staging, version_dir) != 0) {
    return internal::FileError("rename into place", version_dir,
                               std::error_code(errno, std::generic_category()));
  }
  // Committed: readers see the version now. Syncing the rename is best effort; failing it must
  // not report an error for a version that exists. model.json needs no update: the folder
  // itself records the number, and Remove raises last_version before a folder goes away.
  (void)internal::SyncFolder(model_dir);
  info.artifact_path = version_dir / artifact_file;
  return info;
}

absl::StatusOr<ModelInfo> ModelStore::Get(std::string_view name, std::string_view version) const {
  MAAS_ASSIGN_OR_RETURN(fs::path model_dir, ModelDir(root_, name));
  std::map<std::string, int64_t, std::less<>> aliases;
  if (absl::StatusOr<internal::VersionSelector> selector = internal::ParseVersionSelector(version);
      selector.ok() && std::holds_alternative<std::string>(*selector)) {
    MAAS_ASSIGN_OR_RETURN(ModelMeta meta, ReadModelMeta(root_, model_dir));
    aliases.insert(meta.aliases.begin(), meta.aliases.end());
  }
  const std::string label = fmt::format("model '{}'", name);
  MAAS_ASSIGN_OR_RETURN(
      int64_t number, internal::ResolveVersion(version, {label, /*serving=*/false,
                                                         ListVersions(root_, model_dir), aliases}));
  return ReadVersion(root_, name, model_dir, number);
}

absl::StatusOr<std::vector<int64_t>> ModelStore::Versions(std::string_view name) const {
  MAAS_ASSIGN_OR_RETURN(fs::path model_dir, ModelDir(root_, name));
  return ListVersions(root_, model_dir);
}

absl::StatusOr<std::vector<std::string>> ModelStore::Models() const {
  std::vector<std::string> models;
  std::error_code ec;
  for (std::string& name : internal::posix::ListFolder(root_, ec)) {
    if (!internal::ValidateModelName(name).ok()) continue;
    absl::StatusOr<fs::path> dir = internal::ResolveInside(root_, root_ / name);
    std::error_code type_ec;
    if (!dir.ok() || !internal::posix::IsDirectory(*dir, type_ec)) continue;
    if (!ListVersions(root_, *dir).empty()) models.push_back(std::move(name));
  }
  if (ec) return internal::FileError("list", root_, ec);
  std::sort(models.begin(), models.end());
  return models;
}

absl::StatusOr<std::vector<fs::path>> ModelStore::RemoveAbandoned() {
  if (options_.read_only) {
    return absl::FailedPreconditionError(
        fmt::format("cannot clean up store {}: it was opened read-only", root_.string()));
  }
  std::vector<fs::path> removed;
  std::error_code ec;
  // Every model folder, also one whose first publish crashed (it has no version yet).
  for (const std::string& name : internal::posix::ListFolder(root_, ec)) {
    if (!internal::ValidateModelName(name).ok()) continue;
    absl::StatusOr<fs::path> dir = internal::ResolveInside(root_, root_ / name);
    std::error_code type_ec;
    if (!dir.ok() || !internal::posix::IsDirectory(*dir, type_ec)) continue;
    MAAS_ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(*dir / kLockFile));
    for (fs::path& path : CleanUpAbandoned(*dir)) removed.push_back(std::move(path));
  }
  if (ec) return internal::FileError("list", root_, ec);
  return removed;
}

absl::StatusOr<std::map<std::string, int64_t>> ModelStore::Aliases(std::string_view name) const {
  MAAS_ASSIGN_OR_RETURN(fs::path model_dir, ModelDir(root_, name));
  MAAS_ASSIGN_OR_RETURN(ModelMeta meta, ReadModelMeta(root_, model_dir));
  return meta.aliases;
}

absl::Status ModelStore::SetAlias(std::string_view name, std::string_view alias, int64_t version) {
  MAAS_RETURN_IF_ERROR(internal::ValidateAlias(alias));
  MAAS_ASSIGN_OR_RETURN(LockedModel model, LockModel(root_, options_, name, "set an alias"));
  std::vector<int64_t> versions = ListVersions(root_, model.dir);
  if (!std::binary_search(versions.begin(), versions.end(), version)) {
    return absl::NotFoundError(
        fmt::format("cannot point alias '{}' at version {}: model '{}' has no such version "
                    "(versions: {})",
                    alias, version, name, VersionList(versions)));
  }
  model.meta.aliases[std::string(alias)] = version;
  return WriteModelMeta(model.dir, name, model.meta);
}

absl::Status ModelStore::RemoveAlias(std::string_view name, std::string_view alias) {
  MAAS_RETURN_IF_ERROR(internal::ValidateAlias(alias));
  MAAS_ASSIGN_OR_RETURN(LockedModel model, LockModel(root_, options_, name, "remove an alias"));
  if (model.meta.aliases.erase(std::string(alias)) == 0) {
    return absl::NotFoundError(fmt::format("model '{}' has no alias '{}'", name, alias));
  }
  return WriteModelMeta(model.dir, name, model.meta);
}

absl::Status ModelStore::Remove(std::string_view name, int64_t version) {
  MAAS_ASSIGN_OR_RETURN(LockedModel model, LockModel(root_, options_, name, "remove a version"));
  CleanUpAbandoned(model.dir);
  std::vector<int64_t> versions = ListVersions(root_, model.dir);
  if (!std::binary_search(versions.begin(), versions.end(), version)) {
    return absl::NotFoundError(fmt::format("model '{}' has no version {} (versions: {})", name,
                                           version, VersionList(versions)));
  }
  std::vector<std::string> pointing;
  for (const auto& [alias, target] : model.meta.aliases) {
    if (target == version) pointing.push_back(fmt::format("'{}'", alias));
  }
  if (!pointing.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "cannot remove version {} of model '{}': alias {} points to it; move or remove the alias "
        "first",
        version, name, absl::StrJoin(pointing, ", ")));
  }
  // Record the high-water mark before the folder goes, so the number is never given out again.
  MAAS_RETURN_IF_ERROR(WriteModelMeta(model.dir, name, model.meta));
  // Rename first so that readers see the version vanish at once, then delete at leisure.
  fs::path version_dir = model.dir / std::to_string(version);
  fs::path doomed = model.dir / (kRemovingPrefix + internal::UniqueName());
  if (internal::RenameFile(version_dir, doomed) != 0) {
    return internal::FileError("rename away", version_dir,
                               std::error_code(errno, std::generic_category()));
  }
  MAAS_RETURN_IF_ERROR(internal::SyncFolder(model.dir));
  std::error_code ec;
  internal::posix::RemoveAll(doomed, ec);
  if (ec) return internal::FileError("delete", doomed, ec);
  return absl::OkStatus();
}

absl::Status ModelStore::Verify(std::string_view name, std::string_view version) const {
  MAAS_ASSIGN_OR_RETURN(ModelInfo info, Get(name, version));
  std::error_code ec;
  uintmax_t size = internal::posix::FileSize(info.artifact_path, ec);
  if (ec) return internal::FileError("read the size of", info.artifact_path, ec);
  MAAS_RETURN_IF_ERROR(internal::CheckArtifact(info, static_cast<int64_t>(size), std::nullopt));
  MAAS_ASSIGN_OR_RETURN(std::string sha256, internal::Sha256OfFile(info.artifact_path));
  return internal::CheckArtifact(info, info.size_bytes, sha256);
}

}  // namespace maas
