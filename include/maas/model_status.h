// ModelStatus: what a Server reports about a deployed model and each of its versions.
#ifndef MAAS_MODEL_STATUS_H_
#define MAAS_MODEL_STATUS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "maas/stats.h"
#include "maas/version_policy.h"

namespace maas {

// The lifecycle of one version inside a Server (compare Triton's ModelReadyState).
enum class ModelState {
  kLoading,    // Being read, verified, prepared and warmed up; takes no requests yet.
  kReady,      // Takes requests.
  kUnloading,  // Replaced or removed: takes no new requests, finishes what it has.
  kUnloaded,   // Unloaded to respect the memory budget; loaded again when a request needs it.
  kFailed,     // Could not be loaded; `reason` says why. Not retried until the next Deploy.
};

// "loading", "ready", "unloading", "unloaded" or "failed".
std::string_view ModelStateName(ModelState state);

// One version of a deployed model.
struct VersionStatus {
  int64_t version = 0;
  ModelState state = ModelState::kLoading;
  std::string reason;  // Why it failed or was unloaded; empty otherwise.
  absl::Time since;    // When it entered `state`.
  // Aliases of the store pointing at it when the Server last looked.
  std::vector<std::string> aliases;
  // The share of requests naming no version that it answers, 0 to 1.
  double traffic_share = 0;
  // Bytes of the weights (parameters and buffers) of all its instances, while loaded: on the
  // instances' devices (host memory for the CPU, GPU memory for CUDA devices).
  int64_t memory_bytes = 0;
  // GPU memory that the CUDA caching allocator reserved for it: the growth of the allocator
  // while it loaded and warmed up on each device (weights, warm-up workspace, cached blocks;
  // Session::device_reserved_bytes). 0 on the CPU. Batches larger than the warm-up's grow the
  // allocator's cache further, shared by every version on the device.
  int64_t device_reserved_bytes = 0;
  // Its requests and batches since it became ready (zero when not loaded).
  ModelStats stats;
};

// A deployed model: its policy and its versions.
struct ModelStatus {
  std::string name;
  VersionPolicy policy;
  // Whether a request naming no version would be answered now (a version is ready, or the
  // model was unloaded for memory and loads again on demand).
  bool ready = false;
  // Requests refused before any version took them, by code, since the model was deployed: no
  // version serves the one named (NotFound) or none is ready (Unavailable), inputs named
  // wrongly (InvalidArgument), the waiting room full while the model loads again, or that
  // reload failed. What a version refused or failed is in its `stats.failures`.
  std::map<absl::StatusCode, int64_t> refused;
  // Versions loading, ready, unloading, unloaded for memory, or failed; by number.
  std::vector<VersionStatus> versions;
  // The latest error of applying the policy (a version that failed to load, an alias that
  // does not exist, an unreadable store); empty when the last attempt succeeded.
  std::string last_error;
  absl::Time last_refresh;  // When the policy was last applied against the store.
};

}  // namespace maas

#endif  // MAAS_MODEL_STATUS_H_
