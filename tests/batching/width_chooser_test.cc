// WidthChooser's transitions, one rule per test, with two narrow workers sharing the eight items
// of callers in step (four each) and made-up execution times.
#include "batching/width_chooser.h"

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using State = WidthChooser::State;
constexpr int64_t kInStep = 8;

class WidthChooserTest : public ::testing::Test {
 protected:
  // Ends `count` batches 1 ms apart.
  void EndBatches(int count, int64_t in_step_items = kInStep) {
    for (int i = 0; i < count; ++i) {
      now_ += absl::Milliseconds(1);
      chooser_.BatchEnded(now_, in_step_items);
    }
  }
  // Records `count` runs: wide batches of all eight items, or narrow ones of four.
  void RanWide(absl::Duration elapsed, int count = 2) {
    for (int i = 0; i < count; ++i) chooser_.Ran(kInStep, elapsed, /*wide=*/true);
  }
  void RanNarrow(absl::Duration elapsed, int count = 2) {
    for (int i = 0; i < count; ++i) chooser_.Ran(kInStep / 2, elapsed, /*wide=*/false);
  }
  // From the start: wide measured at `wide`, then a trial of narrow measuring `narrow`.
  void TryNarrowAgainst(absl::Duration wide, absl::Duration narrow) {
    RanWide(wide);
    EndBatches(WidthChooser::kMinBatchesBetweenTrials);
    ASSERT_EQ(chooser_.state(), State::kTryingNarrow);
    RanNarrow(narrow);
    EndBatches(WidthChooser::kTrialBatches);
  }

  WidthChooser chooser_{/*narrow_workers=*/2, /*max_batch_size=*/64};
  absl::Time now_ = absl::FromUnixSeconds(1000);
};

TEST_F(WidthChooserTest, StartsWideAndTriesNarrowAfterAFewBatches) {
  EXPECT_EQ(chooser_.state(), State::kWide);
  EXPECT_TRUE(chooser_.wide());
  EXPECT_EQ(chooser_.NarrowShare(kInStep), 4);
  EXPECT_EQ(chooser_.NarrowShare(7), 4);  // Rounded up: no item left over.
  EndBatches(WidthChooser::kMinBatchesBetweenTrials - 1);
  EXPECT_EQ(chooser_.state(), State::kWide);
  EndBatches(1);
  EXPECT_EQ(chooser_.state(), State::kTryingNarrow);
  EXPECT_FALSE(chooser_.wide());
}

TEST_F(WidthChooserTest, NarrowIsChosenWhenItsShareIsMeasuredFaster) {
  TryNarrowAgainst(absl::Milliseconds(4), absl::Milliseconds(2));
  EXPECT_EQ(chooser_.state(), State::kNarrow);
}

TEST_F(WidthChooserTest, NarrowMustWinByAMargin) {
  TryNarrowAgainst(absl::Milliseconds(4), absl::Microseconds(3900));  // 2.5% faster.
  EXPECT_EQ(chooser_.state(), State::kWide);
}

TEST_F(WidthChooserTest, ATrialThatMeasuresNothingLeavesWide) {
  // Narrow measured fast long ago; the trial forgets that and measures nothing new.
  RanNarrow(absl::Milliseconds(1), 5);
  TryNarrowAgainst(absl::Milliseconds(4), absl::Milliseconds(1));
  ASSERT_EQ(chooser_.state(), State::kNarrow);  // Measured within the trial: narrow.
  // The next trial (of wide) measures nothing: no comparison, wide.
  EndBatches(WidthChooser::kMinBatchesBetweenTrials);
  ASSERT_EQ(chooser_.state(), State::kTryingWide);
  now_ += WidthChooser::kTrialTime;
  EndBatches(WidthChooser::kTrialBatches);
  EXPECT_EQ(chooser_.state(), State::kWide);
}

TEST_F(WidthChooserTest, ATrialOfWideLastsItsTimeAsWellAsItsBatches) {
  TryNarrowAgainst(absl::Milliseconds(4), absl::Milliseconds(2));
  ASSERT_EQ(chooser_.state(), State::kNarrow);
  EndBatches(WidthChooser::kMinBatchesBetweenTrials);  // A changed verdict: soon again.
  ASSERT_EQ(chooser_.state(), State::kTryingWide);
  RanWide(absl::Milliseconds(3));           // Faster than two narrow batches of 2 ms? No: 3 > 2.1.
  EndBatches(WidthChooser::kTrialBatches);  // 6 ms: within kTrialTime.
  EXPECT_EQ(chooser_.state(), State::kTryingWide);
  now_ += WidthChooser::kTrialTime;
  EndBatches(1);
  EXPECT_EQ(chooser_.state(), State::kNarrow);
}

TEST_F(WidthChooserTest, AVerdictThatStandsDoublesTheBatchesBeforeTheNextTrial) {
  TryNarrowAgainst(absl::Milliseconds(2), absl::Milliseconds(4));
  ASSERT_EQ(chooser_.state(), State::kWide);
  EndBatches(2 * WidthChooser::kMinBatchesBetweenTrials - 1);
  EXPECT_EQ(chooser_.state(), State::kWide);
  EndBatches(1);
  EXPECT_EQ(chooser_.state(), State::kTryingNarrow);
}

TEST_F(WidthChooserTest, OtherCallersBringTheNextTrialSooner) {
  TryNarrowAgainst(absl::Milliseconds(2), absl::Milliseconds(4));
  ASSERT_EQ(chooser_.state(), State::kWide);
  // Twice as many in step now: the verdict for eight may not hold for sixteen.
  EndBatches(WidthChooser::kMinBatchesBetweenTrials, 2 * kInStep);
  EXPECT_EQ(chooser_.state(), State::kTryingNarrow);
}

}  // namespace
}  // namespace maas::internal
