// The `maas` command's store commands: each runs one operation of maas::ModelStore and prints
// its result, as text for people or as JSON (--json) for scripts.
#ifndef MAAS_CLI_STORE_COMMANDS_H_
#define MAAS_CLI_STORE_COMMANDS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "maas/model_store.h"

namespace maas::cli {

// What `maas publish` was given.
struct PublishRequest {
  std::string model;
  std::string file;
  std::vector<std::string> inputs;   // "name:dtype:dims", dims comma-separated ("3,224,224")
  std::vector<std::string> outputs;  // the same
  std::string signature_file;        // a JSON signature instead of inputs and outputs
  bool not_batchable = false;
  std::string description;
  std::vector<std::string> labels;   // "key=value"
  std::vector<std::string> aliases;  // pointed at the new version
};

absl::Status Publish(ModelStore& store, const PublishRequest& request, bool json);
absl::Status List(const ModelStore& store, bool json);
absl::Status Describe(const ModelStore& store, const std::string& model, bool json);
absl::Status SetAlias(ModelStore& store, const std::string& model, const std::string& alias,
                      const std::string& version);
absl::Status RemoveAlias(ModelStore& store, const std::string& model, const std::string& alias);
// `target` is empty (every version of every model), "model" (its every version) or
// "model@version". DataLoss when a version fails, after checking all of them.
absl::Status Verify(const ModelStore& store, const std::string& target, bool json);
absl::Status Remove(ModelStore& store, const std::string& model, const std::string& version);
absl::Status CollectGarbage(ModelStore& store, bool json);

}  // namespace maas::cli

#endif  // MAAS_CLI_STORE_COMMANDS_H_
