// What a version selector ("latest", a number, an alias) means among a model's versions: the one
// resolver of the store (among its published versions), the routes and the Server (among the
// versions that serve). "latest" is the highest of the versions it is given: for serving, the
// newest ready version (not one still loading); for the store, the newest published.
#ifndef MAAS_LIB_VERSION_RESOLVER_H_
#define MAAS_LIB_VERSION_RESOLVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace maas::internal {

// The versions a selector is resolved among, and how messages name them.
struct VersionsOf {
  std::string_view label;                // "model 'mlp'"
  bool serving = false;                  // Served versions (else a store's published ones).
  const std::vector<int64_t>& versions;  // Increasing.
  const std::map<std::string, int64_t, std::less<>>& aliases;
};

// The version `selector` names among `among`. InvalidArgument for a malformed selector;
// NotFound, listing what there is, for an unknown alias, a version not among them (an alias's
// too, naming both), or "latest" when there are none.
absl::StatusOr<int64_t> ResolveVersion(std::string_view selector, const VersionsOf& among);

}  // namespace maas::internal

#endif  // MAAS_LIB_VERSION_RESOLVER_H_
