#include "batching/batch_limit_prober.h"

#include <algorithm>

namespace maas::internal {

BatchLimitProber::BatchLimitProber(int64_t max_items)
    : max_items_(std::max<int64_t>(1, max_items)),
      measured_(max_items_),
      limit_(std::min(max_items_, kFirstLimit)) {}

void BatchLimitProber::Ran(int64_t items, absl::Duration elapsed, Load load) {
  measured_.Record(items, elapsed);
  if (items < limit_) return;  // Only full batches at the limit say whether it holds the load.
  switch (state_) {
    case State::kProbingUp:
    case State::kProbingDown:
      Judge();
      return;
    case State::kSettled:
      if (++full_batches_since_settled_ < batches_before_probing_again_) return;
      state_ = State::kBeforeProbeUp;
      Probe(load);
      return;
    case State::kBeforeProbeUp:
    case State::kBeforeProbeDown:
      Probe(load);
      return;
  }
}

void BatchLimitProber::Judge() {
  if (measured_.Samples(limit_) < kProbeSamples) return;
  const bool up = state_ == State::kProbingUp;
  const int64_t larger = std::max(limit_, limit_before_probe_);
  const int64_t smaller = std::min(limit_, limit_before_probe_);
  const bool won = (Gain(larger, smaller) >= kWorthwhileGain) == up;
  if (won) {
    batches_before_probing_again_ = kFirstBatchesBeforeProbingAgain;
    state_ = up ? State::kBeforeProbeUp : State::kBeforeProbeDown;
  } else {
    limit_ = limit_before_probe_;
    if (up) {
      state_ = State::kBeforeProbeDown;  // Try half once before settling.
    } else {
      Settle();
    }
  }
  limit_before_probe_ = 0;
}

void BatchLimitProber::Probe(Load load) {
  if (measured_.Samples(limit_) < kProbeSamples) return;
  if (state_ == State::kBeforeProbeUp &&
      (limit_ >= max_items_ ||
       static_cast<double>(limit_ * 2 * load.parallel_batches) > load.in_flight)) {
    state_ = State::kBeforeProbeDown;
  }
  const bool up = state_ == State::kBeforeProbeUp;
  const int64_t probe = up ? std::min(limit_ * 2, max_items_) : limit_ / 2;
  if (probe < 1) {
    Settle();
    return;
  }
  measured_.Forget(probe);  // Judged on fresh measurements, under today's load.
  limit_before_probe_ = limit_;
  limit_ = probe;
  state_ = up ? State::kProbingUp : State::kProbingDown;
}

void BatchLimitProber::TooLarge(int64_t items) {
  if (items <= 1) return;
  limit_ = std::max<int64_t>(1, std::min(limit_, items / 2));
  limit_before_probe_ = 0;
  Settle();
}

void BatchLimitProber::Settle() {
  state_ = State::kSettled;
  full_batches_since_settled_ = 0;
  batches_before_probing_again_ =
      std::min(2 * batches_before_probing_again_, kMaxBatchesBeforeProbingAgain);
}

double BatchLimitProber::Gain(int64_t larger, int64_t smaller) const {
  return static_cast<double>(larger) / static_cast<double>(smaller) *
         absl::FDivDuration(*measured_.Predict(smaller), *measured_.Predict(larger));
}

}  // namespace maas::internal
