// Routes: where a deployed model's requests go, as of one moment, and how one request is routed
// (a version named by number, alias or "latest", or the policy's split for unnamed requests).
#ifndef MAAS_LIB_ROUTES_H_
#define MAAS_LIB_ROUTES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "batching/model_executor.h"
#include "serving/split.h"

namespace maas::internal {

// Immutable once published: the request path copies the pointer under the deployment's lock and
// routes without it. A version's queue is stopped only after a Routes without it was published,
// so a request that raced into a stopped queue finds the newer Routes when it asks again.
struct Routes {
  // Versions take requests.
  struct Serving {
    std::map<int64_t, std::shared_ptr<ModelExecutor>> executors;  // Not empty.
    Split split;  // Requests naming no version; not empty.
  };
  // The model's versions were unloaded for memory: requests wait for a reload.
  struct Unloaded {};
  // No version can take requests (loading, all failed, undeployed): why.
  struct Unavailable {
    absl::Status why;
  };

  std::variant<Unavailable, Serving, Unloaded> state;
  // The store's aliases (to any version) when last read.
  std::map<std::string, int64_t, std::less<>> aliases;

  const Serving* serving() const { return std::get_if<Serving>(&state); }
  bool unloaded() const { return std::holds_alternative<Unloaded>(state); }
};

// What routing decided for one request.
struct Route {
  std::shared_ptr<ModelExecutor> queue;
  absl::Status status;  // When there is no queue.
  bool wait = false;    // Unloaded for memory: wait for a reload.
};

// Whether `routes` send requests to `version`.
bool Serves(const Routes& routes, int64_t version);

// Routes a request naming `version` (empty: none) by `routes`. `draw` is a uniform number in
// [0, 1) for the split, asked for only when the split has several versions. `label` names the
// model in messages. InvalidArgument for a malformed version; NotFound for an alias or version
// not served, listing what is.
Route RouteRequest(const Routes& routes, std::string_view version, absl::FunctionRef<double()> draw,
                   std::string_view label);

// Draw `n` of the sequence seeded by `seed`, uniform in [0, 1): SplitMix64 of a counter, so
// draws are lock-free from any thread and the sequence is fixed by the seed.
double UniformDraw(uint64_t seed, uint64_t n);

}  // namespace maas::internal

#endif  // MAAS_LIB_ROUTES_H_
