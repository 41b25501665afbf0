// Tests of Scheduler: routing of rows under concurrency, shapes, priorities, deadlines, queue
// limits, throwing models, removal and destruction under load, several instances, statistics.
// Time-dependent behaviour runs on a FakeClock: no test sleeps to wait for time.
#include "maas/scheduler.h"

#include <torch/script.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <limits>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "maas/model_store.h"
#include "util/mutex.h"
#include "test_util.h"

namespace maas {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// Collects callback answers and lets a test wait for a number of them.
class Answers {
 public:
  InferenceCallback Callback(int id) {
    return [this, id](InferenceResult result) {
      internal::MutexLock lock(&mu_);
      order_.push_back(id);
      results_.emplace(id, std::move(result));
      changed_.SignalAll();
    };
  }
  void WaitFor(size_t n) {
    internal::MutexLock lock(&mu_);
    while (order_.size() < n) changed_.Wait(&mu_);
  }
  std::vector<int> order() {
    internal::MutexLock lock(&mu_);
    return order_;
  }
  InferenceResult Get(int id) {
    internal::MutexLock lock(&mu_);
    return results_.at(id);
  }

 private:
  internal::Mutex mu_;
  internal::CondVar changed_;
  std::vector<int> order_ ABSL_GUARDED_BY(mu_);
  std::map<int, InferenceResult> results_ ABSL_GUARDED_BY(mu_);
};

const ModelSignature kIdentitySignature{{{"x", torch::kFloat32, {2}}},
                                        {{"y", torch::kFloat32, {2}}}};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(*ModelStore::Open(dir_.path() / "store")); }

  // Publishes a module and loads `count` sessions of it.
  std::vector<std::shared_ptr<Session>> Load(
      const std::string& name, const std::string& source, const ModelSignature& signature,
      const std::vector<std::pair<std::string, at::Tensor>>& parameters = {}, int count = 1) {
    fs::path file = dir_.path() / (name + ".pt");
    testing::SaveScript(file, source, parameters);
    EXPECT_TRUE(store_->Publish(name, file, signature).ok());
    std::vector<std::shared_ptr<Session>> sessions;
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, name);
      EXPECT_TRUE(session.ok()) << session.status();
      if (session.ok()) sessions.push_back(std::move(*session));
    }
    return sessions;
  }

  // An identity model, "id", with one instance.
  // "slow": the identity on x, after `matmuls` products of 256x256 matrices, so that an
  // execution takes about the same time whatever the batch.
  std::vector<std::shared_ptr<Session>> LoadSlow(int matmuls) {
    return Load("slow",
                "def forward(self, x: Tensor) -> Tensor:\n  z = self.w\n  for i in range(" +
                    std::to_string(matmuls) +
                    "):\n    z = torch.matmul(z, self.w) / 16.0\n  return x + 0.0 * z.sum()\n",
                kIdentitySignature, {{"w", torch::randn({256, 256})}});
  }

  std::vector<std::shared_ptr<Session>> LoadIdentity() {
    return Load("id", "def forward(self, x: Tensor) -> Tensor:\n  return x\n", kIdentitySignature);
  }

  // The identity model, "id", on a FakeClock with a 1 s queue delay: a partial batch waits until
  // the test moves the clock (or the batch fills), so queue states are deterministic.
  std::unique_ptr<Scheduler> ServeIdentityWaiting(std::shared_ptr<FakeClock> clock,
                                                  BatchingOptions batching) {
    std::unique_ptr<Scheduler> scheduler = MakeScheduler(clock);
    batching.max_queue_delay = absl::Seconds(1);
    EXPECT_TRUE(scheduler->AddModel("id", LoadIdentity(), batching).ok());
    return scheduler;
  }

  std::unique_ptr<Scheduler> MakeScheduler(std::shared_ptr<Clock> clock = nullptr) {
    SchedulerOptions options;
    options.clock = std::move(clock);
    absl::StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(options);
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return std::move(*scheduler);
  }

  testing::TempDir dir_;
  std::unique_ptr<ModelStore> store_;
};

const ModelSignature kRowSignature{{{"x", torch::kFloat32, {8}}}, {{"y", torch::kFloat32, {3}}}};
constexpr char kRowModel[] = R"(
def forward(self, x: Tensor) -> Tensor:
  return torch.matmul(torch.relu(torch.matmul(x, self.w1)), self.w2)
)";
std::vector<std::pair<std::string, at::Tensor>> RowParameters() {
  return {{"w1", torch::randn({8, 256})}, {"w2", torch::randn({256, 3})}};
}

