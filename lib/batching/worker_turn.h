// The worker protocol of a model's executor: which worker takes the next batch (the wide one,
// a narrow one, after a grace, or no one yet) and whom a new request wakes. Pure functions of a
// snapshot, tested without threads (tests/batching/worker_turn_test.cc); the executor's threads only
// carry out the answers.
#ifndef MAAS_LIB_WORKER_TURN_H_
#define MAAS_LIB_WORKER_TURN_H_

#include "absl/time/time.h"

namespace maas::internal {

// What the protocol decides from, taken under the executor's lock.
struct TurnSnapshot {
  absl::Time now;
  bool has_wide_worker = false;  // The model has a wide worker (one batch on all its cores).
  bool draining = false;         // Stopping: anyone takes anything.
  int running_batches = 0;       // This model's batches running now.
  bool in_step = false;          // Callers are in step with the answers (StepDetector).
  bool prefer_wide = true;       // The WidthChooser's choice for callers in step.
  bool all_cores_free = false;   // Every core of the budget is free.
  int cores_available = 0;       // Cores of the budget free now.
  bool wide_waiting = false;     // The wide worker waits for work.
  // When the wide worker began answering its last batch's callers (InfinitePast: never).
  absl::Time wide_answering_since = absl::InfinitePast();
  bool narrow_standing_by = false;  // A narrow worker waits for the grace to pass.
  int borrowed_slots = 0;           // Worker slots lent to callers running a request (Infer).
};

// How long the narrow workers leave a batch that is the wide worker's to take while it answers
// its last batch's callers; beyond it (a slow callback), a narrow worker takes it. Counted from
// that batch's end, and 10 ms rather than 1 (docs/scheduler.md, "Workers").
inline constexpr absl::Duration kWideWorkerGrace = absl::Milliseconds(10);

// Whether the next batch is the wide worker's: the model has nothing running, its callers are in
// step and served wide, and every core is free (low concurrency: one batch on all the cores
// answers soonest).
bool WideTurn(const TurnSnapshot& s);

// What a worker looking for work does with a queued batch.
struct Turn {
  enum Action {
    kTake,           // Form the batch and run it.
    kPassToNarrow,   // (The wide worker) not its turn: wake a narrow worker, then wait.
    kPassToWide,     // (A narrow worker) the wide worker's turn and it is waiting: wake it.
    kStandBy,        // (A narrow worker) the wide worker's turn, but it is answering
                     // callers: wait until `until`, then ask again.
    kWaitForABatch,  // (A narrow worker) this model's running batches hold the cores a batch
                     // would need: wait for one to end.
  };
  Action action = kTake;
  absl::Time until = absl::InfiniteFuture();  // For kStandBy.
};

// The turn of a worker (wide or not, running batches on `threads` cores) when a batch is queued.
Turn TurnOf(const TurnSnapshot& s, bool wide, int threads);

// Whom a new request wakes.
struct WakeUp {
  bool wide = false;  // The wide worker.
  int narrow = 0;     // Narrow workers to wake: 0, 1, or kAllNarrow.
  static constexpr int kAllNarrow = -1;
};

// The wide worker when it is its turn, with one narrow worker as a stand-in when the wide one
// is busy answering (unless one already stands by); every narrow worker when slots are lent to
// callers (a worker whose slot is lent cannot take it, and one that can must wake); one narrow
// worker otherwise.
WakeUp WhomToWake(const TurnSnapshot& s);

}  // namespace maas::internal

#endif  // MAAS_LIB_WORKER_TURN_H_
