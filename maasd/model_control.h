// Which models maasd serves, and how that changes: at startup, by polling the store, or by
// the repository API's load and unload (Triton's --model-control-mode none|poll|explicit).
#ifndef MAASD_MODEL_CONTROL_H_
#define MAASD_MODEL_CONTROL_H_

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "maas/model_store.h"
#include "maas/server.h"
#include "util/mutex.h"

namespace maasd {

enum class ModelControlMode {
  kNone,      // Serve the startup models; follow their versions and aliases if polling.
  kPoll,      // Also deploy models that appear in the store and undeploy those that vanish.
  kExplicit,  // Serve what the repository API loads and unloads (and the startup models).
};

struct ModelControlOptions {
  std::filesystem::path store_root;
  ModelControlMode mode = ModelControlMode::kNone;
  // Models to deploy at startup: "name" (its latest version) or "name@selector" (a version
  // number or alias, followed). Empty: every model in the store, except in explicit mode.
  std::vector<std::string> models;
  // How often the store is read for new versions, moved aliases and (kPoll) new models. Zero:
  // never (versions stay as loaded). Default: zero.
  absl::Duration poll_interval = absl::ZeroDuration();
  // Passed to the maas::Server.
  maas::ServerOptions server;
};

// Owns the maas::Server and a read-only view of the store, and applies the control mode.
//
// This class is thread-safe.
class ModelControl {
 public:
  // Opens the store and the Server and deploys the startup models (a model that fails to load
  // stays listed as failed; the others serve). NotFound / FailedPrecondition: the store.
  // InvalidArgument: a malformed --model.
  static absl::StatusOr<std::unique_ptr<ModelControl>> Start(ModelControlOptions options);
  ~ModelControl();

  maas::Server& server() { return *server_; }
  const maas::ModelStore& store() const { return *store_; }
  ModelControlMode mode() const { return options_.mode; }

  // Whether every deployed model has a ready version (the server's readiness).
  bool Ready() const;

  // The signature of `model` version `version` (versions are immutable: cached).
  absl::StatusOr<maas::ModelSignature> Signature(const std::string& model, int64_t version);
  // The artifact format of `model` version `version` (cached with the signature).
  absl::StatusOr<maas::ModelFormat> Format(const std::string& model, int64_t version);

  // The version of `model` that `selector` names among those the Server serves (empty: the
  // one a request naming no version would most likely reach: the ready version with the
  // largest traffic share). NotFound: not deployed, or no such ready version.
  absl::StatusOr<int64_t> ServedVersion(const std::string& model, const std::string& selector);

  // `status` with every mention of the store's path replaced by "<model-store>": errors go to
  // clients, who name models and versions and need not learn the server's files.
  absl::Status ForClients(const absl::Status& status) const;
  std::string ForClients(std::string_view message) const;

  // Explicit mode: deploys (again) or undeploys `model` on the control thread, then calls
  // `done` there. FailedPrecondition (at once, through `done`) in other modes.
  void Load(std::string model, std::function<void(absl::Status)> done);
  void Unload(std::string model, std::function<void(absl::Status)> done);

 private:
  explicit ModelControl(ModelControlOptions options);
  absl::Status Deploy(const std::string& spec);
  // Explicit mode: runs `change` on the control thread, then `done` with its status there.
  void OnControlThread(std::function<absl::Status()> change,
                       std::function<void(absl::Status)> done);
  void ControlLoop();
  void PollModels();

  // What the protocol needs of one immutable version, read from the store once.
  struct VersionFacts {
    maas::ModelSignature signature;
    maas::ModelFormat format;
  };
  absl::StatusOr<VersionFacts> Facts(const std::string& model, int64_t version);

  const ModelControlOptions options_;
  std::vector<std::string> store_paths_;  // The store's root as given, absolute and resolved.
  std::unique_ptr<maas::ModelStore> store_;
  std::unique_ptr<maas::Server> server_;

  maas::internal::Mutex signatures_mu_;
  std::map<std::pair<std::string, int64_t>, VersionFacts> signatures_
      ABSL_GUARDED_BY(signatures_mu_);

  // The control thread: loads, unloads and polls, one at a time.
  maas::internal::Mutex mu_;
  maas::internal::CondVar wake_;
  struct Change {
    std::function<absl::Status()> apply;
    std::function<void(absl::Status)> done;
  };
  std::deque<Change> work_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace maasd

#endif  // MAASD_MODEL_CONTROL_H_