// The most important test: every caller gets exactly its own rows.
TEST_F(SchedulerTest, EveryCallerGetsItsOwnRowsUnderConcurrency) {
  std::vector<std::shared_ptr<Session>> sessions =
      Load("rows", kRowModel, kRowSignature, RowParameters(), /*count=*/2);
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  BatchingOptions batching;
  batching.max_batch_size = 16;
  ASSERT_TRUE(scheduler->AddModel("rows", sessions, batching).ok());

  constexpr int kThreads = 16;
  constexpr int kRequests = 40;
  std::atomic<int> wrong{0}, failed{0};
  std::atomic<int64_t> items_sent{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRequests; ++r) {
        const int64_t items = 1 + (t + r) % 4;                  // 1 to 4 items per request
        at::Tensor x = torch::randn({items, 8}) + t * 100 + r;  // distinct per caller
        items_sent += items;
        InferenceResult result = scheduler->Infer("rows", {x});
        if (!result.ok()) {
          ++failed;
          continue;
        }
        absl::StatusOr<std::vector<at::Tensor>> direct = sessions[0]->Run({x});
        if (!direct.ok() || !torch::allclose((*result)[0], (*direct)[0], 1e-4, 1e-3)) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);

  ModelStats stats = *scheduler->Stats("rows");
  EXPECT_EQ(stats.requests, kThreads * kRequests);
  EXPECT_EQ(stats.succeeded, kThreads * kRequests);
  EXPECT_EQ(stats.items, items_sent.load());
  EXPECT_LT(stats.batches, stats.requests) << "16 callers should have formed some batches";
  int64_t items_run = 0, batches = 0;
  for (size_t size = 0; size < stats.batch_size_histogram.size(); ++size) {
    items_run += static_cast<int64_t>(size) * stats.batch_size_histogram[size];
    batches += stats.batch_size_histogram[size];
  }
  EXPECT_EQ(items_run, items_sent.load());
  EXPECT_EQ(batches, stats.batches);
  EXPECT_EQ(stats.queue_time.count, stats.requests);
  EXPECT_EQ(stats.compute_time.count, stats.batches);
  EXPECT_EQ(stats.queued_requests, 0);
}

TEST_F(SchedulerTest, OnlyRequestsOfTheSameShapeShareABatch) {
  ModelSignature signature{{{"ids", torch::kInt64, {kAnyDim}}}, {{"n", torch::kInt64, {1}}}};
  std::vector<std::shared_ptr<Session>> sessions =
      Load("len", "def forward(self, ids: Tensor) -> Tensor:\n  return ids.sum(1, keepdim=True)\n",
           signature);
  auto clock = std::make_shared<FakeClock>();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler(clock);
  BatchingOptions batching;
  batching.max_batch_size = 8;
  batching.max_queue_delay = absl::Seconds(1);  // everything waits until the clock moves
  ASSERT_TRUE(scheduler->AddModel("len", sessions, batching).ok());

  Answers answers;
  for (int i = 0; i < 6; ++i) {
    const int64_t length = i % 2 == 0 ? 3 : 5;
    at::Tensor ids = torch::full({1, length}, i + 1, torch::kInt64);
    ASSERT_TRUE(scheduler->Submit("len", {ids}, {}, answers.Callback(i)).ok());
  }
  clock->Advance(absl::Seconds(2));
  answers.WaitFor(6);
  for (int i = 0; i < 6; ++i) {
    const int64_t length = i % 2 == 0 ? 3 : 5;
    InferenceResult result = answers.Get(i);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ((*result)[0].item<int64_t>(), (i + 1) * length) << i;
  }
  ModelStats stats = *scheduler->Stats("len");
  EXPECT_EQ(stats.batches, 2);  // one batch of each length
  EXPECT_EQ(stats.batch_size_histogram[3], 2);
}

// Holds the worker of a one-instance model inside a completion callback, so that a test can
// queue requests behind it deterministically.
class Blocker {
 public:
  InferenceCallback Callback() {
    return [this](InferenceResult) {
      entered_.Notify();
      release_.WaitForNotification();
    };
  }
  void WaitUntilBlocking() { entered_.WaitForNotification(); }
  void Release() { release_.Notify(); }

 private:
  testing::Notification entered_, release_;
};

TEST_F(SchedulerTest, HigherPriorityRunsFirstAndArrivalOrderWithin) {
  std::vector<std::shared_ptr<Session>> sessions = LoadIdentity();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  BatchingOptions batching;
  batching.max_batch_size = 1;
  batching.workers_per_session = 1;  // One worker: the order it takes requests in shows.
  ASSERT_TRUE(scheduler->AddModel("id", sessions, batching).ok());

  Blocker blocker;
  ASSERT_TRUE(scheduler->Submit("id", {torch::zeros({1, 2})}, {}, blocker.Callback()).ok());
  blocker.WaitUntilBlocking();
  Answers answers;
  const std::vector<std::pair<int, int>> submissions = {{1, 0}, {2, 0}, {3, 5}, {4, -1}, {5, 5}};
  for (auto [id, priority] : submissions) {
    RequestOptions options;
    options.priority = priority;
    ASSERT_TRUE(
        scheduler->Submit("id", {torch::full({1, 2}, float(id))}, options, answers.Callback(id))
            .ok());
  }
  blocker.Release();
  answers.WaitFor(submissions.size());
  EXPECT_EQ(answers.order(), (std::vector<int>{3, 5, 1, 2, 4}));
  for (auto [id, priority] : submissions) {
    EXPECT_EQ((*answers.Get(id))[0][0][0].item<float>(), float(id));
  }
}

