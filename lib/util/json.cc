#include "util/json.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "fmt/core.h"

namespace maas::internal {
namespace {

// The deepest nesting of arrays and objects in `text`, without parsing it.
int NestingDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// A scalar as compact JSON; invalid UTF-8 (say, in a description) becomes U+FFFD instead of an
// exception.
std::string Scalar(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Two-space indentation, one member per line; arrays of scalars (shapes) stay on one line.
void DumpTo(const Json& json, int indent, std::string& out) {
  const std::string inner(static_cast<size_t>(indent + 2), ' ');
  if (json.is_object() && !json.empty()) {
    out += "{\n";
    bool first = true;
    for (const auto& [key, value] : json.items()) {
      out += first ? "" : ",\n";
      first = false;
      out += inner + Scalar(Json(key)) + ": ";
      DumpTo(value, indent + 2, out);
    }
    out += "\n" + std::string(static_cast<size_t>(indent), ' ') + "}";
  } else if (json.is_array() && !json.empty()) {
    const bool flat = std::none_of(json.begin(), json.end(),
                                   [](const Json& item) { return item.is_structured(); });
    out += flat ? "[" : "[\n";
    bool first = true;
    for (const Json& item : json) {
      out += first ? "" : (flat ? ", " : ",\n");
      first = false;
      if (!flat) out += inner;
      DumpTo(item, indent + 2, out);
    }
    out += flat ? "]" : "\n" + std::string(static_cast<size_t>(indent), ' ') + "]";
  } else {
    out += Scalar(json);
  }
}

}  // namespace

absl::StatusOr<Json> ParseJson(std::string_view text) {
  if (NestingDepth(text) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        fmt::format("JSON nesting deeper than {} levels; refused", kMaxJsonDepth));
  }
  // A member named twice is refused: readers that keep the first and readers that keep the last
  // would see different files.
  std::vector<std::set<std::string>> keys;  // Of each object being parsed, innermost last.
  std::string duplicate;
  auto check_keys = [&](int, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == Json::parse_event_t::key && duplicate.empty() &&
               !keys.back().insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    Json json = Json::parse(text.begin(), text.end(), check_keys);
    if (!duplicate.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("duplicate member \"{}\" in a JSON object", duplicate));
    }
    return json;
  } catch (const Json::exception& e) {
    // e.what(): "[json.exception.parse_error.101] parse error at line 1, column 3: ..."
    return absl::InvalidArgumentError(e.what());
  }
}

std::string DumpJson(const Json& json) {
  std::string out;
  DumpTo(json, 0, out);
  out += '\n';
  return out;
}

std::string JsonTypeName(const Json& json) {
  switch (json.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return IsInt64(json) ? "an integer" : "an integer beyond 64 bits";
    case Json::value_t::number_float:
      return "a number";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return "an unknown value";
  }
}

bool IsInt64(const Json& json) {
  if (json.is_number_unsigned()) {
    return json.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  return json.is_number_integer();
}

}  // namespace maas::internal
