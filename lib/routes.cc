#include "routes.h"

#include <variant>

#include "absl/strings/str_join.h"
#include "absl_compat.h"
#include "fmt/core.h"
#include "names.h"

namespace maas::internal {

double UniformDraw(uint64_t seed, uint64_t n) {
  uint64_t z = seed + (n + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;  // 53 random bits
}

bool Serves(const Routes& routes, int64_t version) {
  const Routes::Serving* serving = routes.serving();
  return serving != nullptr && serving->executors.count(version) > 0;
}

Route RouteRequest(const Routes& routes, std::string_view version, absl::FunctionRef<double()> draw,
                   std::string_view label) {
  Route route;
  if (routes.unloaded()) {
    route.wait = true;
    return route;
  }
  const Routes::Serving* serving = routes.serving();
  if (serving == nullptr) {
    route.status = std::get<Routes::Unavailable>(routes.state).why;
    return route;
  }
  const auto& executors = serving->executors;
  if (version.empty()) {
    const Split& split = serving->split;
    route.queue = executors.at(split.size() > 1 ? split.Pick(draw()) : split.slots().front().first);
    return route;
  }
  absl::StatusOr<VersionSelector> selector = ParseVersionSelector(version);
  if (!selector.ok()) {
    route.status =
        absl::InvalidArgumentError(fmt::format("{}: {}", label, selector.status().message()));
    return route;
  }
  int64_t number = 0;
  if (std::holds_alternative<LatestVersion>(*selector)) {
    number = executors.rbegin()->first;
  } else if (const int64_t* n = std::get_if<int64_t>(&*selector)) {
    number = *n;
  } else if (auto alias = routes.aliases.find(std::get<std::string>(*selector));
             alias != routes.aliases.end()) {
    number = alias->second;
  } else {
    std::vector<std::string> names;
    for (const auto& [name, target] : routes.aliases) names.push_back(name);
    route.status = absl::NotFoundError(
        fmt::format("{} has no alias '{}' (aliases: {})", label, version,
                    names.empty() ? std::string("none") : absl::StrJoin(names, ", ")));
    return route;
  }
  auto it = executors.find(number);
  if (it == executors.end()) {
    std::vector<int64_t> served;
    for (const auto& [v, executor] : executors) served.push_back(v);
    const std::string asked = std::to_string(number) == version
                                  ? std::string(version)
                                  : fmt::format("{} ('{}')", number, version);
    route.status = absl::NotFoundError(
        fmt::format("{} does not serve version {} (serving: {})", label, asked,
                    served.empty() ? std::string("none") : absl::StrJoin(served, ", ")));
    return route;
  }
  route.queue = it->second;
  return route;
}

}  // namespace maas::internal
