// JSON for the store's files (and, later, the REST protocol), through nlohmann::json, a packaged
// and widely used library: objects keep their insertion order, so written files read naturally.
#ifndef MAAS_LIB_JSON_H_
#define MAAS_LIB_JSON_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace maas::internal {

using Json = nlohmann::ordered_json;

// Deepest nesting ParseJson accepts. The store's files nest four deep; a limit keeps a hostile
// file of nothing but brackets from costing a gigabyte of nodes.
inline constexpr int kMaxJsonDepth = 64;

// Parses a complete JSON text. InvalidArgument with the line and column on malformed input, on
// a member named twice in one object, and on nesting deeper than kMaxJsonDepth. Never throws.
absl::StatusOr<Json> ParseJson(std::string_view text);

// Serializes as the store's files are written: two-space indentation, one member per line,
// arrays of numbers and strings on one line ("shape": [3, 224, 224]), a trailing newline.
std::string DumpJson(const Json& json);

// The type's name for messages: "null", "a boolean", "an integer", "a number", "a string", ...
std::string JsonTypeName(const Json& json);

// Whether `json` is an integer that fits int64_t (nlohmann keeps larger ones as unsigned).
bool IsInt64(const Json& json);

}  // namespace maas::internal

#endif  // MAAS_LIB_JSON_H_