TEST_F(SchedulerTest, ARequestPastItsDeadlineCompletesWithoutRunning) {
  auto clock = std::make_shared<FakeClock>();
  BatchingOptions batching;
  batching.max_batch_size = 8;
  std::unique_ptr<Scheduler> scheduler = ServeIdentityWaiting(clock, batching);

  Answers answers;
  RequestOptions hurried;
  hurried.timeout = absl::Milliseconds(10);
  RequestOptions patient;
  ASSERT_TRUE(scheduler->Submit("id", {torch::ones({1, 2})}, hurried, answers.Callback(1)).ok());
  ASSERT_TRUE(scheduler->Submit("id", {torch::ones({1, 2})}, patient, answers.Callback(2)).ok());
  RequestOptions absolute;
  absolute.deadline = clock->Now() + absl::Milliseconds(15);
  ASSERT_TRUE(scheduler->Submit("id", {torch::ones({1, 2})}, absolute, answers.Callback(3)).ok());

  clock->Advance(absl::Milliseconds(20));
  answers.WaitFor(2);
  EXPECT_EQ(answers.order(), (std::vector<int>{1, 3}));
  for (int id : {1, 3}) {
    EXPECT_EQ(answers.Get(id).status().code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_THAT(Message(answers.Get(id).status()), HasSubstr("deadline passed after 20.000 ms"));
  }
  EXPECT_EQ(scheduler->Stats("id")->batches, 0);  // nothing ran

  clock->Advance(absl::Seconds(1));  // the queue delay of the patient request ends
  answers.WaitFor(3);
  EXPECT_TRUE(answers.Get(2).ok());
  ModelStats stats = *scheduler->Stats("id");
  EXPECT_EQ(stats.batches, 1);
  EXPECT_EQ(stats.failures[absl::StatusCode::kDeadlineExceeded], 2);

  // A deadline already past is refused by Submit itself.
  RequestOptions past;
  past.deadline = clock->Now() - absl::Seconds(1);
  absl::Status refused = scheduler->Submit("id", {torch::ones({1, 2})}, past, answers.Callback(4));
  EXPECT_EQ(refused.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(SchedulerTest, DefaultTimeoutAppliesToRequestsWithoutADeadline) {
  auto clock = std::make_shared<FakeClock>();
  BatchingOptions batching;
  batching.default_timeout = absl::Milliseconds(5);
  std::unique_ptr<Scheduler> scheduler = ServeIdentityWaiting(clock, batching);
  std::future<InferenceResult> result = scheduler->Submit("id", {torch::ones({1, 2})});
  clock->Advance(absl::Milliseconds(6));
  EXPECT_EQ(result.get().status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(SchedulerTest, AFullQueueRefusesAtOnceWithUnavailable) {
  auto clock = std::make_shared<FakeClock>();
  BatchingOptions batching;
  batching.max_batch_size = 4;
  batching.max_queue_size = 4;
  std::unique_ptr<Scheduler> scheduler = ServeIdentityWaiting(clock, batching);

  Answers answers;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(scheduler->Submit("id", {torch::ones({1, 2})}, {}, answers.Callback(i)).ok());
  }
  EXPECT_EQ(scheduler->Stats("id")->queued_items, 3);
  bool called = false;
  absl::Status full = scheduler->Submit("id", {torch::ones({2, 2})}, {},
                                        [&called](InferenceResult) { called = true; });
  EXPECT_EQ(full.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(full), HasSubstr("queue full (3 items queued, max_queue_size 4)"));
  // One more item fits, fills the batch, and everything runs without the clock moving.
  ASSERT_TRUE(scheduler->Submit("id", {torch::ones({1, 2})}, {}, answers.Callback(3)).ok());
  answers.WaitFor(4);
  EXPECT_FALSE(called);
  ModelStats stats = *scheduler->Stats("id");
  EXPECT_EQ(stats.failures[absl::StatusCode::kUnavailable], 1);
  EXPECT_EQ(stats.batch_size_histogram[4], 1);
  EXPECT_EQ(stats.batch_ends.full, 1) << "the statistics say why the batch was no larger";
}

TEST_F(SchedulerTest, PreferredBatchSizeRunsWithoutWaitingForTheDelay) {
  auto clock = std::make_shared<FakeClock>();
  BatchingOptions batching;
  batching.max_batch_size = 8;
  batching.preferred_batch_sizes = {3};
  std::unique_ptr<Scheduler> scheduler = ServeIdentityWaiting(clock, batching);
  Answers answers;
  ASSERT_TRUE(scheduler->Submit("id", {torch::ones({1, 2})}, {}, answers.Callback(1)).ok());
  ASSERT_TRUE(scheduler->Submit("id", {torch::ones({2, 2})}, {}, answers.Callback(2)).ok());
  answers.WaitFor(2);  // 1 + 2 = 3 items: preferred, so no waiting for the clock
  EXPECT_EQ(scheduler->Stats("id")->batch_size_histogram[3], 1);
}

TEST_F(SchedulerTest, ValidationHappensAtSubmit) {
  std::vector<std::shared_ptr<Session>> sessions = LoadIdentity();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  BatchingOptions batching;
  batching.max_batch_size = 4;
  ASSERT_TRUE(scheduler->AddModel("id", sessions, batching).ok());
  bool called = false;
  auto never = [&called](InferenceResult) { called = true; };

  absl::Status s = scheduler->Submit("id", {torch::ones({1, 3})}, {}, never);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("input 'x': expected shape [batch, 2], got [1, 3]"));
  s = scheduler->Submit("id", {torch::ones({5, 2})}, {}, never);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("5 items, more than max_batch_size 4"));
  s = scheduler->Submit("id", {torch::ones({1, 2}, torch::kInt64)}, {}, never);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // Layouts and devices a model cannot take are refused here too, never inside a batch.
  s = scheduler->Submit("id", {torch::ones({1, 2}).to_sparse()}, {}, never);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("input 'x' has layout Sparse; expected a dense"));
  s = scheduler->Submit("id", {torch::empty({1, 2}, torch::device(torch::kMeta))}, {}, never);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("input 'x' is on device meta"));
  s = scheduler->Submit("other", {torch::ones({1, 2})}, {}, never);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), HasSubstr("(served: id)"));
  EXPECT_EQ(scheduler->Submit("other", {torch::ones({1, 2})}).get().status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(called);
  EXPECT_EQ(scheduler->Stats("id")->failures[absl::StatusCode::kInvalidArgument], 5);
  // The model keeps serving good requests.
  EXPECT_TRUE(scheduler->Infer("id", {torch::ones({2, 2})}).ok());
}

