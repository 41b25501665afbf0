// PlanWorkers: the executor's worker threads from its instances and cores.
#include "batching/worker_plan.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

int Narrow(const std::vector<WorkerSpec>& workers) {
  return static_cast<int>(
      std::count_if(workers.begin(), workers.end(), [](const WorkerSpec& w) { return !w.wide; }));
}

TEST(WorkerPlanTest, OneWorkerPerCoreAndAWideOneForACpuSession) {
  const std::vector<WorkerSpec> workers = PlanWorkers({1}, 0, /*cores=*/4, /*machine=*/4);
  ASSERT_EQ(workers.size(), 5u);
  EXPECT_EQ(Narrow(workers), 4);
  EXPECT_TRUE(workers.back().wide);
  EXPECT_EQ(workers.back().threads, 4);
}

TEST(WorkerPlanTest, CpuSessionsShareTheCoresAndEachGetsOne) {
  EXPECT_EQ(Narrow(PlanWorkers({1, 1}, 0, 4, 4)), 4);     // Two each.
  EXPECT_EQ(Narrow(PlanWorkers({2}, 0, 4, 4)), 2);        // Two threads per batch.
  EXPECT_EQ(Narrow(PlanWorkers({1, 1, 1}, 0, 2, 2)), 3);  // At least one each.
}

TEST(WorkerPlanTest, TheWideWorkerOnlyWhenItHasMoreCoresThanANarrowOne) {
  const std::vector<WorkerSpec> one_core = PlanWorkers({1}, 0, 1, 8);
  EXPECT_EQ(Narrow(one_core), static_cast<int>(one_core.size()));
  const std::vector<WorkerSpec> capped = PlanWorkers({1}, 0, 8, /*machine=*/2);
  EXPECT_EQ(capped.back().threads, 2);  // The machine has fewer cores than the budget.
}

TEST(WorkerPlanTest, TwoWorkersPerGpuSessionAndNoWideOne) {
  const std::vector<WorkerSpec> workers = PlanWorkers({0, 0}, 0, 4, 4);
  ASSERT_EQ(workers.size(), 4u);
  EXPECT_EQ(Narrow(workers), 4);
  EXPECT_EQ(workers[2].instance, 1u);
  EXPECT_EQ(workers[2].threads, 0);
}

TEST(WorkerPlanTest, AFixedCountPerSessionHasNoWideWorker) {
  const std::vector<WorkerSpec> workers = PlanWorkers({1, 0}, 3, 4, 4);
  ASSERT_EQ(workers.size(), 6u);
  EXPECT_EQ(Narrow(workers), 6);
  EXPECT_EQ(workers[3].instance, 1u);
}

}  // namespace
}  // namespace maas::internal
