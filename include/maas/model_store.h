// ModelStore: a versioned repository of TorchScript models in a folder on disk.
#ifndef MAAS_MODEL_STORE_H_
#define MAAS_MODEL_STORE_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "maas/types.h"

namespace maas {

// Open-time options of a ModelStore.
struct ModelStoreOptions {
  // Create the root folder (and its parents) when it does not exist. When false, opening a
  // missing root is NotFound. Default: true.
  bool create_if_missing = true;

  // Refuse every change (Publish, SetAlias, RemoveAlias, Remove) with FailedPrecondition and
  // write nothing, not even the store marker. Use it for serving processes that only read a
  // store, for example one mounted read-only. Default: false.
  bool read_only = false;
};

// Optional metadata recorded in a version's manifest.
struct PublishOptions {
  std::string description;                    // Free text. Default: empty.
  std::map<std::string, std::string> labels;  // Free key/value pairs. Default: none.
};

// A ModelStore is a folder holding models by name, each with immutable numbered versions
// (1, 2, 3, ... never reused) and movable aliases such as "stable" or "canary".
//
// Publishing copies a TorchScript archive or an AOTInductor package into the store after
// checking that maas can serve it, records its format, SHA-256, size, signature and creation
// time in a human-readable manifest and makes the version visible atomically: a reader sees a complete version or none, whatever
// fails or crashes in between. The layout is documented in docs/model-store.md.
//
// This class is thread-safe. It keeps no mutable state in memory: every call reads the folder,
// so several ModelStore objects, threads and processes (on one machine, or on several through a
// shared filesystem with working flock(2), such as NFSv4) may use one root at once. Changes to a
// model (publish, alias changes, removal) are serialized by an exclusive flock(2) on the model's
// `.lock` file; reads take no lock and rely on atomic renames.
//
// Names of models and aliases are 1 to 128 characters of [A-Za-z0-9._-] not starting with a
// dot. Aliases must also not look like a number and must not be "latest".
//
// Example:
//   auto store = maas::ModelStore::Open("/var/lib/models");
//   if (!store.ok()) return store.status();
//   maas::ModelSignature sig{{{"x", torch::kFloat32, {512}}}, {{"y", torch::kFloat32, {10}}}};
//   absl::StatusOr<maas::ModelInfo> v = (*store)->Publish("mlp", "mlp.pt", sig);
//   if (!v.ok()) return v.status();
//   absl::Status s = (*store)->SetAlias("mlp", "stable", v->version);
//   absl::StatusOr<maas::ModelInfo> stable = (*store)->Get("mlp", "stable");
class ModelStore {
 public:
  using Options = ModelStoreOptions;

  // Opens the store rooted at `root`, creating the folder unless options forbid it.
  // NotFound: root missing and create_if_missing is false. FailedPrecondition: root is not a
  // folder, or was written by a newer, incompatible maas. Internal: the filesystem refused.
  static absl::StatusOr<std::unique_ptr<ModelStore>> Open(const std::filesystem::path& root,
                                                          Options options = {});

  ModelStore(const ModelStore&) = delete;
  ModelStore& operator=(const ModelStore&) = delete;
  ~ModelStore();

  // Publishes `model_file` as the next version of model `name` and returns its info. The file
  // is a TorchScript archive (torch.jit.save) or an AOTInductor package (.pt2, from
  // torch._inductor.aoti_compile_and_package); the format is found from its contents and
  // recorded (ModelInfo::format). For a package, the returned signature carries the batch sizes
  // the package accepts (ModelSignature::min_batch_size, max_batch_size).
  // InvalidArgument: bad name, malformed signature, a damaged archive, a file LibTorch cannot
  // load as TorchScript, a `forward` whose argument count does not fit the signature's inputs,
  // a package whose compiled input checks disagree with the signature (count, dtype, rank,
  // fixed sizes, batch range), naming the input and dimension.
  // NotFound: the file does not exist. FailedPrecondition: read-only store.
  // Concurrent publishers of one name, in any thread or process, get distinct versions.
  absl::StatusOr<ModelInfo> Publish(std::string_view name,
                                    const std::filesystem::path& model_file,
                                    const ModelSignature& signature,
                                    const PublishOptions& options = {});

  // Returns one version of a model. `version` is "latest" (the highest number), a version
  // number such as "3", or an alias such as "stable".
  // NotFound: unknown model, version or alias. InvalidArgument: malformed name or version.
  // DataLoss: the version's manifest is unreadable or its artifact is missing.
  absl::StatusOr<ModelInfo> Get(std::string_view name, std::string_view version = "latest") const;

  // Returns the version numbers of a model in increasing order. NotFound: unknown model.
  absl::StatusOr<std::vector<int64_t>> Versions(std::string_view name) const;

  // Returns the names of all models that have at least one version, sorted.
  absl::StatusOr<std::vector<std::string>> Models() const;

  // Returns the aliases of a model and the version each points to. NotFound: unknown model.
  absl::StatusOr<std::map<std::string, int64_t>> Aliases(std::string_view name) const;

  // Points `alias` of model `name` at `version`, creating or moving it.
  // InvalidArgument: malformed name or alias. NotFound: unknown model or version.
  absl::Status SetAlias(std::string_view name, std::string_view alias, int64_t version);

  // Deletes an alias. NotFound: unknown model or alias.
  absl::Status RemoveAlias(std::string_view name, std::string_view alias);

  // Deletes a version. Its number is never given out again.
  // FailedPrecondition: an alias points to it (the message names the alias) or read-only store.
  // NotFound: unknown model or version.
  absl::Status Remove(std::string_view name, int64_t version);

  // Re-hashes a version's artifact and compares it with its manifest. DataLoss on a mismatch of
  // size or SHA-256 (naming the file, the expected and the actual value); errors as Get.
  absl::Status Verify(std::string_view name, std::string_view version = "latest") const;

  // Deletes what crashed publishers and removers left behind in every model folder (staging
  // folders whose owner died, half-removed versions) and returns their paths. Publishes in
  // progress, in any thread or process, are left alone. Publish and Remove already clean the
  // model they change; this is for stores that nothing has changed since a crash (`maas gc`).
  // FailedPrecondition: read-only store. Internal: the filesystem refused.
  absl::StatusOr<std::vector<std::filesystem::path>> RemoveAbandoned();

  // The store's root folder, made absolute and canonical.
  const std::filesystem::path& root() const { return root_; }

 private:
  ModelStore(std::filesystem::path root, Options options);

  std::filesystem::path root_;
  Options options_;
};

}  // namespace maas

#endif  // MAAS_MODEL_STORE_H_