TEST_F(SchedulerTest, AddModelRefusesBadArguments) {
  std::vector<std::shared_ptr<Session>> sessions = LoadIdentity();
  std::vector<std::shared_ptr<Session>> other =
      Load("rows", kRowModel, kRowSignature, RowParameters());
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  EXPECT_EQ(scheduler->AddModel("id", {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler->AddModel("id", {nullptr}).code(), absl::StatusCode::kInvalidArgument);
  absl::Status mixed = scheduler->AddModel("id", {sessions[0], other[0]});
  EXPECT_EQ(mixed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(mixed), HasSubstr("another signature"));
  BatchingOptions bad;
  bad.max_batch_size = 0;
  EXPECT_EQ(scheduler->AddModel("id", sessions, bad).code(), absl::StatusCode::kInvalidArgument);
  bad = BatchingOptions();
  bad.preferred_batch_sizes = {512};
  EXPECT_EQ(scheduler->AddModel("id", sessions, bad).code(), absl::StatusCode::kInvalidArgument);
  bad = BatchingOptions();
  bad.workers_per_session = 1000;
  EXPECT_EQ(scheduler->AddModel("id", sessions, bad).code(), absl::StatusCode::kInvalidArgument);
  bad = BatchingOptions();
  bad.max_batch_size = bad.max_queue_size = std::numeric_limits<int64_t>::max();  // "no limit"
  EXPECT_EQ(scheduler->AddModel("id", sessions, bad).code(), absl::StatusCode::kInvalidArgument);
  bad = BatchingOptions();
  bad.max_queue_size = 2;
  EXPECT_EQ(scheduler->AddModel("id", sessions, bad).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(scheduler->AddModel("id", sessions).ok());
  EXPECT_EQ(scheduler->AddModel("id", sessions).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(scheduler->Models(), std::vector<std::string>{"id"});
  EXPECT_EQ(Scheduler::Create({-1, nullptr}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, AModelThatThrowsOnOneRequestFailsOnlyThatRequest) {
  std::vector<std::shared_ptr<Session>> sessions =
      Load("picky",
           "def forward(self, x: Tensor) -> Tensor:\n"
           "  assert bool(torch.all(x >= 0)), \"negative input\"\n"
           "  return x * 2.0\n",
           kIdentitySignature);
  auto clock = std::make_shared<FakeClock>();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler(clock);
  BatchingOptions batching;
  batching.max_batch_size = 3;
  batching.max_queue_delay = absl::Seconds(1);
  ASSERT_TRUE(scheduler->AddModel("picky", sessions, batching).ok());

  Answers answers;
  ASSERT_TRUE(scheduler->Submit("picky", {torch::ones({1, 2})}, {}, answers.Callback(1)).ok());
  ASSERT_TRUE(scheduler->Submit("picky", {-torch::ones({1, 2})}, {}, answers.Callback(2)).ok());
  ASSERT_TRUE(scheduler->Submit("picky", {torch::ones({1, 2})}, {}, answers.Callback(3)).ok());
  answers.WaitFor(3);  // a full batch of 3: runs at once, fails, then each runs alone
  EXPECT_EQ(answers.Get(2).status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(answers.Get(2).status()), HasSubstr("negative input"));
  for (int id : {1, 3}) {
    ASSERT_TRUE(answers.Get(id).ok()) << id << ": " << answers.Get(id).status();
    EXPECT_TRUE(torch::equal((*answers.Get(id))[0], torch::full({1, 2}, 2.0f)));
  }
  // The next batch is fine.
  std::future<InferenceResult> good = scheduler->Submit("picky", {torch::ones({1, 2})});
  clock->Advance(absl::Seconds(2));
  InferenceResult result = good.get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(torch::equal((*result)[0], torch::full({1, 2}, 2.0f)));
  ModelStats stats = *scheduler->Stats("picky");
  EXPECT_EQ(stats.failures[absl::StatusCode::kInternal], 1);
  EXPECT_EQ(stats.succeeded, 3);
  EXPECT_EQ(stats.batches_retried_alone, 1);
}

TEST_F(SchedulerTest, ACallbackThatThrowsDoesNotStopTheWorker) {
  std::vector<std::shared_ptr<Session>> sessions = LoadIdentity();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("id", sessions).ok());
  testing::Notification thrown;
  ASSERT_TRUE(scheduler
                  ->Submit("id", {torch::ones({1, 2})}, {},
                           [&thrown](InferenceResult) {
                             thrown.Notify();
                             throw std::runtime_error("careless callback");
                           })
                  .ok());
  thrown.WaitForNotification();
  EXPECT_TRUE(scheduler->Infer("id", {torch::ones({1, 2})}).ok());
}

TEST_F(SchedulerTest, SeveralInstancesServeConcurrently) {
  // Two versions with the same signature, told apart by their outputs: x + 1 and x + 2.
  std::vector<std::shared_ptr<Session>> instances = Load(
      "plus", "def forward(self, x: Tensor) -> Tensor:\n  return x + 1.0\n", kIdentitySignature);
  fs::path file = dir_.path() / "plus2.pt";
  testing::SaveScript(file, "def forward(self, x: Tensor) -> Tensor:\n  return x + 2.0\n");
  ASSERT_TRUE(store_->Publish("plus", file, kIdentitySignature).ok());
  instances.push_back(std::move(*Session::Create(*store_, "plus")));
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  BatchingOptions one_worker_each;
  one_worker_each.workers_per_session = 1;
  ASSERT_TRUE(scheduler->AddModel("plus", instances, one_worker_each).ok());

  // While one instance's worker is held in a callback, the other serves.
  testing::Notification entered, release;
  float first = 0;
  ASSERT_TRUE(scheduler
                  ->Submit("plus", {torch::zeros({1, 2})}, {},
                           [&](InferenceResult result) {
                             first = (*result)[0][0][0].item<float>();
                             entered.Notify();
                             release.WaitForNotification();
                           })
                  .ok());
  entered.WaitForNotification();
  // Through the queue (Infer could run it on this thread, on either instance).
  InferenceResult second = scheduler->Submit("plus", {torch::zeros({1, 2})}).get();
  release.Notify();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE((*second)[0][0][0].item<float>(), first) << "the second request waited for the first";
}

TEST_F(SchedulerTest, DefaultsRunSeveralBatchesOfOneSessionAtOnce) {
  std::vector<std::shared_ptr<Session>> sessions = LoadIdentity();
  SchedulerOptions options;
  options.cpu_cores = 3;
  std::unique_ptr<Scheduler> scheduler = std::move(*Scheduler::Create(options));
  ASSERT_TRUE(scheduler->AddModel("id", sessions).ok());
  // One worker per core of the budget (intra_op_threads 1), and on a machine with several
  // cores one more that runs a batch on all of them when nothing else runs.
  const int machine = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(scheduler->Stats("id")->workers, machine > 1 ? 4 : 3);

  // While the first request's worker is held in its callback, others serve.
  Blocker blocker;
  ASSERT_TRUE(scheduler->Submit("id", {torch::zeros({1, 2})}, {}, blocker.Callback()).ok());
  blocker.WaitUntilBlocking();
  for (int i = 0; i < 3; ++i) {
    InferenceResult result = scheduler->Submit("id", {torch::ones({1, 2})}).get();
    EXPECT_TRUE(result.ok()) << result.status();
  }
  blocker.Release();

  BatchingOptions one;
  one.workers_per_session = 1;
  ASSERT_TRUE(scheduler->AddModel("one", sessions, one).ok());
  EXPECT_EQ(scheduler->Stats("one")->workers, 1);
}

TEST_F(SchedulerTest, BlockingCallersShareBatchesAndALoneCallerStillRunsAtOnce) {
  // About 2-10 ms per execution whatever the batch, as a model far from its batch limit is.
  std::vector<std::shared_ptr<Session>> sessions = LoadSlow(20);
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("slow", sessions).ok());
  constexpr int kCallers = 8, kCalls = 15;
  std::vector<std::thread> callers;
  std::atomic<int> failed{0};
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i)
        failed += !scheduler->Infer("slow", {torch::ones({1, 2})}).ok();
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(failed, 0);
  ModelStats stats = *scheduler->Stats("slow");
  // Eight callers each waiting for its answer: the policy learns that about eight are in
  // flight, and batches gather them instead of splitting them (without it, a free worker
  // takes the one or two requests back first).
  const double mean_batch = static_cast<double>(stats.items) / static_cast<double>(stats.batches);
  EXPECT_GE(mean_batch, kCallers / 2.0) << stats.batches << " batches; sizes "
                                        << ::testing::PrintToString(stats.batch_size_histogram);

  // The load is gone: after at most one wait in vain, lone requests run at once on the calling
  // thread again. (Once in about 20 runs none of three did: the callers had been served by
  // narrow batches, the last two stragglers left the expectation at 2, a narrow share of 1
  // made every lone batch full, and no wait ever tested it. BatchQueueTest's width test now
  // checks that case.)
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scheduler->Infer("slow", {torch::ones({1, 2})}).ok());
  const ModelStats after = *scheduler->Stats("slow");
  EXPECT_GE(after.run_on_caller - stats.run_on_caller, 2)
      << "expected in flight " << after.expected_in_flight << ", batch limit "
      << after.batch_size_limit << ", wide batches " << after.wide_batches;
}

TEST_F(SchedulerTest, ACallbackThatBlocksHoldsUpOnlyItsOwnBatch) {
  // Callers in step, served by several workers, one of them wide. While one request's callback
  // blocks its worker (and the answers of its batch mates, all the callers in step here), a
  // new request is served by another worker. (The wide worker's next batch is left to it while
  // it answers, but only for a grace of 10 ms: without that limit, a blocked wide worker would
  // hold every new request until its callback returned.)
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("slow", LoadSlow(20)).ok());
  constexpr int kCallers = 8;
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      while (!stop) failed += !scheduler->Infer("slow", {torch::ones({1, 2})}).ok();
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // In step by now.
  // What a request waits under this load on this machine now (busy or not): the bound below
  // is a multiple of it, and at most half the 10 s a blocked callback holds its batch up.
  std::vector<std::chrono::steady_clock::duration> typical;
  for (int i = 0; i < 5; ++i) {
    const auto sent = std::chrono::steady_clock::now();
    EXPECT_TRUE(scheduler->Infer("slow", {torch::ones({1, 2})}).ok());
    typical.push_back(std::chrono::steady_clock::now() - sent);
  }
  std::sort(typical.begin(), typical.end());
  const auto bound = std::clamp<std::chrono::steady_clock::duration>(
      10 * typical[2], std::chrono::milliseconds(500), std::chrono::seconds(5));
  // Twice, as the first time may land on a narrow worker.
  for (int round = 0; round < 2; ++round) {
    std::promise<void> started, resume;
    std::shared_future<void> resumed = resume.get_future().share();
    ASSERT_TRUE(scheduler
                    ->Submit("slow", {torch::ones({1, 2})}, {},
                             [&started, resumed](InferenceResult) {
                               started.set_value();
                               resumed.wait_for(std::chrono::seconds(10));
                             })
                    .ok());
    started.get_future().wait();
    const auto sent = std::chrono::steady_clock::now();
    EXPECT_TRUE(scheduler->Infer("slow", {torch::ones({1, 2})}).ok());
    const auto waited = std::chrono::steady_clock::now() - sent;
    resume.set_value();
    EXPECT_LT(waited, bound) << "round " << round
                             << ": a new request waited for a blocked callback (typical wait "
                             << std::chrono::duration<double, std::milli>(typical[2]).count()
                             << " ms)";
  }
  stop = true;
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(failed, 0);
}

TEST_F(SchedulerTest, InferRunsALoneRequestOnTheCallingThread) {
  std::vector<std::shared_ptr<Session>> sessions = LoadIdentity();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("id", sessions).ok());
  InferenceResult result = scheduler->Infer("id", {torch::full({3, 2}, 7.0f)});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(torch::equal((*result)[0], torch::full({3, 2}, 7.0f)));
  ModelStats stats = *scheduler->Stats("id");
  EXPECT_EQ(stats.run_on_caller, 1);
  EXPECT_EQ(stats.requests, 1);
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.batches, 1);
  EXPECT_EQ(stats.batch_size_histogram[3], 1);
  EXPECT_EQ(stats.batch_ends.queue_empty, 1);
  // Bad input is refused before anything runs, as with Submit.
  EXPECT_EQ(scheduler->Infer("id", {torch::ones({1, 5})}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, SubmitMayRunAQuickIdleModelOnTheCallingThread) {
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("id", LoadIdentity()).ok());
  ASSERT_TRUE(scheduler->AddModel("slow", LoadSlow(20)).ok());
  RequestOptions here;
  here.run_on_calling_thread_when_idle = true;
  // Where the callback ran, and whether it had run by the time Submit returned.
  const auto submit = [&](const std::string& model) {
    auto ran_on = std::make_shared<std::promise<std::thread::id>>();
    std::future<std::thread::id> thread = ran_on->get_future();
    EXPECT_TRUE(scheduler
                    ->Submit(model, {torch::ones({1, 2})}, here,
                             [ran_on](InferenceResult result) {
                               EXPECT_TRUE(result.ok()) << result.status();
                               ran_on->set_value(std::this_thread::get_id());
                             })
                    .ok());
    const bool answered_already =
        thread.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    return std::make_pair(answered_already, thread.get());
  };
  // The first requests of each model teach its execution time (unknown: not run here). The
  // learned time is a moving average: a worker's first, cold runs fade out over a few more.
  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(submit("id").second, std::this_thread::get_id());
    EXPECT_NE(submit("slow").second, std::this_thread::get_id());
  }
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(scheduler->Infer("id", {torch::ones({1, 2})}).ok());
  const int64_t run_on_caller = scheduler->Stats("id")->run_on_caller;
  // The identity model is idle and quick: answered on this thread, within Submit.
  const auto [answered, thread] = submit("id");
  EXPECT_TRUE(answered);
  EXPECT_EQ(thread, std::this_thread::get_id());
  EXPECT_EQ(scheduler->Stats("id")->run_on_caller, run_on_caller + 1);
  // A model slower than 1 ms goes to its worker as usual, whatever the option.
  EXPECT_NE(submit("slow").second, std::this_thread::get_id());
  EXPECT_EQ(scheduler->Stats("slow")->run_on_caller, 0);
  // Without the option, Submit never runs the model itself.
  auto ran_on = std::make_shared<std::promise<std::thread::id>>();
  ASSERT_TRUE(
      scheduler
          ->Submit("id", {torch::ones({1, 2})}, {},
                   [ran_on](InferenceResult) { ran_on->set_value(std::this_thread::get_id()); })
          .ok());
  EXPECT_NE(ran_on->get_future().get(), std::this_thread::get_id());
}

