// BatchQueue, the batching policy, on its own: no tensors, threads or sessions, and time given
// as arguments (microseconds of made-up time), so every case is exact and instant.
#include "batch_queue.h"

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
    for (const auto& task : queue_->Form(At(now_us), flush, &wake_at_, &end_)) {
      ids.push_back(task->id);
    }
    return ids;
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
    queue_->RecordExecution(1, absl::Milliseconds(1));
    queue_->RecordExecution(4, absl::Milliseconds(4));
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
    queue_->RecordExecution(1, absl::Milliseconds(1));
    queue_->RecordExecution(4, absl::Milliseconds(4));
  }
  for (std::string id : {"a", "b", "c", "d"}) ASSERT_TRUE(Push(id, 1, 0, 0, At(2500)).ok());
  EXPECT_THAT(Form(0), ElementsAre("a", "b"));
  EXPECT_EQ(end_, BatchEnd::kDeadline);
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
  options.preferred_batch_sizes = {64};
  EXPECT_THAT(std::string(ValidateBatchingOptions(options).message()),
              HasSubstr("preferred batch size 64 is outside 1..max_batch_size (32)"));
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
}

}  // namespace
}  // namespace maas::internal
