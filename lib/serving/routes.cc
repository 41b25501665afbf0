#include "serving/routes.h"

#include <variant>

#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "store/version_resolver.h"

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
  std::vector<int64_t> served;
  served.reserve(executors.size());
  for (const auto& [v, executor] : executors) served.push_back(v);
  absl::StatusOr<int64_t> number =
      ResolveVersion(version, {label, /*serving=*/true, served, routes.aliases});
  if (!number.ok()) {
    route.status = number.status();
    return route;
  }
  route.queue = executors.at(*number);
  return route;
}

}  // namespace maas::internal
