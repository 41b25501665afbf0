#include "serving/version_plan.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "util/status_macros.h"

namespace maas::internal {

absl::StatusOr<Target> ResolveTarget(const ModelStore& store, std::string_view name,
                                     const VersionPolicy& policy) {
  Target target;
  MAAS_ASSIGN_OR_RETURN(auto aliases, store.Aliases(name));
  target.aliases.insert(aliases.begin(), aliases.end());
  auto resolve = [&](const std::string& selector) -> absl::StatusOr<int64_t> {
    MAAS_ASSIGN_OR_RETURN(ModelInfo info, store.Get(name, selector));
    return info.version;
  };
  switch (policy.kind) {
    case VersionPolicy::Kind::kLatest: {
      MAAS_ASSIGN_OR_RETURN(std::vector<int64_t> all, store.Versions(name));
      const size_t count = std::min(all.size(), static_cast<size_t>(policy.latest_count));
      target.versions.assign(all.end() - static_cast<std::ptrdiff_t>(count), all.end());
      if (!target.versions.empty()) target.split = Split({{target.versions.back(), 1.0}});
      break;
    }
    case VersionPolicy::Kind::kSpecific: {
      for (const std::string& selector : policy.versions) {
        MAAS_ASSIGN_OR_RETURN(int64_t version, resolve(selector));
        if (target.split.empty()) target.split = Split({{version, 1.0}});
        target.versions.push_back(version);
      }
      break;
    }
    case VersionPolicy::Kind::kCanary: {
      MAAS_ASSIGN_OR_RETURN(int64_t stable, resolve(policy.versions[0]));
      MAAS_ASSIGN_OR_RETURN(int64_t canary, resolve(policy.versions[1]));
      const double share = policy.canary_percent / 100.0;
      target.versions = {stable, canary};
      target.split = Split({{stable, 1.0 - share}, {canary, share}});
      break;
    }
  }
  std::sort(target.versions.begin(), target.versions.end());
  target.versions.erase(std::unique(target.versions.begin(), target.versions.end()),
                        target.versions.end());
  return target;
}

std::vector<LoadStep> PlanLoads(const std::map<int64_t, VersionFacts>& versions,
                                const Target& target, std::string_view label) {
  std::vector<LoadStep> steps;
  for (int64_t version : target.versions) {
    auto it = versions.find(version);
    if (it == versions.end()) {
      steps.push_back({version, absl::OkStatus()});
      continue;
    }
    const VersionFacts& v = it->second;
    if (v.state == ModelState::kReady && !v.stale) continue;
    if (v.state == ModelState::kReady && !v.stale_error.empty()) {
      steps.push_back({version, absl::FailedPreconditionError(fmt::format(
                                    "{} version {} serves with its previous options: loading "
                                    "it with the new ones failed: {}",
                                    label, version, v.stale_error))});
    } else if (v.state == ModelState::kFailed && !v.retry) {
      steps.push_back(
          {version, absl::FailedPreconditionError(fmt::format(
                        "{} version {} failed to load earlier: {}", label, version, v.reason))});
    } else {
      steps.push_back({version, absl::OkStatus()});
    }
  }
  return steps;
}

RoutePlan PlanRoutes(const std::set<int64_t>& ready, const Target& target,
                     const Split& previous_split) {
  auto is_ready = [&](int64_t version) { return ready.count(version) > 0; };
  RoutePlan plan;
  std::vector<std::pair<int64_t, double>> split;  // (version, share)
  for (size_t slot = 0; slot < target.split.size(); ++slot) {
    auto [version, share] = target.split.slots()[slot];
    if (!is_ready(version)) {
      if (previous_split.size() != target.split.size()) continue;
      version = previous_split.slots()[slot].first;
      if (!is_ready(version)) continue;
    }
    split.emplace_back(version, share);
  }
  for (int64_t version : target.versions) {
    if (is_ready(version)) plan.serve.insert(version);
  }
  for (const auto& [version, share] : split) plan.serve.insert(version);
  if (split.empty()) {
    for (auto it = target.versions.rbegin(); it != target.versions.rend(); ++it) {
      if (is_ready(*it)) {
        split.emplace_back(*it, 1.0);
        break;
      }
    }
  }
  plan.split = Split(std::move(split));
  return plan;
}

absl::StatusOr<std::vector<std::string>> PlanEviction(const std::vector<ModelMemory>& models,
                                                      std::string_view requester, int64_t bytes,
                                                      int64_t budget) {
  int64_t used = 0, freeable = 0;
  std::vector<std::string> busy;
  std::vector<const ModelMemory*> idle;
  for (const ModelMemory& model : models) {
    used += model.bytes;
    if (model.name == requester || model.bytes == 0) continue;
    if (model.idle) {
      freeable += model.bytes;
      idle.push_back(&model);
    } else {
      busy.push_back(model.name);
    }
  }
  std::vector<std::string> victims;
  if (used + bytes <= budget) return victims;
  if (used - freeable + bytes > budget) {
    return absl::ResourceExhaustedError(fmt::format(
        "memory budget of {} bytes: {} in use, {} more needed for model '{}'; unloading every "
        "idle model would free only {} (busy models: {})",
        budget, used, bytes, requester, freeable,
        busy.empty() ? "none" : absl::StrJoin(busy, ", ")));
  }
  std::sort(idle.begin(), idle.end(),
            [](const ModelMemory* a, const ModelMemory* b) { return a->last_used < b->last_used; });
  for (const ModelMemory* model : idle) {
    if (used + bytes <= budget) break;
    used -= model->bytes;
    victims.push_back(model->name);
  }
  return victims;
}

}  // namespace maas::internal
