// BatchQueue, the batching policy, on its own: no tensors, threads or sessions, and time given
// as arguments (microseconds of made-up time), so every case is exact and instant.
#include "batching/batch_queue.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Task : BatchTask {
  std::string id;
};

const absl::Time kStart = absl::FromUnixSeconds(1000);
absl::Time At(int64_t micros) { return kStart + absl::Microseconds(micros); }

class BatchQueueTest : public ::testing::Test {
 protected:
  void Make(BatchingOptions options, bool batchable = true) {
    queue_ = std::make_unique<BatchQueue<Task>>("model 'm'", std::move(options), batchable);
  }

  absl::Status Push(std::string id, int64_t items, int64_t enqueued_us = 0, int priority = 0,
                    absl::Time deadline = absl::InfiniteFuture(), std::vector<int64_t> key = {}) {
    auto task = std::make_unique<Task>();
    task->id = std::move(id);
    task->items = items;
    task->enqueued = At(enqueued_us);
    task->priority = priority;
    task->deadline = deadline;
    task->key = std::move(key);
    return queue_->Push(&task);
  }

  // The ids of the batch formed at `now_us` (empty when it waits), and when it would be ready.
  std::vector<std::string> Form(int64_t now_us, bool flush = false) {
    std::vector<std::string> ids;
    auto formed = queue_->Form(At(now_us), flush);
    wake_at_ = formed.wake_at;
    end_ = formed.end;
    for (const auto& task : formed.tasks) ids.push_back(task->id);
    return ids;
  }

  // Teaches the queue one run of `items` items that took `elapsed` and ended at `end_us`.
  void Ran(int64_t items, absl::Duration elapsed, int64_t end_us = 0) {
    queue_->StartAlone(items, At(end_us) - elapsed);
    queue_->Finished(items, At(end_us), elapsed);
  }

  std::unique_ptr<BatchQueue<Task>> queue_;
  absl::Time wake_at_;
  BatchEnd end_ = BatchEnd::kQueueEmpty;
};

BatchingOptions Options(int64_t max_batch_size, absl::Duration delay = absl::ZeroDuration()) {
  BatchingOptions options;
  options.max_batch_size = max_batch_size;
  options.max_queue_delay = delay;
  return options;
}

TEST_F(BatchQueueTest, WithoutADelayEverythingQueuedRunsAtOnceUpToTheMaximum) {
  Make(Options(4));
  for (std::string id : {"a", "b", "c"}) ASSERT_TRUE(Push(id, 2).ok());
  EXPECT_EQ(queue_->requests(), 3);
  EXPECT_EQ(queue_->items(), 6);
  // a+b = 4 items is full; c waits for the next batch.
  EXPECT_THAT(Form(0), ElementsAre("a", "b"));
  EXPECT_EQ(end_, BatchEnd::kFull);
  EXPECT_THAT(Form(0), ElementsAre("c"));
  EXPECT_EQ(end_, BatchEnd::kQueueEmpty);
  EXPECT_TRUE(queue_->empty());
  EXPECT_THAT(Form(0), IsEmpty());
  EXPECT_EQ(wake_at_, absl::InfiniteFuture());
}

TEST_F(BatchQueueTest, APartialBatchWaitsForTheDelayFromItsOldestRequest) {
  Make(Options(8, absl::Microseconds(500)));
  ASSERT_TRUE(Push("a", 1, /*enqueued_us=*/100).ok());
  ASSERT_TRUE(Push("b", 1, /*enqueued_us=*/300).ok());
  EXPECT_THAT(Form(200), IsEmpty());
  EXPECT_EQ(wake_at_, At(600));
  EXPECT_THAT(Form(599), IsEmpty());
  EXPECT_THAT(Form(600), ElementsAre("a", "b"));
}

TEST_F(BatchQueueTest, AFullBatchOrAFlushDoesNotWait) {
  Make(Options(2, absl::Seconds(1)));
  ASSERT_TRUE(Push("a", 1).ok());
  EXPECT_THAT(Form(0), IsEmpty());
  EXPECT_THAT(Form(0, /*flush=*/true), ElementsAre("a"));
  ASSERT_TRUE(Push("b", 1).ok());
  ASSERT_TRUE(Push("c", 1).ok());
  EXPECT_THAT(Form(0), ElementsAre("b", "c"));
}

