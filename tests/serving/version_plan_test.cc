// The version plans on their own: pure functions of versions' states and a target, checked
// without loading anything.
#include "serving/version_plan.h"

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

Target Serve(std::vector<int64_t> versions, std::vector<std::pair<int64_t, double>> split) {
  Target target;
  target.versions = std::move(versions);
  target.split = Split(std::move(split));
  return target;
}

VersionFacts InState(ModelState state) {
  VersionFacts facts;
  facts.state = state;
  return facts;
}

std::vector<int64_t> Loads(const std::vector<LoadStep>& steps) {
  std::vector<int64_t> loads;
  for (const LoadStep& step : steps) {
    if (step.skip.ok()) loads.push_back(step.version);
  }
  return loads;
}

TEST(PlanLoadsTest, LoadsWhatIsNewAndKeepsWhatIsReady) {
  std::map<int64_t, VersionFacts> versions = {{1, InState(ModelState::kReady)}};
  const Target target = Serve({1, 2}, {{2, 1.0}});
  EXPECT_THAT(Loads(PlanLoads(versions, target, "model 'm'")), ElementsAre(2));
  // Idempotent: once 2 is ready there is nothing to do.
  versions[2] = InState(ModelState::kReady);
  EXPECT_THAT(PlanLoads(versions, target, "model 'm'"), IsEmpty());
}

TEST(PlanLoadsTest, ReloadsStaleVersionsButNotOnesWhoseReloadFailed) {
  std::map<int64_t, VersionFacts> versions = {{1, InState(ModelState::kReady)},
                                              {2, InState(ModelState::kReady)}};
  versions[1].stale = true;
  versions[2].stale = true;
  versions[2].stale_error = "out of memory";
  std::vector<LoadStep> steps = PlanLoads(versions, Serve({1, 2}, {{1, 1.0}}), "model 'm'");
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].version, 1);
  EXPECT_TRUE(steps[0].skip.ok());
  EXPECT_EQ(steps[1].version, 2);
  EXPECT_EQ(steps[1].skip.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(steps[1].skip.message()),
              HasSubstr("model 'm' version 2 serves with its previous options"));
}

TEST(PlanLoadsTest, AFailedVersionIsNotRetriedUnlessItFailedForAPassingReason) {
  std::map<int64_t, VersionFacts> versions = {{1, InState(ModelState::kFailed)},
                                              {2, InState(ModelState::kFailed)},
                                              {3, InState(ModelState::kUnloaded)}};
  versions[1].reason = "hash mismatch";
  versions[2].retry = true;  // The memory budget refused it.
  std::vector<LoadStep> steps = PlanLoads(versions, Serve({1, 2, 3}, {{3, 1.0}}), "model 'm'");
  EXPECT_THAT(Loads(steps), ElementsAre(2, 3));
  ASSERT_FALSE(steps[0].skip.ok());
  EXPECT_THAT(std::string(steps[0].skip.message()), HasSubstr("failed to load earlier: hash"));
}

TEST(PlanRoutesTest, UnnamedRequestsGoToTheTargetWhenItIsReady) {
  RoutePlan plan = PlanRoutes({1, 2}, Serve({2}, {{2, 1.0}}), Split({{1, 1.0}}));
  EXPECT_THAT(plan.serve, ElementsAre(2)) << "1 retires";
  EXPECT_THAT(plan.split.slots(), ElementsAre(Pair(2, 1.0)));
}

TEST(PlanRoutesTest, AFailedReplacementLeavesTheOldVersionServingItsSlot) {
  // The policy moved from 1 to 2, but 2 did not load.
  RoutePlan plan = PlanRoutes({1}, Serve({2}, {{2, 1.0}}), Split({{1, 1.0}}));
  EXPECT_THAT(plan.serve, ElementsAre(1));
  EXPECT_THAT(plan.split.slots(), ElementsAre(Pair(1, 1.0)));
}

