// BatchLimitProber's transitions, one rule per test: each feeds the few full batches a rule
// needs and checks the state and limit it leads to.
#include "batching/batch_limit_prober.h"

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using State = BatchLimitProber::State;
constexpr int kSamples = BatchLimitProber::kProbeSamples;
// Enough in flight for two batches of 256 side by side.
constexpr BatchLimitProber::Load kHeavy{1024, 2};

// Runs `count` full batches at the current limit, each taking `per_item` per item.
void RunAtLimit(BatchLimitProber& prober, int count, absl::Duration per_item,
                BatchLimitProber::Load load = kHeavy) {
  for (int i = 0; i < count; ++i) {
    prober.Ran(prober.limit(), per_item * prober.limit(), load);
  }
}

TEST(BatchLimitProberTest, StartsAt32OrTheMaximumIfSmaller) {
  EXPECT_EQ(BatchLimitProber(256).limit(), 32);
  EXPECT_EQ(BatchLimitProber(8).limit(), 8);
  EXPECT_EQ(BatchLimitProber(256).state(), State::kBeforeProbeUp);
}

TEST(BatchLimitProberTest, OnlyFullBatchesAtTheLimitMoveIt) {
  BatchLimitProber prober(256);
  for (int i = 0; i < 20; ++i) prober.Ran(31, absl::Milliseconds(1), kHeavy);
  EXPECT_EQ(prober.state(), State::kBeforeProbeUp);
  EXPECT_EQ(prober.limit(), 32);
}

TEST(BatchLimitProberTest, ProbesDoubleOnceTheLimitIsMeasured) {
  BatchLimitProber prober(256);
  RunAtLimit(prober, kSamples - 1, absl::Microseconds(10));
  EXPECT_EQ(prober.state(), State::kBeforeProbeUp);
  RunAtLimit(prober, 1, absl::Microseconds(10));
  EXPECT_EQ(prober.state(), State::kProbingUp);
  EXPECT_EQ(prober.limit(), 64);
}

TEST(BatchLimitProberTest, ProbesHalfWhenTheLoadCouldNotFillDouble) {
  BatchLimitProber prober(256);
  // 100 in flight over 2 batches side by side: 2 x 64 would not fill.
  RunAtLimit(prober, kSamples, absl::Microseconds(10), {100, 2});
  EXPECT_EQ(prober.state(), State::kProbingDown);
  EXPECT_EQ(prober.limit(), 16);
  // Nor beyond the maximum.
  BatchLimitProber at_max(32);
  RunAtLimit(at_max, kSamples, absl::Microseconds(10));
  EXPECT_EQ(at_max.state(), State::kProbingDown);
}

TEST(BatchLimitProberTest, AProbeUpStaysOnlyWhenMeasurablyFasterPerItem) {
  BatchLimitProber won(256);
  RunAtLimit(won, kSamples, absl::Microseconds(10));
  RunAtLimit(won, kSamples, absl::Microseconds(9));  // 64 at 10% less per item.
  EXPECT_EQ(won.state(), State::kBeforeProbeUp);
  EXPECT_EQ(won.limit(), 64);

  BatchLimitProber lost(256);
  RunAtLimit(lost, kSamples, absl::Microseconds(10));
  RunAtLimit(lost, kSamples, absl::Microseconds(9.95));  // 0.5%: noise, not a gain.
  EXPECT_EQ(lost.state(), State::kBeforeProbeDown);
  EXPECT_EQ(lost.limit(), 32);
}

TEST(BatchLimitProberTest, AProbeDownStaysWhenNoSlowerPerItemElseTheLimitSettles) {
  BatchLimitProber won(256);
  RunAtLimit(won, kSamples, absl::Microseconds(10), {40, 1});  // Probes down to 16.
  RunAtLimit(won, kSamples, absl::Microseconds(10), {40, 1});  // Same per item: keep 16.
  EXPECT_EQ(won.state(), State::kBeforeProbeDown);
  EXPECT_EQ(won.limit(), 16);

  BatchLimitProber lost(256);
  RunAtLimit(lost, kSamples, absl::Microseconds(10), {40, 1});
  RunAtLimit(lost, kSamples, absl::Microseconds(20), {40, 1});  // Half as fast per item.
  EXPECT_EQ(lost.state(), State::kSettled);
  EXPECT_EQ(lost.limit(), 32);
}

