// The core budget on its own: workers take cores before they run and never more than there are.
#include "batching/core_budget.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

TEST(CoreBudgetTest, TakesAndGivesBackCores) {
  CoreBudget budget(4);
  EXPECT_EQ(budget.total(), 4);
  EXPECT_TRUE(budget.AllFree());
  EXPECT_TRUE(budget.TryAcquire(3));
  EXPECT_EQ(budget.Available(), 1);
  EXPECT_FALSE(budget.AllFree());
  EXPECT_FALSE(budget.TryAcquire(2));  // Refused whole: nothing taken.
  EXPECT_EQ(budget.Available(), 1);
  budget.Acquire(1);
  EXPECT_EQ(budget.Available(), 0);
  budget.Release(3);
  budget.Release(1);
  EXPECT_TRUE(budget.AllFree());
}

TEST(CoreBudgetTest, AskingForMoreThanThereAreTakesThemAll) {
  // A session wider than the budget still runs, alone.
  CoreBudget budget(2);
  EXPECT_TRUE(budget.TryAcquire(8));
  EXPECT_EQ(budget.Available(), 0);
  budget.Release(8);
  EXPECT_EQ(budget.Available(), 2);
  budget.Acquire(8);
  budget.Release(8);
  EXPECT_TRUE(budget.AllFree());
}

TEST(CoreBudgetTest, WorkersTogetherNeverHoldMoreThanTheTotal) {
  CoreBudget budget(3);
  std::atomic<int> held{0}, most{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 6; ++w) {
    workers.emplace_back([&, w] {
      const int n = 1 + w % 2;
      for (int i = 0; i < 2000; ++i) {
        budget.Acquire(n);
        const int now = held.fetch_add(n) + n;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        held.fetch_sub(n);
        budget.Release(n);
      }
    });
  }
  for (std::thread& t : workers) t.join();
  EXPECT_LE(most.load(), 3);
  EXPECT_TRUE(budget.AllFree());
}

TEST(CoreBudgetTest, AcquireWaitsForARelease) {
  CoreBudget budget(1);
  budget.Acquire(1);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    budget.Acquire(1);
    got = true;
    budget.Release(1);
  });
  // Not a timing bound: the waiter cannot get the core before it is given back.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(got.load());
  budget.Release(1);
  waiter.join();
  EXPECT_TRUE(got.load());
}

}  // namespace
}  // namespace maas::internal
