// StepDetector: whether a model's requests arrive in step with its answers or independently.
// One of BatchQueue's controllers (docs/scheduler.md, "Adaptive batching").
#ifndef MAAS_LIB_STEP_DETECTOR_H_
#define MAAS_LIB_STEP_DETECTOR_H_

#include "absl/time/time.h"

namespace maas::internal {

// Callers that wait for their answer before sending the next request arrive in bursts right
// after answers ("in step"); an open stream arrives as often right after an answer as at any
// other time ("independent"). Waiting for company pays only for the former, and one batch on all
// cores is the fastest way to answer them.
//
// The detector counts arrivals in each answer's echo window (the kEchoWindow after it: a few
// thread wake-ups) and outside them, over epochs of kArrivalsPerVerdict arrivals, and judges
// each epoch on its own (so that a change of load is judged on the new load alone):
//
//   kUnjudged --epoch--> kInStep | kIndependent
//   kInStep <--epoch--> kIndependent
//
// An epoch's verdict is kInStep when arrivals in echo windows came kBurstFactor times as fast as
// outside them, and kIndependent when they did not, when nothing was answered during the epoch,
// or when echo windows covered more than (1 - kLeastOutsideShare) of it (answers so frequent
// that there is no time to compare with). An epoch whose arrivals all came at one instant gives
// no verdict. Callers count as in step until the first verdict: waiting costs a lone caller
// nothing, since a batch only waits for requests already expected.
//
// This class is thread-compatible.
class StepDetector {
 public:
  enum class State { kUnjudged, kInStep, kIndependent };

  static constexpr absl::Duration kEchoWindow = absl::Microseconds(200);
  static constexpr double kBurstFactor = 3;
  static constexpr double kLeastOutsideShare = 0.1;
  static constexpr int kArrivalsPerVerdict = 64;

  // Counts a request that arrived at `at`; ends the epoch at its kArrivalsPerVerdict-th.
  void Arrived(absl::Time at);

  // Notes an answer given at `end` (a batch finished): arrivals in the next kEchoWindow are its
  // echo. Answers out of order count once.
  void Answered(absl::Time end);

  State state() const { return state_; }
  // Whether callers count as in step now.
  bool InStep() const { return state_ != State::kIndependent; }
  // When the latest answer was given (InfinitePast before any).
  absl::Time last_answer() const { return last_answer_; }

 private:
  State state_ = State::kUnjudged;
  // In the current epoch: arrivals, those in echo windows, the seconds of echo windows, and the
  // first and latest arrival.
  int arrivals_ = 0;
  int echo_arrivals_ = 0;
  double echo_seconds_ = 0;
  absl::Time epoch_start_ = absl::InfinitePast();
  absl::Time last_arrival_ = absl::InfinitePast();
  absl::Time last_answer_ = absl::InfinitePast();
};

}  // namespace maas::internal

#endif  // MAAS_LIB_STEP_DETECTOR_H_
