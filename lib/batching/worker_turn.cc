#include "batching/worker_turn.h"

namespace maas::internal {

bool WideTurn(const TurnSnapshot& s) {
  return s.running_batches == 0 && s.in_step && s.prefer_wide && s.all_cores_free;
}

Turn TurnOf(const TurnSnapshot& s, bool wide, int threads) {
  if (!s.has_wide_worker || s.draining) return {Turn::kTake};
  if (wide) return {WideTurn(s) ? Turn::kTake : Turn::kPassToNarrow};
  if (WideTurn(s)) {
    if (s.wide_waiting) return {Turn::kPassToWide};
    // The wide worker is answering its last batch's callers and is back in a moment; only a
    // slow callback holds it longer.
    const absl::Time grace_until = s.wide_answering_since + kWideWorkerGrace;
    if (s.now >= grace_until) return {Turn::kTake};
    return {Turn::kStandBy, grace_until};
  }
  // A batch formed while every core is taken by this model's running batches would only wait
  // for one of them, taking requests that may soon have more company. (Cores taken by other
  // models: take it and wait for a core, as nothing of this model will wake this worker.)
  if (s.running_batches == 0 || s.cores_available >= threads) return {Turn::kTake};
  return {Turn::kWaitForABatch};
}

WakeUp WhomToWake(const TurnSnapshot& s) {
  WakeUp wake;
  if (s.has_wide_worker && WideTurn(s)) {
    wake.wide = true;
    if (!s.wide_waiting && !s.narrow_standing_by) wake.narrow = 1;
  } else {
    wake.narrow = s.borrowed_slots > 0 ? WakeUp::kAllNarrow : 1;
  }
  return wake;
}

}  // namespace maas::internal
