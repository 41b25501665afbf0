// A small JSON value with a strict parser and a pretty printer, for manifests (and, later, the
// REST protocol). Objects keep their insertion order so written files read naturally.
#ifndef MAAS_LIB_JSON_H_
#define MAAS_LIB_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace maas::internal {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : value_(b) {}
  Json(int v) : value_(int64_t{v}) {}
  Json(int64_t v) : value_(v) {}
  Json(double v) : value_(v) {}
  Json(const char* s) : value_(std::string(s)) {}
  Json(std::string s) : value_(std::move(s)) {}
  Json(std::string_view s) : value_(std::string(s)) {}
  Json(Array a) : value_(std::move(a)) {}
  Json(Object o) : value_(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(value_); }
  bool is_bool() const { return std::holds_alternative<bool>(value_); }
  bool is_int() const { return std::holds_alternative<int64_t>(value_); }
  bool is_number() const { return is_int() || std::holds_alternative<double>(value_); }
  bool is_string() const { return std::holds_alternative<std::string>(value_); }
  bool is_array() const { return std::holds_alternative<Array>(value_); }
  bool is_object() const { return std::holds_alternative<Object>(value_); }

  // Accessors; call only after checking the type.
  bool as_bool() const { return std::get<bool>(value_); }
  int64_t as_int() const { return std::get<int64_t>(value_); }
  double as_double() const;
  const std::string& as_string() const { return std::get<std::string>(value_); }
  const Array& as_array() const { return std::get<Array>(value_); }
  const Object& as_object() const { return std::get<Object>(value_); }

  // Returns the member `key` of an object, or nullptr when absent or not an object.
  const Json* Find(std::string_view key) const;

  // Returns the type's name for messages: "null", "boolean", "integer", "number", ...
  const char* TypeName() const;

  // Serializes with two-space indentation and a trailing newline when `pretty`.
  std::string Dump(bool pretty = true) const;

  // Parses a complete JSON text. InvalidArgument with line and column on malformed input.
  static absl::StatusOr<Json> Parse(std::string_view text);

 private:
  void DumpTo(std::string& out, bool pretty, int indent) const;

  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> value_;
};

}  // namespace maas::internal

#endif  // MAAS_LIB_JSON_H_
