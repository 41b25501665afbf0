// Model names, aliases and version selectors.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/names.h"

namespace maas {
namespace {

using ::testing::HasSubstr;

TEST(NamesTest, AcceptsAndRefusesModelNames) {
  for (const char* good : {"mlp", "ResNet-18", "a", "a.b_c-d", "latest", "123"}) {
    EXPECT_TRUE(internal::ValidateModelName(good).ok()) << good;
  }
  for (std::string bad : {std::string(), std::string(129, 'a'), std::string(".hidden"),
                          std::string(".."), std::string("a/b"), std::string("a b"),
                          std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    absl::Status s = internal::ValidateModelName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(internal::ValidateModelName(std::string(128, 'a')).ok());
}

TEST(NamesTest, RefusesAliasesThatLookLikeVersions) {
  for (const char* bad : {"3", "007", "-1", "+2", "1.5", "1e3", "latest", "LATEST"}) {
    absl::Status s = internal::ValidateAlias(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (const char* good : {"stable", "canary", "v2", "prod-eu", "3a"}) {
    EXPECT_TRUE(internal::ValidateAlias(good).ok()) << good;
  }
}

TEST(NamesTest, ParsesVersionSelectors) {
  EXPECT_TRUE(
      std::holds_alternative<internal::LatestVersion>(*internal::ParseVersionSelector("latest")));
  EXPECT_EQ(std::get<int64_t>(*internal::ParseVersionSelector("42")), 42);
  EXPECT_EQ(std::get<std::string>(*internal::ParseVersionSelector("stable")), "stable");
  EXPECT_EQ(std::get<int64_t>(*internal::ParseVersionSelector("1000000000000000")),
            internal::kMaxVersion);
  // Strict: no whitespace on either side, no sign, no leading zero, nothing past kMaxVersion.
  for (const char* bad : {"0", "", "99999999999999999999", "1x", "a/b", "-1", "1 ", " 1", "1\n",
                          "1\r\n", "latest\n", "+1", "01", "1000000000000001"}) {
    EXPECT_EQ(internal::ParseVersionSelector(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace maas
