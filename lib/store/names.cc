#include "store/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "util/absl_compat.h"
#include "fmt/core.h"

namespace maas::internal {
namespace {

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

absl::Status ValidateIdentifier(std::string_view what, std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(fmt::format("{} is empty", what));
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        fmt::format("{} '{}...' is {} characters long; at most {} allowed", what,
                    name.substr(0, 32), name.size(), kMaxNameLength));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(
        fmt::format("{} '{}' starts with a dot; names may not start with '.'", what, name));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      std::string shown = absl::ascii_isprint(static_cast<unsigned char>(c))
                              ? fmt::format("'{}'", c)
                              : fmt::format("byte 0x{:02x}", static_cast<unsigned char>(c));
      return absl::InvalidArgumentError(
          fmt::format("{} '{}' contains {}; only letters, digits, '.', '_' and '-' are allowed",
                      what, absl::CHexEscape(ToAbsl(name)), shown));
    }
  }
  return absl::OkStatus();
}

bool LooksLikeNumber(std::string_view s) {
  double unused_d;
  int64_t unused_i;
  return absl::SimpleAtoi(ToAbsl(s), &unused_i) || absl::SimpleAtod(ToAbsl(s), &unused_d);
}

}  // namespace

absl::Status ValidateModelName(std::string_view name) {
  return ValidateIdentifier("model name", name);
}

absl::Status ValidateAlias(std::string_view alias) {
  if (absl::Status s = ValidateIdentifier("alias", alias); !s.ok()) return s;
  if (absl::EqualsIgnoreCase(ToAbsl(alias), "latest")) {
    return absl::InvalidArgumentError(
        fmt::format("alias '{}' is reserved: \"latest\" always means the highest version", alias));
  }
  if (LooksLikeNumber(alias)) {
    return absl::InvalidArgumentError(fmt::format(
        "alias '{}' looks like a number and would be confused with a version number", alias));
  }
  return absl::OkStatus();
}

absl::StatusOr<VersionSelector> ParseVersionSelector(std::string_view version) {
  if (version == "latest") return VersionSelector(LatestVersion{});
  if (!version.empty() && absl::ascii_isdigit(static_cast<unsigned char>(version[0]))) {
    const int64_t number = ParseVersionFolderName(version);  // The same strict rule.
    if (number < 1) {
      return absl::InvalidArgumentError(fmt::format(
          "version '{}' is not valid: expected \"latest\", a number from 1 up, or an alias",
          absl::CHexEscape(ToAbsl(version))));
    }
    return VersionSelector(number);
  }
  if (absl::Status s = ValidateAlias(version); !s.ok()) {
    return absl::InvalidArgumentError(fmt::format(
        "version '{}' is not valid: expected \"latest\", a number from 1 up, or an alias ({})",
        absl::CHexEscape(ToAbsl(version)), s.message()));
  }
  return VersionSelector(std::string(version));
}

int64_t ParseVersionFolderName(std::string_view name) {
  if (name.empty() || name[0] == '0' || name.size() > 16) return -1;
  int64_t v = 0;
  for (char c : name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return -1;
    v = v * 10 + (c - '0');  // At most 16 digits: no overflow.
  }
  return v <= kMaxVersion ? v : -1;
}

}  // namespace maas::internal
