// Version management decided apart from carried out, in the spirit of TF Serving's
// aspired-versions policies: given what the store says the policy means (a Target) and the
// states of a model's versions, which versions to load, and then where requests go and which
// versions retire. Pure functions of their arguments, so a plan is the same however often it
// is made, and tested without loading anything (tests/serving/version_plan_test.cc). Deployment carries
// the plans out.
#ifndef MAAS_LIB_VERSION_PLAN_H_
#define MAAS_LIB_VERSION_PLAN_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "maas/model_status.h"
#include "maas/model_store.h"
#include "maas/version_policy.h"
#include "serving/split.h"

namespace maas::internal {

// Where the store says a policy points, now.
struct Target {
  std::vector<int64_t> versions;                        // To serve; increasing, no duplicates.
  Split split;                                          // Unnamed requests.
  std::map<std::string, int64_t, std::less<>> aliases;  // The store's aliases, to any version.
};

// Resolves `policy` for model `name` against the store's versions and aliases now. NotFound
// (and the store's other errors) when a version or alias it names does not exist.
absl::StatusOr<Target> ResolveTarget(const ModelStore& store, std::string_view name,
                                     const VersionPolicy& policy);

// What the plans need to know of a version the model has (loaded, failed, ...).
struct VersionFacts {
  ModelState state = ModelState::kLoading;
  std::string reason;       // Why it failed.
  bool stale = false;       // Ready, but loaded with options that have changed since.
  std::string stale_error;  // Why loading it with the new options failed (not retried).
  bool retry = false;       // Failed for a passing reason (the memory budget): try again.
};

// One step of bringing the versions in line with a target, in the target's order: load
// `version`, unless `skip` says why not (an error to report; the version stays as it is).
struct LoadStep {
  int64_t version = 0;
  absl::Status skip;
};

// The target's versions that need loading: those not ready, and ready ones loaded with stale
// options; not a failed one (until options change), nor a stale one whose reload failed.
// `label` names the model in the reasons ("model 'mlp'"). Versions already ready and current
// need no step.
std::vector<LoadStep> PlanLoads(const std::map<int64_t, VersionFacts>& versions,
                                const Target& target, std::string_view label);

// Where requests go once the loads are done.
struct RoutePlan {
  // The versions that take requests: every ready version of the target, and any version that
  // keeps a slot of the split.
  std::set<int64_t> serve;
  // Unnamed requests. Each slot of the target's split goes to its version when that is ready,
  // else stays with the version that held it before (a failed replacement leaves the old one
  // serving); shares are scaled over the slots that have a version. When no slot has one, the
  // newest ready version of the target takes all. Empty when nothing is ready.
  Split split;
};

// `ready`: the versions ready after the loads (old and new). `previous_split`: the split in
// force before.
RoutePlan PlanRoutes(const std::set<int64_t>& ready, const Target& target,
                     const Split& previous_split);

// What the memory budget knows of one deployed model.
struct ModelMemory {
  std::string name;
  int64_t bytes = 0;  // Loaded (or being loaded) now.
  bool idle = false;  // Nothing queued, running or waiting: it may be unloaded.
  absl::Time last_used;
};

// Which models to unload, least recently used first, so that `bytes` more for `requester` fit
// in `budget`: none when they fit already. ResourceExhausted, unloading nothing, when unloading
// every idle model but the requester would not make room; the message names the busy ones.
absl::StatusOr<std::vector<std::string>> PlanEviction(const std::vector<ModelMemory>& models,
                                                      std::string_view requester, int64_t bytes,
                                                      int64_t budget);

}  // namespace maas::internal

#endif  // MAAS_LIB_VERSION_PLAN_H_
