#include "batching/step_detector.h"

#include <algorithm>

namespace maas::internal {

void StepDetector::Arrived(absl::Time at) {
  if (arrivals_ == 0) epoch_start_ = at;
  last_arrival_ = std::max(last_arrival_, at);
  ++arrivals_;
  if (last_answer_ != absl::InfinitePast() && at >= last_answer_ &&
      at - last_answer_ <= kEchoWindow) {
    ++echo_arrivals_;
  }
  if (arrivals_ < kArrivalsPerVerdict) return;
  const double span = absl::ToDoubleSeconds(last_arrival_ - epoch_start_);
  const double outside = span - echo_seconds_;  // Seconds not just after an answer.
  if (span > 0 && echo_seconds_ > 0 && outside >= kLeastOutsideShare * span) {
    // Against the epoch's average rate instead of the rate outside, answers frequent enough for
    // their windows to cover a third of the time could never be judged in step.
    const double rate_inside = echo_arrivals_ / echo_seconds_;
    const double rate_outside = (arrivals_ - echo_arrivals_) / outside;
    state_ = rate_inside >= kBurstFactor * rate_outside ? State::kInStep : State::kIndependent;
  } else if (span > 0) {
    state_ = State::kIndependent;  // No answer during the epoch, or no time outside windows.
  }
  arrivals_ = echo_arrivals_ = 0;
  echo_seconds_ = 0;
}

void StepDetector::Answered(absl::Time end) {
  if (last_answer_ != absl::InfinitePast() && end <= last_answer_) return;
  // The echo window after this answer, less what overlaps the previous one's.
  const absl::Duration window = last_answer_ == absl::InfinitePast()
                                    ? kEchoWindow
                                    : std::min(kEchoWindow, end - last_answer_);
  echo_seconds_ += absl::ToDoubleSeconds(window);
  last_answer_ = end;
}

}  // namespace maas::internal
