// The JSON layer under the store's files: parse errors with positions, limits, big integers.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "util/json.h"

namespace maas {
namespace {

using internal::Json;
using ::testing::HasSubstr;

TEST(JsonTest, ParsesWhatItDumpsKeepingMemberOrder) {
  Json value;
  value["zeta"] = "quote \" backslash \\ tab \t newline \n \x01";
  value["alpha"] = Json::array({1, 2, 3});
  value["big"] = int64_t{-9007199254740993};  // beyond double precision
  value["nested"] = {{"a", Json::array({Json::object()})}};
  const std::string text = internal::DumpJson(value);
  EXPECT_LT(text.find("zeta"), text.find("alpha")) << "insertion order, not sorted";
  EXPECT_EQ(text.back(), '\n');
  absl::StatusOr<Json> parsed = internal::ParseJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, value);
  EXPECT_EQ((*parsed)["big"].get<int64_t>(), -9007199254740993);
}

TEST(JsonTest, RejectsMalformedTextWithItsPositionAndNeverThrows) {
  for (const char* text : {"", "{", "{\"a\" 1}", "[1,]", "[1 2]", "\"abc", "01x", "tru",
                           "\"\\ud800\"", "\"\\q\"", "\"\xff\""}) {
    absl::StatusOr<Json> parsed = internal::ParseJson(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("line 1, column")) << text;
  }
  absl::StatusOr<Json> duplicate = internal::ParseJson(R"({"a": {"b": 1, "b": 2}})");
  EXPECT_THAT(std::string(duplicate.status().message()), HasSubstr("duplicate member \"b\""));
  EXPECT_TRUE(internal::ParseJson(R"({"a": {"b": 1}, "b": {"b": 2}})").ok())
      << "the same name in different objects is fine";
  absl::StatusOr<Json> multiline = internal::ParseJson("{\n  \"a\": 1,\n  \"b\": ?\n}");
  EXPECT_THAT(std::string(multiline.status().message()), HasSubstr("line 3, column 8"));
}

TEST(JsonTest, RefusesDeepNestingBeforeParsing) {
  EXPECT_TRUE(internal::ParseJson(std::string(internal::kMaxJsonDepth, '[') +
                                  std::string(internal::kMaxJsonDepth, ']'))
                  .ok());
  std::string deep(10'000'000, '[');
  absl::StatusOr<Json> parsed = internal::ParseJson(deep);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("nesting deeper than 64"));
  // Brackets inside strings do not count.
  EXPECT_TRUE(internal::ParseJson("[\"" + std::string(1000, '[') + "\"]").ok());
}

TEST(JsonTest, IntegersBeyond64BitsAreNotInt64) {
  EXPECT_TRUE(internal::IsInt64(*internal::ParseJson("9223372036854775807")));
  EXPECT_FALSE(internal::IsInt64(*internal::ParseJson("9223372036854775808")));
  EXPECT_FALSE(internal::IsInt64(*internal::ParseJson("1.5")));
  EXPECT_EQ(internal::JsonTypeName(*internal::ParseJson("18446744073709551615")),
            "an integer beyond 64 bits");
}

}  // namespace
}  // namespace maas
