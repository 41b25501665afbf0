// Text from outside (model names in URLs, files of a store) made safe for what requires UTF-8:
// JSON, Prometheus' exposition format, a terminal.
#ifndef MAAS_LIB_UTF8_H_
#define MAAS_LIB_UTF8_H_

#include <string>
#include <string_view>

namespace maas::internal {

// Calls append(piece) with `text` cut into pieces of valid UTF-8, each invalid byte replaced by
// U+FFFD (as WHATWG's decoder does): the result is valid UTF-8 whatever the bytes.
template <typename Append>
void ForEachValidUtf8(std::string_view text, Append append);

// `text` with each byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string ValidUtf8(std::string_view text);

// The length of the valid UTF-8 sequence at the start of `text` (1-4), or 0 when its first
// byte does not start one (overlong forms, surrogates and code points above U+10FFFF included).
size_t Utf8SequenceLength(std::string_view text);

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

template <typename Append>
void ForEachValidUtf8(std::string_view text, Append append) {
  size_t start = 0, i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t length = Utf8SequenceLength(text.substr(i));
    if (length > 0) {
      i += length;
      continue;
    }
    append(text.substr(start, i - start));
    append(kReplacementCharacter);
    start = ++i;
  }
  append(text.substr(start));
}

}  // namespace maas::internal

#endif  // MAAS_LIB_UTF8_H_
