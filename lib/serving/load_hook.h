// A test seam: a Server's Deployment calls the hook just before it loads a version, so that tests
// can change the store at that moment (a version removed while it loads). Never set in
// production code.
#ifndef MAAS_LIB_LOAD_HOOK_H_
#define MAAS_LIB_LOAD_HOOK_H_

#include <cstdint>
#include <string_view>

namespace maas::internal {

using LoadHook = void (*)(std::string_view model, int64_t version);

// Sets the hook for the whole process; nullptr removes it. Not thread-safe: set it before use.
void SetLoadHookForTesting(LoadHook hook);

}  // namespace maas::internal

#endif  // MAAS_LIB_LOAD_HOOK_H_
