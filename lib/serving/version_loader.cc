#include "serving/version_loader.h"

#include <atomic>
#include <utility>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "fmt/core.h"
#include "serving/lifecycle.h"
#include "serving/load_hook.h"
#include "util/status_macros.h"

namespace maas::internal {
namespace {

std::atomic<LoadHook> load_hook{nullptr};

// The options' operator== list every field by hand (C++17 has no defaulted comparisons). A field
// added without updating them would be silently ignored by SameServing; their sizes catch it:
// update operator== and these sizes together.
#if defined(__GLIBCXX__) && (defined(__x86_64__) || defined(__aarch64__))
static_assert(sizeof(BatchingOptions) == 80, "BatchingOptions changed: update its operator==");
static_assert(sizeof(SessionOptions) == 64, "SessionOptions changed: update its operator==");
static_assert(sizeof(VersionPolicy) == 40, "VersionPolicy changed: update its operator==");
static_assert(sizeof(DeployOptions) == 216, "DeployOptions changed: update its operator==");
#endif

}  // namespace

bool SameServing(DeployOptions a, DeployOptions b) {
  a.policy = b.policy;
  a.session.version = b.session.version;
  a.session.device = b.session.device;
  return a == b;
}

void SetLoadHookForTesting(LoadHook hook) { load_hook.store(hook); }

void ReturnFreedMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

absl::StatusOr<std::shared_ptr<ModelExecutor>> LoadVersion(
    const ModelStore& store, const std::string& name, int64_t version, const DeployOptions& options,
    Reserve reserve, std::shared_ptr<Clock> clock, CoreBudget* cores, int64_t* memory_bytes) {
  const std::string number = std::to_string(version);
  if (LoadHook hook = load_hook.load()) hook(name, version);
  MAAS_ASSIGN_OR_RETURN(ModelInfo info, store.Get(name, number));
  // Before loading, the artifact's size stands for its weights.
  MAAS_RETURN_IF_ERROR(reserve(info.size_bytes * static_cast<int64_t>(options.devices.size())));
  // One Session per device, shared by that device's instances: Session::Run is thread-safe
  // and the weights are then held once.
  std::vector<std::shared_ptr<Session>> instances;
  *memory_bytes = 0;
  absl::Status loaded;
  RunNiced([&] {
    for (const c10::Device& device : options.devices) {
      SessionOptions session_options = options.session;
      session_options.version = number;
      session_options.device = device;
      absl::StatusOr<std::unique_ptr<Session>> session =
          Session::Create(store, name, session_options);
      if (!session.ok()) {
        loaded = session.status();
        return;
      }
      *memory_bytes += (*session)->memory_bytes();
      std::shared_ptr<Session> shared = std::move(*session);
      for (int i = 0; i < options.instances_per_device; ++i) instances.push_back(shared);
    }
  });
  MAAS_RETURN_IF_ERROR(loaded);
  auto executor = std::make_shared<ModelExecutor>(
      fmt::format("model '{}' version {}", name, version), version, std::move(instances),
      options.batching, std::move(clock), cores);
  executor->Start();
  return executor;
}

}  // namespace maas::internal
