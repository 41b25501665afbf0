// The wait for company: InFlightEstimate's two rules and CompanyWaitUntil's decision.
#include "batching/company_wait.h"

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);
absl::Time At(int64_t micros) { return kStart + absl::Microseconds(micros); }

TEST(InFlightEstimateTest, RisesToThePeakAndFallsOnlyWhenAWaitWasInVain) {
  InFlightEstimate in_flight;
  EXPECT_EQ(in_flight.value(), 1);
  in_flight.Arrived(5);
  in_flight.Arrived(3);  // Fewer now: the usual load is still 5.
  EXPECT_EQ(in_flight.items(), 5);
  in_flight.WaitedInVain(2);
  EXPECT_EQ(in_flight.items(), 2);
  in_flight.WaitedInVain(0);  // Never below a lone caller.
  EXPECT_EQ(in_flight.items(), 1);
}

// Four of eight expected items are here; a batch of eight takes 4 ms.
CompanyWaitInput HalfHere() {
  CompanyWaitInput input;
  input.batch_items = 4;
  input.expected_items = 8;
  input.in_step = true;
  input.predicted = absl::Milliseconds(4);
  input.oldest = At(100);
  input.last_answer = At(0);
  input.running_until = absl::InfinitePast();
  return input;
}

TEST(CompanyWaitTest, WaitsAQuarterOfTheExpectedBatchAfterTheOldestArrival) {
  EXPECT_EQ(CompanyWaitUntil(HalfHere()), At(1100));
}

TEST(CompanyWaitTest, WaitsForTheAnswersOfTheRunningBatchToComeBack) {
  CompanyWaitInput input = HalfHere();
  input.running_until = At(3000);  // Some of the expected callers wait for that batch.
  EXPECT_EQ(CompanyWaitUntil(input), At(4000));
  input.running_until = absl::InfinitePast();
  input.last_answer = At(2000);  // Just answered: its callers' requests are on their way.
  EXPECT_EQ(CompanyWaitUntil(input), At(3000));
}

TEST(CompanyWaitTest, NeverWaitsPastWhatTheEarliestDeadlineAllows) {
  CompanyWaitInput input = HalfHere();
  input.earliest_deadline = At(4500);  // Must start by 0.5 ms to finish by 4.5 ms.
  EXPECT_EQ(CompanyWaitUntil(input), At(500));
}

TEST(CompanyWaitTest, DoesNotWaitWithoutAReason) {
  CompanyWaitInput input = HalfHere();
  input.batch_items = 8;  // All expected items are here.
  EXPECT_EQ(CompanyWaitUntil(input), absl::InfinitePast());
  input = HalfHere();
  input.in_step = false;  // Independent arrivals: waiting only adds latency.
  EXPECT_EQ(CompanyWaitUntil(input), absl::InfinitePast());
  input = HalfHere();
  input.predicted.reset();  // Nothing learned: no basis for how long.
  EXPECT_EQ(CompanyWaitUntil(input), absl::InfinitePast());
}

}  // namespace
}  // namespace maas::internal