TEST_F(SchedulerTest, InferFromACallbackIsRefusedInsteadOfDeadlocking) {
  std::vector<std::shared_ptr<Session>> sessions = LoadIdentity();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("id", sessions).ok());
  std::promise<absl::Status> nested;
  ASSERT_TRUE(
      scheduler
          ->Submit("id", {torch::ones({1, 2})}, {},
                   [&](InferenceResult) {
                     nested.set_value(scheduler->Infer("id", {torch::ones({1, 2})}).status());
                   })
          .ok());
  absl::Status status = nested.get_future().get();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(status), HasSubstr("use Submit"));
  EXPECT_EQ(scheduler->Submit("id", {torch::ones({1, 2})}, {}, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, InferWaitsForCompanyWhenTheModelAsksForAQueueDelay) {
  auto clock = std::make_shared<FakeClock>();
  BatchingOptions batching;
  std::unique_ptr<Scheduler> scheduler = ServeIdentityWaiting(clock, batching);
  InferenceResult result;
  std::thread caller([&] { result = scheduler->Infer("id", {torch::ones({1, 2})}); });
  while (scheduler->Stats("id")->queued_requests == 0) std::this_thread::yield();
  clock->Advance(absl::Seconds(2));
  caller.join();
  EXPECT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(scheduler->Stats("id")->run_on_caller, 0);
}

TEST_F(SchedulerTest, RemoveModelUnderLoadAnswersEveryAcceptedRequest) {
  std::vector<std::shared_ptr<Session>> sessions =
      Load("rows", kRowModel, kRowSignature, RowParameters(), 2);
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("rows", sessions).ok());

  std::atomic<int> accepted{0}, answered_ok{0}, answered_error{0}, refused{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      while (!stop) {
        absl::Status s = scheduler->Submit(
            "rows", {torch::randn({2, 8})}, {},
            [&](InferenceResult r) { (r.ok() ? answered_ok : answered_error)++; });
        if (s.ok()) {
          ++accepted;
        } else {
          ++refused;
          EXPECT_TRUE(absl::IsNotFound(s) || absl::IsUnavailable(s)) << s;
          return;
        }
      }
    });
  }
  while (accepted < 200) std::this_thread::yield();
  ASSERT_TRUE(scheduler->RemoveModel("rows").ok());
  // RemoveModel drained: every request accepted before it returned has been answered, and
  // successfully. (Nothing can be accepted after it: the model is gone.)
  const int answered_at_removal = answered_ok + answered_error;
  stop = true;
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(accepted.load(), answered_at_removal);
  EXPECT_EQ(answered_error.load(), 0);
  EXPECT_EQ(scheduler->Submit("rows", {torch::randn({2, 8})}, {}, [](InferenceResult) {}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler->RemoveModel("rows").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler->Stats("rows").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, DestructionUnderLoadAnswersEveryRequestExactlyOnce) {
  std::vector<std::shared_ptr<Session>> sessions =
      Load("rows", kRowModel, kRowSignature, RowParameters());
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("rows", sessions).ok());
  constexpr int kRequests = 300;
  std::vector<std::atomic<int>> answers(kRequests);
  std::atomic<int> cancelled{0}, succeeded{0};
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(scheduler
                    ->Submit("rows", {torch::randn({1, 8})}, {},
                             [&, i](InferenceResult r) {
                               ++answers[i];
                               if (r.ok()) {
                                 ++succeeded;
                               } else if (absl::IsCancelled(r.status())) {
                                 ++cancelled;
                               }
                             })
                    .ok());
  }
  scheduler.reset();
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(answers[i].load(), 1) << "request " << i;
  EXPECT_EQ(succeeded + cancelled, kRequests);
}