TEST_F(BatchQueueTest, PreferredSizesRunEarlyAndTrimTheBatch) {
  BatchingOptions options = Options(8, absl::Seconds(1));
  options.preferred_batch_sizes = {3};
  Make(options);
  ASSERT_TRUE(Push("a", 2).ok());
  EXPECT_THAT(Form(0), IsEmpty());
  ASSERT_TRUE(Push("b", 1).ok());
  ASSERT_TRUE(Push("c", 1).ok());
  // a+b adds up to 3: it runs now, without c.
  EXPECT_THAT(Form(0), ElementsAre("a", "b"));
  EXPECT_EQ(end_, BatchEnd::kPreferred);
  EXPECT_THAT(Form(0), IsEmpty());
}

TEST_F(BatchQueueTest, HigherPriorityFirstThenArrivalOrder) {
  Make(Options(2));
  ASSERT_TRUE(Push("low1", 1, 0, /*priority=*/0).ok());
  ASSERT_TRUE(Push("high", 1, 1, /*priority=*/5).ok());
  ASSERT_TRUE(Push("low2", 1, 2, /*priority=*/0).ok());
  EXPECT_THAT(Form(10), ElementsAre("high", "low1"));
  EXPECT_THAT(Form(10), ElementsAre("low2"));
}

TEST_F(BatchQueueTest, OnlyRequestsWithEqualKeysShareABatch) {
  Make(Options(8));
  ASSERT_TRUE(Push("a", 1, 0, 0, absl::InfiniteFuture(), {3}).ok());
  ASSERT_TRUE(Push("other", 1, 1, 0, absl::InfiniteFuture(), {4}).ok());
  ASSERT_TRUE(Push("b", 1, 2, 0, absl::InfiniteFuture(), {3}).ok());
  EXPECT_THAT(Form(10), ElementsAre("a", "b"));
  EXPECT_THAT(Form(10), ElementsAre("other"));
}

TEST_F(BatchQueueTest, ARequestThatDoesNotFitEndsTheBatchInsteadOfBeingOvertaken) {
  Make(Options(4));
  ASSERT_TRUE(Push("a", 3).ok());
  ASSERT_TRUE(Push("big", 2).ok());
  ASSERT_TRUE(Push("small", 1).ok());
  EXPECT_THAT(Form(0), ElementsAre("a"));
  EXPECT_EQ(end_, BatchEnd::kNextTooLarge);
  EXPECT_THAT(Form(0), ElementsAre("big", "small"));
}

TEST_F(BatchQueueTest, AModelThatIsNotBatchableRunsOneRequestAtATime) {
  Make(Options(8), /*batchable=*/false);
  ASSERT_TRUE(Push("a", 1).ok());
  ASSERT_TRUE(Push("b", 1).ok());
  EXPECT_THAT(Form(0), ElementsAre("a"));
  EXPECT_THAT(Form(0), ElementsAre("b"));
}

TEST_F(BatchQueueTest, AFullQueueRefusesWithUnavailableAndKeepsTheTask) {
  BatchingOptions options = Options(4);
  options.max_queue_size = 4;
  Make(options);
  ASSERT_TRUE(Push("a", 3).ok());
  auto task = std::make_unique<Task>();
  task->items = 2;
  absl::Status full = queue_->Push(&task);
  EXPECT_EQ(full.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(full.message()),
              HasSubstr("queue full (3 items queued, max_queue_size 4)"));
  EXPECT_NE(task, nullptr) << "a refused task stays with the caller";
  EXPECT_EQ(queue_->items(), 3);
}

TEST_F(BatchQueueTest, ExpiredRequestsAreRefusedWithTheirTimeInTheQueue) {
  Make(Options(8, absl::Seconds(1)));
  ASSERT_TRUE(Push("late", 1, /*enqueued_us=*/0, 0, At(1000)).ok());
  ASSERT_TRUE(Push("fine", 1, 0, 0, At(5000)).ok());
  ASSERT_TRUE(Push("none", 1).ok());
  std::vector<BatchQueue<Task>::Refused> refused;
  EXPECT_EQ(queue_->RefuseLate(At(999), &refused), At(1000));
  EXPECT_THAT(refused, IsEmpty());
  EXPECT_EQ(queue_->RefuseLate(At(1500), &refused), At(5000));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].task->id, "late");
  EXPECT_EQ(refused[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(refused[0].status.message()),
              HasSubstr("deadline passed after 1.500 ms in the queue"));
  EXPECT_EQ(queue_->requests(), 2);
}

