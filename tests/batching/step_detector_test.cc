// StepDetector's rules, one epoch of arrivals at a time, in made-up time.
#include "batching/step_detector.h"

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using State = StepDetector::State;

const absl::Time kStart = absl::FromUnixSeconds(1000);
absl::Time At(int64_t micros) { return kStart + absl::Microseconds(micros); }
constexpr int kEpoch = StepDetector::kArrivalsPerVerdict;

// One epoch of callers in step: every 1 ms an answer, and 8 arrivals 10-80 us after it.
void InStepEpoch(StepDetector& step, int64_t* now_us) {
  for (int arrivals = 0; arrivals < kEpoch;) {
    step.Answered(At(*now_us));
    for (int i = 1; i <= 8 && arrivals < kEpoch; ++i, ++arrivals) {
      step.Arrived(At(*now_us + 10 * i));
    }
    *now_us += 1000;
  }
}

// One epoch of independent arrivals: every 125 us, with an answer every 1 ms.
void IndependentEpoch(StepDetector& step, int64_t* now_us) {
  for (int i = 0; i < kEpoch; ++i) {
    if (i % 8 == 0) step.Answered(At(*now_us));
    step.Arrived(At(*now_us + 60));
    *now_us += 125;
  }
}

TEST(StepDetectorTest, CallersCountAsInStepUntilTheFirstEpochEnds) {
  StepDetector step;
  EXPECT_EQ(step.state(), State::kUnjudged);
  EXPECT_TRUE(step.InStep());
  int64_t now = 0;
  for (int i = 0; i < kEpoch - 1; ++i) step.Arrived(At(now += 125));  // No answers at all.
  EXPECT_EQ(step.state(), State::kUnjudged);
  step.Arrived(At(now += 125));
  EXPECT_EQ(step.state(), State::kIndependent);  // A whole epoch without an answer.
}

TEST(StepDetectorTest, ArrivalsInBurstsAfterAnswersAreInStep) {
  StepDetector step;
  int64_t now = 0;
  InStepEpoch(step, &now);
  EXPECT_EQ(step.state(), State::kInStep);
  EXPECT_EQ(step.last_answer(), At(now - 1000));
}

TEST(StepDetectorTest, ArrivalsSpreadEvenlyAreIndependent) {
  StepDetector step;
  int64_t now = 0;
  IndependentEpoch(step, &now);
  EXPECT_EQ(step.state(), State::kIndependent);
  EXPECT_FALSE(step.InStep());
}

TEST(StepDetectorTest, EachEpochIsJudgedOnItsOwnArrivals) {
  StepDetector step;
  int64_t now = 0;
  InStepEpoch(step, &now);
  IndependentEpoch(step, &now);
  EXPECT_EQ(step.state(), State::kIndependent);
  InStepEpoch(step, &now);
  EXPECT_EQ(step.state(), State::kInStep);
}

TEST(StepDetectorTest, AnswersTooFrequentToCompareWithGiveIndependent) {
  StepDetector step;
  int64_t now = 0;
  // An answer every 150 us: echo windows (200 us) cover all the time; nothing to compare with.
  for (int i = 0; i < kEpoch; ++i) {
    step.Answered(At(now));
    step.Arrived(At(now + 10));
    now += 150;
  }
  EXPECT_EQ(step.state(), State::kIndependent);
}

TEST(StepDetectorTest, AnEpochOfSimultaneousArrivalsGivesNoVerdict) {
  StepDetector step;
  int64_t now = 0;
  InStepEpoch(step, &now);
  for (int i = 0; i < kEpoch; ++i) step.Arrived(At(now));
  EXPECT_EQ(step.state(), State::kInStep);
}

TEST(StepDetectorTest, AnAnswerOutOfOrderCountsOnce) {
  StepDetector step;
  step.Answered(At(1000));
  step.Answered(At(500));  // A batch that ended earlier but reported later.
  EXPECT_EQ(step.last_answer(), At(1000));
}

}  // namespace
}  // namespace maas::internal
