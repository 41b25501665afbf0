#include "serving/split.h"

namespace maas::internal {

Split::Split(std::vector<std::pair<int64_t, double>> slots) : slots_(std::move(slots)) {
  double total = 0;
  for (const auto& [version, share] : slots_) total += share;
  for (auto& [version, share] : slots_) {
    share = total > 0 ? share / total : 1.0 / static_cast<double>(slots_.size());
  }
}

int64_t Split::Pick(double draw) const {
  double cumulative = 0;
  for (size_t i = 0; i + 1 < slots_.size(); ++i) {
    cumulative += slots_[i].second;
    if (draw < cumulative) return slots_[i].first;
  }
  return slots_.back().first;  // The last slot takes what rounding leaves.
}

double Split::ShareOf(int64_t version) const {
  double share = 0;
  for (const auto& [v, s] : slots_) share += v == version ? s : 0;
  return share;
}

}  // namespace maas::internal