TEST_F(BatchQueueTest, LearnedExecutionTimesRefuseHopelessRequestsAndCapBatches) {
  Make(Options(8));
  // The model takes 1 ms for one item and 4 ms for four (2 samples each to be trusted).
  for (int i = 0; i < 2; ++i) {
    Ran(1, absl::Milliseconds(1));
    Ran(4, absl::Milliseconds(4));
  }
  BatchTask hopeless;
  hopeless.deadline = At(500);  // 0.5 ms left, a run takes 1 ms.
  absl::Status refused = queue_->Admit(hopeless, At(0));
  EXPECT_EQ(refused.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("would miss its deadline"));
  BatchTask fine;
  fine.deadline = At(10'000);
  EXPECT_TRUE(queue_->Admit(fine, At(0)).ok());

  // Four requests whose deadline is 2.5 ms away: a batch of three (3 ms) or four (4 ms) would
  // make them late, so the batch stops growing where its predicted time still fits (2 items).
  Make(Options(8));
  for (int i = 0; i < 2; ++i) {
    Ran(1, absl::Milliseconds(1));
    Ran(4, absl::Milliseconds(4));
  }
  for (std::string id : {"a", "b", "c", "d"}) ASSERT_TRUE(Push(id, 1, 0, 0, At(2500)).ok());
  EXPECT_THAT(Form(0), ElementsAre("a", "b"));
  EXPECT_EQ(end_, BatchEnd::kDeadline);
}

TEST_F(BatchQueueTest, BlockingCallersAnsweredAMomentAgoAreWaitedFor) {
  Make(Options(8));
  for (int i = 0; i < 2; ++i) Ran(4, absl::Milliseconds(4));  // A batch of 4 takes 4 ms.
  // Four callers, each waiting for its answer: all four are in flight at once.
  for (std::string id : {"a", "b", "c", "d"}) ASSERT_TRUE(Push(id, 1).ok());
  EXPECT_DOUBLE_EQ(queue_->expected_in_flight(), 4);
  EXPECT_THAT(Form(0), ElementsAre("a", "b", "c", "d"));
  queue_->Finished(4, At(4000), absl::Milliseconds(4));
  // Answered at 4 ms; the first caller is back at once. Running it alone would split the next
  // batch: it waits for the other three, at most a quarter of a batch of 4 (1 ms).
  ASSERT_TRUE(Push("a2", 1, 4010).ok());
  EXPECT_THAT(Form(4010), IsEmpty());
  EXPECT_EQ(wake_at_, At(5010));
  for (std::string id : {"b2", "c2"}) ASSERT_TRUE(Push(id, 1, 4020).ok());
  EXPECT_THAT(Form(4020), IsEmpty());
  ASSERT_TRUE(Push("d2", 1, 4030).ok());
  EXPECT_THAT(Form(4030), ElementsAre("a2", "b2", "c2", "d2"));
  EXPECT_EQ(end_, BatchEnd::kQueueEmpty);
}

TEST_F(BatchQueueTest, ALoneCallerNeverWaitsAndAnUnrewardedWaitLowersTheExpectation) {
  Make(Options(8));
  for (int i = 0; i < 2; ++i) Ran(4, absl::Milliseconds(4));
  ASSERT_TRUE(Push("lone", 1).ok());
  EXPECT_FALSE(queue_->ExpectsCompany());
  EXPECT_THAT(Form(0), ElementsAre("lone"));  // Nothing else in flight: no reason to wait.
  queue_->Finished(1, At(1000), absl::Milliseconds(1));

  // Three arrive together, then only one comes back: it waits in vain, runs at the limit of
  // the wait, and from then on a lone request runs at once again.
  for (std::string id : {"a", "b", "c"}) ASSERT_TRUE(Push(id, 1, 2000).ok());
  EXPECT_TRUE(queue_->ExpectsCompany());
  EXPECT_THAT(Form(2000), ElementsAre("a", "b", "c"));
  queue_->Finished(3, At(5000), absl::Milliseconds(3));
  ASSERT_TRUE(Push("back", 1, 5000).ok());
  EXPECT_THAT(Form(5000), IsEmpty());
  const absl::Time limit = wake_at_;
  EXPECT_GT(limit, At(5000));
  EXPECT_LE(limit, At(6000));  // A quarter of the predicted batch of 3 (3.25 ms) at most.
  EXPECT_THAT(Form(absl::ToInt64Microseconds(limit - kStart)), ElementsAre("back"));
  EXPECT_FALSE(queue_->ExpectsCompany());
  queue_->Finished(1, At(7000), absl::Milliseconds(1));
  ASSERT_TRUE(Push("next", 1, 8000).ok());
  EXPECT_THAT(Form(8000), ElementsAre("next"));
}

TEST_F(BatchQueueTest, RequestsArrivingIndependentlyAreNotWaitedFor) {
  Make(Options(64));
  for (int i = 0; i < 2; ++i) Ran(8, absl::Milliseconds(4));
  // An open stream: one request every 100 us, whatever the answers; a batch of whatever is
  // queued runs every 500 us and takes 400 us. Many are in flight, but they do not come right
  // after answers, so a batch does not wait for them.
  int64_t now = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 5; ++i, now += 100) ASSERT_TRUE(Push("r", 1, now).ok());
    const size_t formed = Form(now).size();
    ASSERT_GT(formed, 0u) << "round " << round;
    queue_->Finished(static_cast<int64_t>(formed), At(now + 400), absl::Microseconds(400));
  }
  EXPECT_FALSE(queue_->Synchronized());
  EXPECT_FALSE(queue_->ExpectsCompany());
}

