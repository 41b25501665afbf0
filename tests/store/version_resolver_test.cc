// ResolveVersion: one meaning of a version selector for the store and for serving.
#include "store/version_resolver.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using ::testing::HasSubstr;

const std::vector<int64_t> kVersions = {1, 2, 5};
const std::map<std::string, int64_t, std::less<>> kAliases = {{"stable", 2}, {"gone", 4}};

absl::StatusOr<int64_t> Served(std::string_view selector) {
  return ResolveVersion(selector, {"model 'm'", /*serving=*/true, kVersions, kAliases});
}
absl::StatusOr<int64_t> Published(std::string_view selector) {
  return ResolveVersion(selector, {"model 'm'", /*serving=*/false, kVersions, kAliases});
}
std::string Message(const absl::StatusOr<int64_t>& resolved) {
  return std::string(resolved.status().message());
}

TEST(VersionResolverTest, NumbersAliasesAndLatestAmongTheVersionsGiven) {
  EXPECT_EQ(*Served("1"), 1);
  EXPECT_EQ(*Served("stable"), 2);
  EXPECT_EQ(*Served("latest"), 5);  // The highest given: for serving, the newest ready.
  EXPECT_EQ(*Published("latest"), 5);
}

TEST(VersionResolverTest, WhatIsNotThereIsNotFoundAndTheMessageListsWhatIs) {
  EXPECT_THAT(Message(Served("3")),
              HasSubstr("model 'm' does not serve version 3 (serving: 1, 2, 5)"));
  EXPECT_THAT(Message(Published("3")), HasSubstr("model 'm' has no version 3 (versions: 1, 2, 5)"));
  EXPECT_THAT(Message(Served("gone")), HasSubstr("version 4 ('gone')"));
  EXPECT_THAT(Message(Served("nightly")),
              HasSubstr("model 'm' has no alias 'nightly' (aliases: gone, stable)"));
  EXPECT_EQ(Served("3").status().code(), absl::StatusCode::kNotFound);
  const std::vector<int64_t> none;
  EXPECT_THAT(Message(ResolveVersion("latest", {"model 'm'", true, none, kAliases})),
              HasSubstr("model 'm' serves no version"));
  EXPECT_THAT(Message(ResolveVersion("latest", {"model 'm'", false, none, kAliases})),
              HasSubstr("model 'm' has no versions"));
}

TEST(VersionResolverTest, AMalformedSelectorIsInvalid) {
  for (const char* bad : {"-1", "0", "1.5", "a b"}) {
    EXPECT_EQ(Served(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace maas::internal
