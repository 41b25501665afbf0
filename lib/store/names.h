// The rules for model names, aliases and version selectors.
#ifndef MAAS_LIB_NAMES_H_
#define MAAS_LIB_NAMES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace maas::internal {

inline constexpr size_t kMaxNameLength = 128;

// The highest version number maas gives out or reads: far beyond any real use, exact as a JSON
// number in every reader (below 2^53), and far from int64 overflow. Numbers read from the
// store's files and folder names are bounded by it.
inline constexpr int64_t kMaxVersion = 1'000'000'000'000'000;

// Checks a model name: 1 to 128 characters of [A-Za-z0-9._-], not starting with a dot.
// InvalidArgument otherwise, naming the name and the rule it breaks.
absl::Status ValidateModelName(std::string_view name);

// Checks an alias: the model-name rules, and not a number and not "latest".
absl::Status ValidateAlias(std::string_view alias);

// What a version string asks for.
struct LatestVersion {};
using VersionSelector = std::variant<LatestVersion, int64_t, std::string>;  // or an alias

// Parses "latest", a version number (decimal digits without a leading zero, 1 to kMaxVersion,
// nothing else: no sign, no spaces), or an alias. InvalidArgument otherwise.
absl::StatusOr<VersionSelector> ParseVersionSelector(std::string_view version);

// Parses a version folder's name: digits without a leading zero, 1 to kMaxVersion. -1 otherwise.
int64_t ParseVersionFolderName(std::string_view name);

}  // namespace maas::internal

#endif  // MAAS_LIB_NAMES_H_