TEST_F(SchedulerTest, LearnsExecutionTimeAndRefusesRequestsThatCannotMakeTheirDeadline) {
  // About 20-60 ms per execution on this project's machines, whatever the batch.
  std::vector<std::shared_ptr<Session>> sessions = LoadSlow(60);
  std::unique_ptr<Scheduler> scheduler = MakeScheduler();
  ASSERT_TRUE(scheduler->AddModel("slow", sessions).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(scheduler->Infer("slow", {torch::ones({1, 2})}).ok());
  const absl::Duration typical = scheduler->Stats("slow")->compute_time.p50;
  ASSERT_GT(typical, absl::Milliseconds(2)) << "the fixture is too fast to test with";

  RequestOptions hurried;
  hurried.timeout = typical / 10;
  InferenceResult result = scheduler->Infer("slow", {torch::ones({1, 2})}, hurried);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Message(result.status()), HasSubstr("would miss its deadline"));
  EXPECT_EQ(scheduler->Stats("slow")->batches, 3);  // it did not run

  RequestOptions relaxed;
  relaxed.timeout = absl::Seconds(30);
  EXPECT_TRUE(scheduler->Infer("slow", {torch::ones({1, 2})}, relaxed).ok());
}

TEST_F(SchedulerTest, NonBatchableModelsRunOneRequestAtATime) {
  ModelSignature signature{{{"m", torch::kFloat32, {kAnyDim, 2}}},
                           {{"t", torch::kFloat32, {2, kAnyDim}}},
                           /*batchable=*/false};
  std::vector<std::shared_ptr<Session>> sessions =
      Load("t", "def forward(self, m: Tensor) -> Tensor:\n  return m.t()\n", signature);
  auto clock = std::make_shared<FakeClock>();
  std::unique_ptr<Scheduler> scheduler = MakeScheduler(clock);
  ASSERT_TRUE(scheduler->AddModel("t", sessions).ok());
  Answers answers;
  std::vector<at::Tensor> inputs = {torch::randn({3, 2}), torch::randn({5, 2})};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(scheduler->Submit("t", {inputs[i]}, {}, answers.Callback(i)).ok());
  }
  answers.WaitFor(2);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(torch::equal((*answers.Get(i))[0], inputs[i].t()));
  EXPECT_EQ(scheduler->Stats("t")->batches, 2);
}

