// Routing on its own: which version's queue a request goes to, for each way of naming a version,
// and what a request is told when nothing can take it. The queues are real (one per version,
// over one loaded session) but never started: routing only chooses among them.
#include "serving/routes.h"

#include <memory>
#include <string>
#include <vector>

#include "batching/core_budget.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "maas/clock.h"
#include "maas/model_store.h"
#include "maas/session.h"
#include "test_util.h"

namespace maas::internal {
namespace {

using ::testing::HasSubstr;

class RoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<ModelStore>> store = ModelStore::Open(dir_.path() / "store");
    ASSERT_TRUE(store.ok()) << store.status();
    const auto file = dir_.path() / "linear.pt";
    testing::SaveLinearModel(file);
    ASSERT_TRUE((*store)->Publish("m", file, testing::LinearSignature()).ok());
    absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(**store, "m");
    ASSERT_TRUE(session.ok()) << session.status();
    std::shared_ptr<Session> shared = *std::move(session);
    Routes::Serving serving;
    for (int64_t version : {1, 2, 3}) {
      serving.executors[version] = std::make_shared<ModelExecutor>(
          "model 'm'", version, std::vector<std::shared_ptr<Session>>{shared}, BatchingOptions{},
          RealClock(), &cores_);
    }
    serving.split = Split({{2, 0.9}, {3, 0.1}});
    routes_.state = std::move(serving);
    routes_.aliases = {{"stable", 2}, {"canary", 3}, {"old", 7}};
  }

  // The version whose queue `route` chose, or 0.
  int64_t Chosen(const Route& route) const {
    for (const auto& [version, queue] : Serving().executors) {
      if (queue == route.queue) return version;
    }
    return 0;
  }

  Route To(std::string_view version, double draw = 0.5) const {
    return RouteRequest(
        routes_, version, [draw] { return draw; }, "model 'm'");
  }

  Routes::Serving& Serving() { return std::get<Routes::Serving>(routes_.state); }
  const Routes::Serving& Serving() const { return std::get<Routes::Serving>(routes_.state); }

  testing::TempDir dir_;
  CoreBudget cores_{1};
  Routes routes_;
};

TEST_F(RoutesTest, AVersionByNumberAliasOrLatestGoesToThatVersion) {
  EXPECT_EQ(Chosen(To("1")), 1);
  EXPECT_EQ(Chosen(To("3")), 3);
  EXPECT_EQ(Chosen(To("stable")), 2);
  EXPECT_EQ(Chosen(To("canary")), 3);
  EXPECT_EQ(Chosen(To("latest")), 3);  // The newest version served.
}

TEST_F(RoutesTest, UnnamedRequestsFollowTheSplitByTheDraw) {
  EXPECT_EQ(Chosen(To("", 0.0)), 2);
  EXPECT_EQ(Chosen(To("", 0.8999)), 2);
  EXPECT_EQ(Chosen(To("", 0.9)), 3);
  EXPECT_EQ(Chosen(To("", 0.99999)), 3);
  // One version in the split: no draw is asked for.
  Serving().split = Split({{1, 1.0}});
  bool drawn = false;
  Route route = RouteRequest(
      routes_, "",
      [&] {
        drawn = true;
        return 0.7;
      },
      "model 'm'");
  EXPECT_EQ(Chosen(route), 1);
  EXPECT_FALSE(drawn);
}

TEST_F(RoutesTest, WhatIsNotServedIsNotFoundAndSaysWhatIs) {
  Route route = To("5");
  EXPECT_EQ(route.queue, nullptr);
  EXPECT_EQ(route.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(route.status.message()),
              HasSubstr("model 'm' does not serve version 5 (serving: 1, 2, 3)"));
  // An alias to a version not served names both.
  route = To("old");
  EXPECT_EQ(route.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(route.status.message()), HasSubstr("version 7 ('old')"));
  route = To("nightly");
  EXPECT_EQ(route.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(route.status.message()),
              HasSubstr("model 'm' has no alias 'nightly' (aliases: canary, old, stable)"));
}

TEST_F(RoutesTest, AMalformedVersionIsInvalid) {
  for (const char* bad : {"-1", "0", "1.5", "a b"}) {
    Route route = To(bad);
    EXPECT_EQ(route.queue, nullptr) << bad;
    EXPECT_EQ(route.status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(route.status.message()), HasSubstr("model 'm'")) << bad;
  }
}

TEST_F(RoutesTest, UnloadedModelsWaitAndUnavailableOnesSayWhy) {
  Routes unloaded;
  unloaded.state = Routes::Unloaded{};
  EXPECT_FALSE(Serves(unloaded, 1));
  Route route = RouteRequest(
      unloaded, "1", [] { return 0.0; }, "model 'm'");
  EXPECT_TRUE(route.wait);
  EXPECT_EQ(route.queue, nullptr);

  const absl::Status why = absl::UnavailableError("model 'm' has no ready version (1 failed)");
  Routes none;
  none.state = Routes::Unavailable{why};
  for (const char* version : {"", "1", "latest"}) {
    route = RouteRequest(
        none, version, [] { return 0.0; }, "model 'm'");
    EXPECT_FALSE(route.wait) << version;
    EXPECT_EQ(route.status, why) << version;
  }
  EXPECT_TRUE(Serves(routes_, 3));
  EXPECT_FALSE(Serves(routes_, 7));
}

TEST(UniformDrawTest, IsFixedBySeedUniformAndInRange) {
  EXPECT_EQ(UniformDraw(42, 7), UniformDraw(42, 7));
  EXPECT_NE(UniformDraw(42, 7), UniformDraw(43, 7));
  constexpr int kDraws = 100000;
  int below_tenth = 0;
  double sum = 0;
  for (int n = 0; n < kDraws; ++n) {
    const double u = UniformDraw(1, n);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    below_tenth += u < 0.1;
    sum += u;
  }
  // A 90/10 split gets its shares: within 5 standard deviations of 10% and of the mean 0.5.
  EXPECT_NEAR(below_tenth / double{kDraws}, 0.1, 5 * 0.00095);
  EXPECT_NEAR(sum / kDraws, 0.5, 5 * 0.00092);
}

}  // namespace
}  // namespace maas::internal
