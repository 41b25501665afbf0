#include "store/version_resolver.h"

#include <algorithm>
#include <variant>

#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "store/names.h"

namespace maas::internal {

absl::StatusOr<int64_t> ResolveVersion(std::string_view selector, const VersionsOf& among) {
  absl::StatusOr<VersionSelector> parsed = ParseVersionSelector(selector);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: {}", among.label, parsed.status().message()));
  }
  const std::string listed =
      among.versions.empty() ? std::string("none") : absl::StrJoin(among.versions, ", ");
  if (std::holds_alternative<LatestVersion>(*parsed)) {
    if (among.versions.empty()) {
      return absl::NotFoundError(fmt::format(
          "{} {}", among.label, among.serving ? "serves no version" : "has no versions"));
    }
    return among.versions.back();
  }
  int64_t number = 0;
  if (const int64_t* n = std::get_if<int64_t>(&*parsed)) {
    number = *n;
  } else if (auto alias = among.aliases.find(std::get<std::string>(*parsed));
             alias != among.aliases.end()) {
    number = alias->second;
  } else {
    std::vector<std::string> names;
    for (const auto& [name, target] : among.aliases) names.push_back(name);
    return absl::NotFoundError(
        fmt::format("{} has no alias '{}' (aliases: {})", among.label, selector,
                    names.empty() ? std::string("none") : absl::StrJoin(names, ", ")));
  }
  if (std::binary_search(among.versions.begin(), among.versions.end(), number)) return number;
  const std::string asked = std::to_string(number) == selector
                                ? std::string(selector)
                                : fmt::format("{} ('{}')", number, selector);
  return absl::NotFoundError(
      among.serving
          ? fmt::format("{} does not serve version {} (serving: {})", among.label, asked, listed)
          : fmt::format("{} has no version {} (versions: {})", among.label, asked, listed));
}

}  // namespace maas::internal