TEST_F(SchedulerTest, ConcurrentReplaceModelSwapsInstancesUnderLoadWithoutFailures) {
  // Three versions of a model that answers with its version number.
  std::vector<std::shared_ptr<Session>> versions;
  for (int v = 1; v <= 3; ++v) {
    fs::path file = dir_.path() / ("tagged-" + std::to_string(v) + ".pt");
    testing::SaveTaggedModel(file, static_cast<float>(v));
    ASSERT_TRUE(store_->Publish("tagged", file, testing::TaggedSignature()).ok());
    absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, "tagged", [&] {
      SessionOptions options;
      options.version = std::to_string(v);
      return options;
    }());
    ASSERT_TRUE(session.ok()) << session.status();
    versions.push_back(std::move(*session));
  }
  auto scheduler = Scheduler::Create();
  ASSERT_TRUE(scheduler.ok());
  ASSERT_TRUE((*scheduler)->AddModel("tagged", {versions[0], versions[0]}).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> answers{0}, failures{0}, went_back{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      float newest = 0;
      for (int i = 0; !stop.load(); ++i) {
        at::Tensor x = torch::ones({1 + (i + c) % 3, 2});
        InferenceResult y = i % 2 == 0 ? (*scheduler)->Infer("tagged", {x})
                                       : (*scheduler)->Submit("tagged", {x}).get();
        if (!y.ok() || y->front().size(0) != x.size(0)) {
          ++failures;
          continue;
        }
        const float tag = y->front()[0][0].item<float>();
        if (!torch::equal(y->front(), torch::full_like(x, tag))) ++failures;
        if (tag < newest) ++went_back;
        newest = std::max(newest, tag);
        ++answers;
      }
    });
  }
  auto wait_for_answers = [&](int n) {
    const absl::Time give_up = absl::Now() + absl::Minutes(1);
    while (answers.load() < n && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  };
  wait_for_answers(50);
  ASSERT_TRUE((*scheduler)->ReplaceModel("tagged", {versions[1]}).ok());
  wait_for_answers(answers.load() + 50);
  ASSERT_TRUE((*scheduler)->ReplaceModel("tagged", {versions[2], versions[2]}).ok());
  wait_for_answers(answers.load() + 50);
  stop = true;
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(went_back.load(), 0);
  EXPECT_EQ((*scheduler)->Infer("tagged", {torch::ones({1, 2})})->front()[0][0].item<float>(), 3);

  EXPECT_TRUE(absl::IsNotFound((*scheduler)->ReplaceModel("nope", {versions[0]})));
  EXPECT_TRUE(absl::IsInvalidArgument((*scheduler)->ReplaceModel("tagged", {})));
}

}  // namespace
}  // namespace maas
