// Loading one version of a deployed model into a running executor, and when new options mean
// that loaded versions must load again.
#ifndef MAAS_LIB_VERSION_LOADER_H_
#define MAAS_LIB_VERSION_LOADER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "batching/core_budget.h"
#include "maas/clock.h"
#include "maas/deploy_options.h"
#include "maas/model_store.h"
#include "batching/model_executor.h"

namespace maas::internal {

// Makes room under the memory budget for this many more bytes, or says why it cannot.
using Reserve = absl::FunctionRef<absl::Status(int64_t bytes)>;

// Loads `version` of model `name` from `store` as `options` say: reserves its artifact's size
// per device, creates one Session per device (shared by that device's instances, at lowered
// priority), and starts an executor over them from this thread (so that its workers keep the
// application's priority). Sets *memory_bytes to what the sessions hold. The store's and
// Session::Create's errors, or the budget's refusal (ResourceExhausted).
absl::StatusOr<std::shared_ptr<ModelExecutor>> LoadVersion(
    const ModelStore& store, const std::string& name, int64_t version, const DeployOptions& options,
    Reserve reserve, std::shared_ptr<Clock> clock, CoreBudget* cores, int64_t* memory_bytes);

// Whether two sets of options load and batch versions the same way: all but the policy, and
// the session's version and device, which the policy and the devices choose.
bool SameServing(DeployOptions a, DeployOptions b);

// Gives freed heap memory back to the system (glibc keeps it otherwise).
void ReturnFreedMemory();

}  // namespace maas::internal

#endif  // MAAS_LIB_VERSION_LOADER_H_
