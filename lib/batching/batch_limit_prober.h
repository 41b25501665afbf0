// BatchLimitProber: the adaptive limit on a batch's items. One of BatchQueue's controllers
// (docs/scheduler.md, "Adaptive batching").
#ifndef MAAS_LIB_BATCH_LIMIT_PROBER_H_
#define MAAS_LIB_BATCH_LIMIT_PROBER_H_

#include <cstdint>

#include "absl/time/time.h"
#include "batching/execution_time_model.h"

namespace maas::internal {

// Finds the smallest batch that reaches the model's throughput under load (the smallest answers
// its requests soonest), from full batches at the limit: Clipper's additive-increase /
// multiplicative-decrease, with throughput per item instead of a latency target.
//
// A probe runs at double (or half) the limit until kProbeSamples batches of its size are
// measured afresh; the larger of the two sizes stays only when it is kWorthwhileGain faster per
// item. Probes go up while that pays and the load allows, then down while that loses nothing;
// then the limit settles, and probes again after a number of full batches (measurements drift:
// other load, a warmer cache) that doubles with each settling, from
// kFirstBatchesBeforeProbingAgain to kMaxBatchesBeforeProbingAgain, and starts over when a
// probe wins. States (each change happens on a full batch at the limit, in Ran):
//
//   kBeforeProbeUp   --measured--> kProbingUp    (limit x2; or kBeforeProbeDown's probe when
//                                                 doubling is beyond max_items or the load)
//   kProbingUp       --judged----> kBeforeProbeUp (won: keep the double) | kBeforeProbeDown
//                                                 (lost: back to the limit before)
//   kBeforeProbeDown --measured--> kProbingDown  (limit /2; kSettled when it is 1)
//   kProbingDown     --judged----> kBeforeProbeDown (won: keep the half) | kSettled (lost)
//   kSettled         --enough full batches--> kBeforeProbeUp
//   any              --TooLarge--> kSettled      (limit halved below the failed batch)
//
// It keeps its own measurements (only its probes forget any), so no other controller can erase
// what a probe is judged on.
//
// This class is thread-compatible.
class BatchLimitProber {
 public:
  enum class State { kBeforeProbeUp, kProbingUp, kBeforeProbeDown, kProbingDown, kSettled };

  static constexpr int64_t kFirstLimit = 32;
  // Full batches at the limit mean the queue is saturated: throughput then decides latency
  // too, and any measured gain is worth keeping; 1% keeps noise from doubling a limit that
  // gains nothing.
  static constexpr double kWorthwhileGain = 1.01;
  static constexpr int kProbeSamples = 4;
  static constexpr int64_t kFirstBatchesBeforeProbingAgain = 32;
  static constexpr int64_t kMaxBatchesBeforeProbingAgain = 1024;

  // The limit starts at kFirstLimit, or `max_items` if smaller, and never exceeds `max_items`.
  explicit BatchLimitProber(int64_t max_items);

  // What a probe up must fit in: under load, `in_flight` items are usually queued or running,
  // and `parallel_batches` batches run side by side. A limit larger than their share would
  // leave a worker idle while another's batch holds its items.
  struct Load {
    double in_flight = 1;
    int parallel_batches = 1;
  };

  // Learns a batch of `items` that ran on a batch's usual cores in `elapsed`. A batch at the
  // limit or above may change the state (see the class comment).
  void Ran(int64_t items, absl::Duration elapsed, Load load);

  // A batch of `items` failed although each of its requests succeeded alone (out of memory,
  // say): halves the limit below it and settles.
  void TooLarge(int64_t items);

  int64_t limit() const { return limit_; }
  State state() const { return state_; }

 private:
  void Judge();
  void Probe(Load load);
  void Settle();
  // How much more throughput per item a batch of `larger` items has than one of `smaller`.
  double Gain(int64_t larger, int64_t smaller) const;

  const int64_t max_items_;
  ExecutionTimeModel measured_;
  State state_ = State::kBeforeProbeUp;
  int64_t limit_;
  int64_t limit_before_probe_ = 0;  // While probing: the limit it is judged against.
  int64_t full_batches_since_settled_ = 0;
  int64_t batches_before_probing_again_ = kFirstBatchesBeforeProbingAgain / 2;  // Settle doubles.
};

}  // namespace maas::internal

#endif  // MAAS_LIB_BATCH_LIMIT_PROBER_H_