// Runs full batches at the limit until the state changes (at most 100); returns how many ran.
int RunUntilTheStateChanges(BatchLimitProber& prober, absl::Duration per_item) {
  const State before = prober.state();
  int batches = 0;
  while (prober.state() == before && batches < 100) {
    prober.Ran(prober.limit(), per_item * prober.limit(), kHeavy);
    ++batches;
  }
  return batches;
}

TEST(BatchLimitProberTest, ASettledLimitProbesAgainAfterFullBatchesThatDoubleEachTime) {
  BatchLimitProber prober(256);
  // A model that is fastest per item at 32: 64 is no faster, 16 is slower.
  const auto settle = [&prober] {
    RunUntilTheStateChanges(prober, absl::Microseconds(10));  // Measures 32, probes 64,
    RunUntilTheStateChanges(prober, absl::Microseconds(10));  // no faster: back to 32,
    RunUntilTheStateChanges(prober, absl::Microseconds(10));  // probes 16,
    RunUntilTheStateChanges(prober, absl::Microseconds(20));  // slower: settles at 32.
  };
  const auto full_batches_until_probe = [&prober] {
    int batches = 0;
    while (prober.state() == State::kSettled && batches < 5000) {
      prober.Ran(32, absl::Microseconds(320), kHeavy);
      ++batches;
    }
    return batches;
  };
  settle();
  ASSERT_EQ(prober.state(), State::kSettled);
  ASSERT_EQ(prober.limit(), 32);
  EXPECT_EQ(full_batches_until_probe(), BatchLimitProber::kFirstBatchesBeforeProbingAgain);
  EXPECT_EQ(prober.state(), State::kProbingUp);
  // It loses again: settles, and waits twice as long.
  RunUntilTheStateChanges(prober, absl::Microseconds(10));
  RunUntilTheStateChanges(prober, absl::Microseconds(10));
  RunUntilTheStateChanges(prober, absl::Microseconds(20));
  ASSERT_EQ(prober.state(), State::kSettled);
  EXPECT_EQ(full_batches_until_probe(), 2 * BatchLimitProber::kFirstBatchesBeforeProbingAgain);
}

TEST(BatchLimitProberTest, AProbeIsJudgedOnFreshMeasurementsOfItsSize) {
  BatchLimitProber prober(256);
  // Batches of 64 measured long ago, slow (a cold cache, other load). They do not move the
  // limit: 32 is not measured yet.
  for (int i = 0; i < 10; ++i) prober.Ran(64, absl::Milliseconds(5), kHeavy);
  ASSERT_EQ(prober.state(), State::kBeforeProbeUp);
  RunAtLimit(prober, kSamples, absl::Microseconds(10));
  ASSERT_EQ(prober.state(), State::kProbingUp);
  RunAtLimit(prober, kSamples, absl::Microseconds(9));  // Today 64 is faster per item.
  EXPECT_EQ(prober.state(), State::kBeforeProbeUp);
  EXPECT_EQ(prober.limit(), 64);
}

TEST(BatchLimitProberTest, ABatchTooLargeHalvesTheLimitBelowItAndSettles) {
  BatchLimitProber prober(256);
  RunAtLimit(prober, kSamples, absl::Microseconds(10));
  ASSERT_EQ(prober.limit(), 64);
  prober.TooLarge(64);
  EXPECT_EQ(prober.limit(), 32);
  EXPECT_EQ(prober.state(), State::kSettled);
  prober.TooLarge(1);  // A single item cannot be split.
  EXPECT_EQ(prober.limit(), 32);
}

}  // namespace
}  // namespace maas::internal
