// UTF-8 checks for text that reaches logs and answers.
#include <string>

#include "gtest/gtest.h"
#include "util/utf8.h"

namespace maas {
namespace {

TEST(Utf8Test, ValidSequencesPassAndEveryInvalidByteBecomesOneReplacement) {
  using internal::Utf8SequenceLength;
  using internal::ValidUtf8;
  const std::string r(internal::kReplacementCharacter);
  EXPECT_EQ(ValidUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(ValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");  // 2, 3 and 4 bytes.
  EXPECT_EQ(ValidUtf8("a\xFF\xFE" "b"), "a" + r + r + "b");  // Never a lead byte.
  EXPECT_EQ(ValidUtf8("\xC3"), r);                            // Cut short at the end.
  EXPECT_EQ(ValidUtf8("\xC3("), r + "(");                     // Cut short by ASCII.
  EXPECT_EQ(ValidUtf8("\xC0\xAF"), r + r);                    // Overlong '/'.
  EXPECT_EQ(ValidUtf8("\xE0\x80\xAF"), r + r + r);            // Overlong, 3 bytes.
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80"), r + r + r);            // A UTF-16 surrogate.
  EXPECT_EQ(ValidUtf8("\xF4\x90\x80\x80"), r + r + r + r);    // Above U+10FFFF.
  EXPECT_EQ(ValidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(Utf8SequenceLength(""), 0u);
  EXPECT_EQ(Utf8SequenceLength("\xEF\xBF\xBD"), 3u);
  EXPECT_EQ(Utf8SequenceLength("\x80"), 0u);  // A continuation byte alone.
}

}  // namespace
}  // namespace maas
