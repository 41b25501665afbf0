// The learned execution time per batch size, for deadlines and waits.
#include "batching/execution_time_model.h"
#include "gtest/gtest.h"

namespace maas {
namespace {

TEST(ExecutionTimeModelTest, PredictsAndRecoversFromASlowOutlier) {
  internal::ExecutionTimeModel model(/*max_batch_size=*/8);
  EXPECT_FALSE(model.Predict(1).has_value());  // nothing measured yet
  model.Record(1, absl::Milliseconds(1));
  EXPECT_FALSE(model.Predict(1).has_value());  // one sample is not enough
  model.Record(1, absl::Milliseconds(1));
  model.Record(4, absl::Milliseconds(3));
  model.Record(4, absl::Milliseconds(3));
  EXPECT_EQ(*model.Predict(1), absl::Milliseconds(1));
  EXPECT_NEAR(absl::ToDoubleMilliseconds(*model.Predict(2)), 1.0 + 2.0 / 3, 1e-6);  // between
  EXPECT_EQ(*model.Predict(8), absl::Milliseconds(3));  // beyond: the largest, erring low

  // One 30 ms outlier lifts the estimate above a 5 ms budget; refusals (Relax) bring it back.
  model.Record(1, absl::Milliseconds(30));
  EXPECT_GT(*model.Predict(1), absl::Milliseconds(5));
  int refusals = 0;
  while (*model.Predict(1) > absl::Milliseconds(5)) {
    model.Relax();
    ++refusals;
  }
  EXPECT_LE(refusals, 5);
}

}  // namespace
}  // namespace maas