TEST(PlanRoutesTest, ACanarySplitKeepsTheStableSlotWhenTheCanaryFails) {
  const Target canary = Serve({1, 3}, {{1, 0.8}, {3, 0.2}});
  RoutePlan both = PlanRoutes({1, 3}, canary, {});
  EXPECT_THAT(both.serve, ElementsAre(1, 3));
  ASSERT_EQ(both.split.size(), 2u);
  EXPECT_EQ(both.split.slots()[0].first, 1);
  EXPECT_DOUBLE_EQ(both.split.slots()[0].second, 0.8);
  EXPECT_EQ(both.split.slots()[1].first, 3);
  EXPECT_DOUBLE_EQ(both.split.slots()[1].second, 0.2);
  EXPECT_EQ(both.split.Pick(0.79), 1);
  EXPECT_EQ(both.split.Pick(0.81), 3);
  EXPECT_DOUBLE_EQ(both.split.ShareOf(3), 0.2);

  // The canary moved from 2 (ready, held the slot) to 3, which failed: 2 keeps its slot.
  RoutePlan kept = PlanRoutes({1, 2}, canary, Split({{1, 0.8}, {2, 0.2}}));
  EXPECT_THAT(kept.serve, ElementsAre(1, 2));
  ASSERT_EQ(kept.split.size(), 2u);
  EXPECT_EQ(kept.split.slots()[1].first, 2);

  // No previous split of the same shape: the failed slot is dropped and shares renormalized.
  RoutePlan alone = PlanRoutes({1}, canary, {});
  EXPECT_THAT(alone.split.slots(), ElementsAre(Pair(1, 1.0)));
}

TEST(PlanRoutesTest, WithNoSlotReadyTheNewestReadyTargetVersionTakesAll) {
  RoutePlan plan = PlanRoutes({1, 2}, Serve({1, 2, 3}, {{3, 1.0}}), Split({{4, 1.0}}));
  EXPECT_THAT(plan.serve, ElementsAre(1, 2));
  EXPECT_THAT(plan.split.slots(), ElementsAre(Pair(2, 1.0)));
}

TEST(PlanRoutesTest, NothingReadyMeansNoRoutes) {
  RoutePlan plan = PlanRoutes({}, Serve({1}, {{1, 1.0}}), {});
  EXPECT_THAT(plan.serve, IsEmpty());
  EXPECT_TRUE(plan.split.empty());
}

const absl::Time kLongAgo = absl::FromUnixSeconds(1000);

TEST(PlanEvictionTest, NothingIsUnloadedWhenTheRequestFits) {
  const std::vector<ModelMemory> models = {{"a", 40, true, kLongAgo}, {"new", 0, true, kLongAgo}};
  EXPECT_THAT(*PlanEviction(models, "new", 60, 100), IsEmpty());
}

TEST(PlanEvictionTest, IdleModelsGoLeastRecentlyUsedFirstUntilItFits) {
  const std::vector<ModelMemory> models = {{"recent", 30, true, kLongAgo + absl::Seconds(20)},
                                           {"oldest", 30, true, kLongAgo},
                                           {"busy", 30, false, kLongAgo},
                                           {"middle", 10, true, kLongAgo + absl::Seconds(10)},
                                           {"new", 0, true, kLongAgo}};
  // 100 in use; 40 more needs 40 freed: the oldest (30), then the middle one (10).
  EXPECT_THAT(*PlanEviction(models, "new", 40, 100), ElementsAre("oldest", "middle"));
}

TEST(PlanEvictionTest, NothingIsUnloadedWhenEvenAllIdleModelsWouldNotMakeRoom) {
  const std::vector<ModelMemory> models = {
      {"idle", 30, true, kLongAgo}, {"busy", 60, false, kLongAgo}, {"me", 10, true, kLongAgo}};
  absl::StatusOr<std::vector<std::string>> plan = PlanEviction(models, "me", 50, 100);
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(plan.status().message()),
              HasSubstr("unloading every idle model would free only 30 (busy models: busy)"));
}

}  // namespace
}  // namespace maas::internal
