// A test seam: Publish calls the hook at named points so that tests can kill the process there
// and check what a crash leaves behind. Never set in production code.
#ifndef MAAS_LIB_PUBLISH_HOOK_H_
#define MAAS_LIB_PUBLISH_HOOK_H_

#include <string_view>

namespace maas::internal {

// Points: "staged" (artifact copied and checked, nothing committed), "committing" (manifest
// written, model lock held, version not yet renamed into place).
using PublishHook = void (*)(std::string_view point);

// Sets the hook for the whole process; nullptr removes it. Not thread-safe: set it before use.
void SetPublishHookForTesting(PublishHook hook);

}  // namespace maas::internal

#endif  // MAAS_LIB_PUBLISH_HOOK_H_
