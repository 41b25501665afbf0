#include "json.h"

#include <cmath>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl_compat.h"
#include "fmt/core.h"

namespace maas::internal {
namespace {

constexpr int kMaxDepth = 64;

void AppendEscaped(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    Json value;
    if (!ParseValue(value, 0)) return Error();
    SkipSpace();
    if (pos_ != text_.size()) {
      error_ = "unexpected text after the end of the document";
      return Error();
    }
    return value;
  }

 private:
  absl::Status Error() const {
    int line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(
        fmt::format("invalid JSON at line {}, column {}: {}", line, column, error_));
  }

  bool Fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool Consume(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool ParseValue(Json& out, int depth) {
    if (depth > kMaxDepth) return Fail("nesting deeper than 64 levels");
    SkipSpace();
    if (pos_ >= text_.size()) return Fail("unexpected end of input, expected a value");
    char c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      std::string s;
      if (!ParseString(s)) return false;
      out = Json(std::move(s));
      return true;
    }
    if (Consume("true")) {
      out = Json(true);
      return true;
    }
    if (Consume("false")) {
      out = Json(false);
      return true;
    }
    if (Consume("null")) {
      out = Json(nullptr);
      return true;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    return Fail(fmt::format("unexpected character '{}', expected a value", c));
  }

  bool ParseNumber(Json& out) {
    size_t start = pos_;
    bool integral = true;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (!digits()) return Fail("malformed number");
    if (pos_ < text_.size() && text_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digits()) return Fail("malformed number: digits expected after '.'");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!digits()) return Fail("malformed number: digits expected in the exponent");
    }
    std::string_view literal = text_.substr(start, pos_ - start);
    if (integral) {
      int64_t v;
      if (absl::SimpleAtoi(ToAbsl(literal), &v)) {
        out = Json(v);
        return true;
      }
    }
    double d;
    if (!absl::SimpleAtod(ToAbsl(literal), &d) || !std::isfinite(d)) {
      return Fail(fmt::format("number {} out of range", literal));
    }
    out = Json(d);
    return true;
  }

  bool ParseHex4(uint32_t& cp) {
    if (pos_ + 4 > text_.size()) return Fail("truncated \\u escape");
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      char h = text_[pos_++];
      cp <<= 4;
      if (h >= '0' && h <= '9')
        cp |= h - '0';
      else if (h >= 'a' && h <= 'f')
        cp |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        cp |= h - 'A' + 10;
      else
        return Fail("malformed \\u escape");
    }
    return true;
  }

  bool ParseString(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) return Fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) return Fail("unterminated string");
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!ParseHex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {
            uint32_t low;
            if (!Consume("\\u") || !ParseHex4(low) || low < 0xDC00 || low > 0xDFFF) {
              return Fail("unpaired UTF-16 surrogate in \\u escape");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Fail("unpaired UTF-16 surrogate in \\u escape");
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Fail(fmt::format("unknown escape '\\{}'", e));
      }
    }
  }

  bool ParseArray(Json& out, int depth) {
    ++pos_;
    Json::Array items;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      out = Json(std::move(items));
      return true;
    }
    while (true) {
      Json item;
      if (!ParseValue(item, depth + 1)) return false;
      items.push_back(std::move(item));
      SkipSpace();
      if (pos_ >= text_.size()) return Fail("unterminated array");
      char c = text_[pos_++];
      if (c == ']') break;
      if (c != ',') return Fail("expected ',' or ']' in array");
    }
    out = Json(std::move(items));
    return true;
  }

  bool ParseObject(Json& out, int depth) {
    ++pos_;
    Json::Object members;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      out = Json(std::move(members));
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Fail("expected a quoted member name");
      std::string key;
      if (!ParseString(key)) return false;
      for (const auto& [existing, unused] : members) {
        if (existing == key) return Fail(fmt::format("duplicate member \"{}\"", key));
      }
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Fail("expected ':' after member name");
      ++pos_;
      Json value;
      if (!ParseValue(value, depth + 1)) return false;
      members.emplace_back(std::move(key), std::move(value));
      SkipSpace();
      if (pos_ >= text_.size()) return Fail("unterminated object");
      char c = text_[pos_++];
      if (c == '}') break;
      if (c != ',') return Fail("expected ',' or '}' in object");
    }
    out = Json(std::move(members));
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

double Json::as_double() const {
  if (is_int()) return static_cast<double>(as_int());
  return std::get<double>(value_);
}

const Json* Json::Find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : as_object()) {
    if (k == key) return &v;
  }
  return nullptr;
}

const char* Json::TypeName() const {
  switch (value_.index()) {
    case 0:
      return "null";
    case 1:
      return "boolean";
    case 2:
      return "integer";
    case 3:
      return "number";
    case 4:
      return "string";
    case 5:
      return "array";
    default:
      return "object";
  }
}

std::string Json::Dump(bool pretty) const {
  std::string out;
  DumpTo(out, pretty, 0);
  if (pretty) out += '\n';
  return out;
}

void Json::DumpTo(std::string& out, bool pretty, int indent) const {
  auto newline = [&](int level) {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<size_t>(level) * 2, ' ');
  };
  switch (value_.index()) {
    case 0:
      out += "null";
      break;
    case 1:
      out += as_bool() ? "true" : "false";
      break;
    case 2:
      out += std::to_string(as_int());
      break;
    case 3:
      out += fmt::format("{}", std::get<double>(value_));
      break;
    case 4:
      AppendEscaped(out, as_string());
      break;
    case 5: {
      const Array& items = as_array();
      // Arrays of scalars (shapes) stay on one line; they read better that way.
      bool flat = true;
      for (const Json& item : items) flat = flat && !item.is_array() && !item.is_object();
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += flat && pretty ? ", " : ",";
        if (!flat) newline(indent + 1);
        items[i].DumpTo(out, pretty, indent + 1);
      }
      if (!flat && !items.empty()) newline(indent);
      out += ']';
      break;
    }
    default: {
      const Object& members = as_object();
      out += '{';
      for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out += ',';
        newline(indent + 1);
        AppendEscaped(out, members[i].first);
        out += pretty ? ": " : ":";
        members[i].second.DumpTo(out, pretty, indent + 1);
      }
      if (!members.empty()) newline(indent);
      out += '}';
    }
  }
}

absl::StatusOr<Json> Json::Parse(std::string_view text) { return Parser(text).ParseDocument(); }

}  // namespace maas::internal