TEST_F(BatchQueueTest, CallersThatComeBackRightAfterTheirAnswersAreRecognized) {
  Make(Options(64));
  for (int i = 0; i < 2; ++i) Ran(8, absl::Milliseconds(4));
  // Eight callers, each back 20 us after its answer; a batch of eight takes 4 ms.
  int64_t now = 0;
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(Push("r", 1, now + 20 + 10 * i).ok());
    now += 100;
    ASSERT_EQ(Form(now).size(), 8u) << "round " << round;
    now += 4000;
    queue_->Finished(8, At(now), absl::Milliseconds(4));
  }
  EXPECT_TRUE(queue_->Synchronized());
  EXPECT_TRUE(queue_->ExpectsCompany());
}

TEST_F(BatchQueueTest, CallersInStepAreRecognizedEvenWhenAnswersComeOften) {
  Make(Options(64));
  for (int i = 0; i < 2; ++i) Ran(4, absl::Microseconds(600));
  // Two groups of four callers, each served by its own worker in 600 us batches, half a
  // batch apart: an answer every 300 us, so the 200 us after answers cover two thirds of the
  // time. Every caller is back 20-50 us after its answer, none at other times.
  int64_t now = 0;
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(Push("r", 1, now + 20 + 10 * i).ok());
    ASSERT_EQ(Form(now + 60).size(), 4u) << "round " << round;
    now += 300;
    queue_->Finished(4, At(now), absl::Microseconds(600));
  }
  EXPECT_TRUE(queue_->Synchronized());
}

// Eight callers in step with their answers, served for `rounds` rounds as a Scheduler with two
// narrow workers and a wide one would: the wide way runs the eight in one batch taking
// `wide_us`; the narrow way in two batches of four side by side, each taking `narrow_us`.
void ServeInStep(BatchQueue<Task>& queue, int rounds, int64_t wide_us, int64_t narrow_us,
                 int64_t* now_us) {
  for (int round = 0; round < rounds; ++round) {
    std::vector<int64_t> sizes;
    for (int i = 0; i < 8; ++i) {
      auto task = std::make_unique<Task>();
      task->enqueued = At(*now_us + 10 + i);
      ASSERT_TRUE(queue.Push(&task).ok());
      if (i == 3 || i == 7) {  // A free worker looks when half of them are back, then all.
        const size_t formed = queue.Form(At(*now_us + 10 + i), false).tasks.size();
        if (formed > 0) sizes.push_back(static_cast<int64_t>(formed));
      }
    }
    const bool wide = queue.PreferWide();
    const int64_t took = wide ? wide_us : narrow_us;
    *now_us += 100 + took;
    for (int64_t size : sizes) queue.Finished(size, At(*now_us), absl::Microseconds(took), wide);
  }
}

