#include "serving/refusal_counts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace maas::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

TEST(RefusalCountsTest, CountsErrorsByCodeAndPassesThemOn) {
  RefusalCounts counts;
  EXPECT_TRUE(counts.Count(absl::OkStatus()).ok());
  EXPECT_THAT(counts.Snapshot(), IsEmpty());
  const absl::Status not_found = absl::NotFoundError("model 'm' does not serve version 9");
  EXPECT_EQ(counts.Count(not_found), not_found);
  EXPECT_TRUE(absl::IsNotFound(counts.Count(absl::NotFoundError("again"))));
  EXPECT_TRUE(absl::IsUnavailable(counts.Count(absl::UnavailableError("waiting room full"))));
  EXPECT_THAT(counts.Snapshot(), ElementsAre(Pair(absl::StatusCode::kNotFound, 2),
                                             Pair(absl::StatusCode::kUnavailable, 1)));
}

}  // namespace
}  // namespace maas::internal
