// The worker protocol on snapshots: which worker takes the next batch, and whom a request wakes.
// No threads: each case is one snapshot and one answer.
#include "batching/worker_turn.h"

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1000);

// Two cores, all free; callers in step and served wide; nothing running; a wide worker that
// waits for work.
TurnSnapshot Idle() {
  TurnSnapshot s;
  s.now = kNow;
  s.has_wide_worker = true;
  s.in_step = true;
  s.prefer_wide = true;
  s.all_cores_free = true;
  s.cores_available = 2;
  s.wide_waiting = true;
  return s;
}

constexpr bool kWide = true, kNarrow = false;

TEST(WorkerTurnTest, TheWideWorkerTakesBatchesOfCallersInStepWhenTheModelIsIdle) {
  EXPECT_TRUE(WideTurn(Idle()));
  EXPECT_EQ(TurnOf(Idle(), kWide, 2).action, Turn::kTake);
  EXPECT_EQ(TurnOf(Idle(), kNarrow, 1).action, Turn::kPassToWide);
}

TEST(WorkerTurnTest, NarrowWorkersTakeEverythingElse) {
  TurnSnapshot running = Idle();
  running.running_batches = 1;  // Load: batches side by side.
  running.all_cores_free = false;
  running.cores_available = 1;
  TurnSnapshot independent = Idle();
  independent.in_step = false;  // An open stream: waiting and wide batches do not pay.
  TurnSnapshot narrow_faster = Idle();
  narrow_faster.prefer_wide = false;
  TurnSnapshot other_model = Idle();
  other_model.all_cores_free = false;  // Another model's batch holds a core.
  other_model.cores_available = 1;
  for (const TurnSnapshot& s : {running, independent, narrow_faster, other_model}) {
    EXPECT_FALSE(WideTurn(s));
    EXPECT_EQ(TurnOf(s, kWide, 2).action, Turn::kPassToNarrow);
    EXPECT_EQ(TurnOf(s, kNarrow, 1).action, Turn::kTake);
  }
}

TEST(WorkerTurnTest, ANarrowWorkerWaitsWhileTheModelsOwnBatchesHoldEveryCore) {
  TurnSnapshot s = Idle();
  s.running_batches = 2;
  s.all_cores_free = false;
  s.cores_available = 0;
  EXPECT_EQ(TurnOf(s, kNarrow, 1).action, Turn::kWaitForABatch);
  s.cores_available = 1;  // One ended: its core is free.
  EXPECT_EQ(TurnOf(s, kNarrow, 1).action, Turn::kTake);
}

TEST(WorkerTurnTest, TheWideWorkersBatchWaitsForItOnlyForAGraceWhileItAnswers) {
  TurnSnapshot s = Idle();
  s.wide_waiting = false;  // Answering its last batch's callers since 2 ms ago.
  s.wide_answering_since = kNow - absl::Milliseconds(2);
  const Turn turn = TurnOf(s, kNarrow, 1);
  EXPECT_EQ(turn.action, Turn::kStandBy);
  EXPECT_EQ(turn.until, s.wide_answering_since + kWideWorkerGrace);
  s.now = turn.until;  // A slow callback holds it: a narrow worker takes the batch.
  EXPECT_EQ(TurnOf(s, kNarrow, 1).action, Turn::kTake);
}

TEST(WorkerTurnTest, WithoutAWideWorkerOrWhileDrainingAnyoneTakesTheBatch) {
  TurnSnapshot s = Idle();
  s.has_wide_worker = false;
  EXPECT_EQ(TurnOf(s, kNarrow, 1).action, Turn::kTake);
  s = Idle();
  s.draining = true;
  s.running_batches = 2;
  s.cores_available = 0;
  EXPECT_EQ(TurnOf(s, kNarrow, 1).action, Turn::kTake);
  EXPECT_EQ(TurnOf(s, kWide, 2).action, Turn::kTake);
}

TEST(WorkerTurnTest, ARequestWakesTheWorkerWhoseTurnItIs) {
  WakeUp wake = WhomToWake(Idle());
  EXPECT_TRUE(wake.wide);
  EXPECT_EQ(wake.narrow, 0);

  TurnSnapshot answering = Idle();
  answering.wide_waiting = false;  // A narrow worker stands in if the wide one is held up...
  wake = WhomToWake(answering);
  EXPECT_TRUE(wake.wide);
  EXPECT_EQ(wake.narrow, 1);
  answering.narrow_standing_by = true;  // ...unless one already stands by.
  EXPECT_EQ(WhomToWake(answering).narrow, 0);

  TurnSnapshot loaded = Idle();
  loaded.running_batches = 1;
  wake = WhomToWake(loaded);
  EXPECT_FALSE(wake.wide);
  EXPECT_EQ(wake.narrow, 1);
  loaded.borrowed_slots = 1;  // A slot lent to a caller cannot take it: wake them all.
  EXPECT_EQ(WhomToWake(loaded).narrow, WakeUp::kAllNarrow);
}

}  // namespace
}  // namespace maas::internal