TEST_F(BatchQueueTest, CallersInStepGetTheFasterOfOneWideOrSeveralNarrowBatches) {
  int64_t now = 0;
  // Narrow twice as fast (a compute-bound model): after measuring both, narrow stays.
  Make(Options(64));
  queue_->ChooseWidthBetween(2);
  EXPECT_TRUE(queue_->PreferWide());  // Wide first.
  ServeInStep(*queue_, 200, /*wide_us=*/4000, /*narrow_us=*/2000, &now);
  EXPECT_TRUE(queue_->Synchronized());
  EXPECT_FALSE(queue_->PreferWide());
  EXPECT_EQ(queue_->BatchCap(), 4);  // Each narrow worker takes its half.
  EXPECT_TRUE(queue_->ExpectsCompany());
  // Two callers left: each narrow batch takes one, so a lone request expects no company in its
  // batch and may run at once (a wait could not test the expectation: the batch is full).
  now += 100000;
  ASSERT_TRUE(Push("a", 1, now).ok());
  ASSERT_TRUE(Push("b", 1, now).ok());
  EXPECT_THAT(Form(now), IsEmpty());  // Waits for the other six.
  EXPECT_THAT(Form(now + 100000), ElementsAre("a", "b"));  // In vain.
  ASSERT_FALSE(queue_->PreferWide());
  EXPECT_DOUBLE_EQ(queue_->expected_in_flight(), 2);
  EXPECT_EQ(queue_->BatchCap(), 1);
  EXPECT_FALSE(queue_->ExpectsCompany());

  // Wide twice as fast (a memory-bound model): after measuring both, wide stays.
  Make(Options(64));
  queue_->ChooseWidthBetween(2);
  ServeInStep(*queue_, 200, /*wide_us=*/2000, /*narrow_us=*/4000, &now);
  EXPECT_TRUE(queue_->PreferWide());
  EXPECT_EQ(queue_->BatchCap(), 32);
}

TEST_F(BatchQueueTest, TheWidthForCallersInStepFollowsAChangeOfSpeed) {
  int64_t now = 0;
  Make(Options(64));
  queue_->ChooseWidthBetween(2);
  ServeInStep(*queue_, 300, /*wide_us=*/2000, /*narrow_us=*/4000, &now);
  EXPECT_TRUE(queue_->PreferWide());
  // Other load takes memory bandwidth from the wide batches (say): narrow becomes faster, and
  // a later trial sees it, although trials grew rare while wide kept winning.
  ServeInStep(*queue_, 3000, /*wide_us=*/8000, /*narrow_us=*/4000, &now);
  EXPECT_FALSE(queue_->PreferWide());
}

TEST_F(BatchQueueTest, TheWaitForCompanyNeverMakesARequestLate) {
  Make(Options(8));
  for (int i = 0; i < 2; ++i) Ran(4, absl::Milliseconds(4));
  for (std::string id : {"a", "b", "c", "d"}) ASSERT_TRUE(Push(id, 1).ok());
  EXPECT_THAT(Form(0), ElementsAre("a", "b", "c", "d"));
  queue_->Finished(4, At(4000), absl::Milliseconds(4));
  // Due 8.5 ms from the start; a batch of 4 takes 4 ms: it may wait until 4.5 ms, not 5.
  ASSERT_TRUE(Push("urgent", 1, 4000, 0, At(8500)).ok());
  EXPECT_THAT(Form(4000), IsEmpty());
  EXPECT_EQ(wake_at_, At(4500));
  EXPECT_THAT(Form(4500), ElementsAre("urgent"));
}

