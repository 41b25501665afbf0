// Split: how a model's requests that name no version are shared among its versions. One type
// for the policy's target, the routes, and the split kept while a model is unloaded.
#ifndef MAAS_LIB_SPLIT_H_
#define MAAS_LIB_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace maas::internal {

// Slots of (version, share), in order; the shares sum to 1 unless the split is empty. Slots
// matter apart from versions: a canary policy has a stable slot and a canary slot, and a slot
// whose new version failed to load keeps the version that held it before. This class is
// thread-compatible (and immutable once made).
class Split {
 public:
  Split() = default;
  // `slots`: (version, share) with shares >= 0, scaled to sum to 1 (equal shares when they sum
  // to 0).
  explicit Split(std::vector<std::pair<int64_t, double>> slots);

  const std::vector<std::pair<int64_t, double>>& slots() const { return slots_; }
  bool empty() const { return slots_.empty(); }
  size_t size() const { return slots_.size(); }

  // The version of the slot that `draw`, uniform in [0, 1), falls in. Not for an empty split.
  int64_t Pick(double draw) const;

  // The share of the requests that `version` takes (over all its slots).
  double ShareOf(int64_t version) const;

  friend bool operator==(const Split& a, const Split& b) { return a.slots_ == b.slots_; }

 private:
  std::vector<std::pair<int64_t, double>> slots_;
};

}  // namespace maas::internal

#endif  // MAAS_LIB_SPLIT_H_