TEST_F(BatchQueueTest, WithoutAdaptiveBatchingNothingWaitsAndTheLimitIsTheMaximum) {
  BatchingOptions options = Options(64);
  options.adaptive_batching = false;
  Make(options);
  EXPECT_EQ(queue_->batch_size_limit(), 64);
  for (int i = 0; i < 2; ++i) Ran(4, absl::Milliseconds(4));
  for (std::string id : {"a", "b", "c", "d"}) ASSERT_TRUE(Push(id, 1).ok());
  EXPECT_THAT(Form(0), ElementsAre("a", "b", "c", "d"));
  queue_->Finished(4, At(4000), absl::Milliseconds(4));
  ASSERT_TRUE(Push("a2", 1, 4010).ok());
  EXPECT_THAT(Form(4010), ElementsAre("a2"));
  EXPECT_FALSE(queue_->ExpectsCompany());
}

// Fills the queue with `items` one-item tasks and runs them as one batch taking `elapsed`.
void RunFullBatch(BatchQueue<Task>& queue, int64_t items, absl::Duration elapsed) {
  for (int64_t i = 0; i < items; ++i) {
    auto task = std::make_unique<Task>();
    task->enqueued = kStart;
    ASSERT_TRUE(queue.Push(&task).ok());
  }
  ASSERT_EQ(queue.Form(kStart, false).tasks.size(), static_cast<size_t>(items));
  queue.Finished(items, kStart, elapsed);
}

// Runs `batches` full batches, each at the queue's limit at the time and taking cost(items).
// Returns how many batches ran at each limit.
std::map<int64_t, int> RunAtLimit(BatchQueue<Task>& queue, int batches,
                                  const std::function<absl::Duration(int64_t)>& cost) {
  std::map<int64_t, int> at_limit;
  for (int i = 0; i < batches; ++i) {
    const int64_t items = queue.batch_size_limit();
    RunFullBatch(queue, items, cost(items));
    ++at_limit[items];
  }
  return at_limit;
}

// Runs full batches until the limit is `limit` (not a probe away from it), at most 100.
void RunUntilLimit(BatchQueue<Task>& queue, int64_t limit,
                   const std::function<absl::Duration(int64_t)>& cost) {
  for (int i = 0; i < 100 && queue.batch_size_limit() != limit; ++i) {
    RunFullBatch(queue, queue.batch_size_limit(), cost(queue.batch_size_limit()));
  }
}

// A memory-bound model: larger batches are faster per item up to 64, no faster beyond.
absl::Duration MemoryBound(int64_t items) {
  switch (items) {
    case 16:
      return absl::Microseconds(750);
    case 32:
      return absl::Milliseconds(1);
    case 64:
      return absl::Microseconds(1500);
    default:
      return absl::Microseconds(1500) * (static_cast<double>(items) / 64);
  }
}

TEST_F(BatchQueueTest, TheBatchSizeLimitDoublesWhileThatPaysAndNotBeyond) {
  Make(Options(256));
  EXPECT_EQ(queue_->batch_size_limit(), 32);
  // Many in flight (another shape, behind): larger batches may pay. 64 is a third faster per
  // item than 32 and kept; 128 is no faster than 64 and given up; 32 is slower than 64: the
  // limit settles at 64, and stays while the measurements do.
  // (Probes again after 32 full batches, then 64, doubling: a few batches at 128 and 32.)
  ASSERT_TRUE(Push("others", 2000, 0, -1, absl::InfiniteFuture(), {1}).ok());
  RunAtLimit(*queue_, 40, MemoryBound);
  EXPECT_EQ(queue_->batch_size_limit(), 64);
  const std::map<int64_t, int> at_limit = RunAtLimit(*queue_, 900, MemoryBound);
  EXPECT_GE(at_limit.at(64), 850) << ::testing::PrintToString(at_limit);
  EXPECT_EQ(at_limit.rbegin()->first, 128) << ::testing::PrintToString(at_limit);
  // A batch that fails although each request succeeds alone halves it.
  RunUntilLimit(*queue_, 64, MemoryBound);
  queue_->TooLarge(64);
  EXPECT_EQ(queue_->batch_size_limit(), 32);
}

TEST_F(BatchQueueTest, TheBatchSizeLimitGrowsOnlyAsFarAsTheItemsInFlightFillIt) {
  Make(Options(256));
  // Only 32 in flight: a batch of 64 could never fill up (however fast per item); half of 32
  // is slower per item: the limit stays 32.
  const std::map<int64_t, int> at_limit = RunAtLimit(*queue_, 200, MemoryBound);
  EXPECT_EQ(at_limit.rbegin()->first, 32) << ::testing::PrintToString(at_limit);
  EXPECT_GE(at_limit.at(32), 180) << ::testing::PrintToString(at_limit);
}

TEST_F(BatchQueueTest, TheBatchSizeLimitHalvesWhileHalfOfItIsAsFastPerItem) {
  Make(Options(256));
  // A compute-bound model: from 8 items up, time grows with the items (no faster per item);
  // 4 items take 3 ms, slower per item. The limit halves from 32 down to the knee, 8, and
  // stays there: a smaller batch of the same throughput answers its requests sooner.
  auto compute_bound = [](int64_t items) {
    return items <= 4 ? absl::Milliseconds(3) : absl::Microseconds(500) * items;
  };
  RunAtLimit(*queue_, 40, compute_bound);
  EXPECT_EQ(queue_->batch_size_limit(), 8);
  const std::map<int64_t, int> at_limit = RunAtLimit(*queue_, 900, compute_bound);
  EXPECT_GE(at_limit.at(8), 850) << ::testing::PrintToString(at_limit);
  EXPECT_EQ(at_limit.rbegin()->first, 16) << ::testing::PrintToString(at_limit);
}

TEST_F(BatchQueueTest, ARequestLargerThanTheAdaptiveLimitRunsAlone) {
  Make(Options(256));
  ASSERT_TRUE(Push("big", 100).ok());
  ASSERT_TRUE(Push("small", 1).ok());
  EXPECT_THAT(Form(0), ElementsAre("big"));
  EXPECT_EQ(end_, BatchEnd::kFull);
  EXPECT_THAT(Form(0), ElementsAre("small"));
}

TEST_F(BatchQueueTest, TakeAllEmptiesTheQueueInOrder) {
  Make(Options(8, absl::Seconds(1)));
  ASSERT_TRUE(Push("low", 1, 0, 0).ok());
  ASSERT_TRUE(Push("high", 1, 1, 1, At(100)).ok());
  std::vector<std::string> ids;
  for (const auto& task : queue_->TakeAll()) ids.push_back(task->id);
  EXPECT_THAT(ids, ElementsAre("high", "low"));
  EXPECT_TRUE(queue_->empty());
  EXPECT_EQ(queue_->items(), 0);
  std::vector<BatchQueue<Task>::Refused> refused;
  EXPECT_EQ(queue_->RefuseLate(At(200), &refused), absl::InfiniteFuture());
}

TEST(BatchingOptionsTest, ValidationNamesTheField) {
  BatchingOptions options;
  EXPECT_TRUE(ValidateBatchingOptions(options).ok());
  options.max_batch_size = 0;
  EXPECT_THAT(std::string(ValidateBatchingOptions(options).message()),
              HasSubstr("max_batch_size is 0"));
  options = BatchingOptions{};
  options.preferred_batch_sizes = {512};
  EXPECT_THAT(std::string(ValidateBatchingOptions(options).message()),
              HasSubstr("preferred batch size 512 is outside 1..max_batch_size (256)"));
  options = BatchingOptions{};
  options.max_queue_delay = -absl::Milliseconds(1);
  EXPECT_FALSE(ValidateBatchingOptions(options).ok());
  // An infinite delay would keep a lone request waiting for company forever.
  options.max_queue_delay = absl::InfiniteDuration();
  EXPECT_THAT(std::string(ValidateBatchingOptions(options).message()),
              HasSubstr("max_queue_delay is infinite"));
  options = BatchingOptions{};
  options.default_timeout = absl::ZeroDuration();
  EXPECT_FALSE(ValidateBatchingOptions(options).ok());
  options.default_timeout = absl::InfiniteDuration();
  EXPECT_TRUE(ValidateBatchingOptions(options).ok());
  options = BatchingOptions{};
  options.workers_per_session = -1;
  EXPECT_THAT(std::string(ValidateBatchingOptions(options).message()),
              HasSubstr("workers_per_session is -1; expected 0 (automatic) to 256"));
}

}  // namespace
}  // namespace maas::internal
