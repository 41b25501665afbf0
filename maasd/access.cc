#include "access.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/str_split.h"
#include "util/absl_compat.h"
#include "fmt/core.h"

namespace maasd {
namespace {

using maas::internal::FromAbsl;
using maas::internal::ToAbsl;

constexpr ApiGroup kGroups[] = {ApiGroup::kHealth, ApiGroup::kMetadata, ApiGroup::kInference,
                                ApiGroup::kModelRepository, ApiGroup::kStatistics};

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// An HTTP field name (RFC 9110's token), which gRPC metadata keys also are.
bool IsToken(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

}  // namespace

std::string_view ApiGroupName(ApiGroup group) {
  switch (group) {
    case ApiGroup::kHealth:
      return "health";
    case ApiGroup::kMetadata:
      return "metadata";
    case ApiGroup::kInference:
      return "inference";
    case ApiGroup::kModelRepository:
      return "model-repository";
    case ApiGroup::kStatistics:
      return "statistics";
  }
  return "?";
}

absl::StatusOr<Restriction> ParseRestriction(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(fmt::format(
        "--restricted-api: {}; expected GROUP[,GROUP...]:KEY=VALUE with groups among health, "
        "metadata, inference, model-repository, statistics",
        why));
  };
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return bad("no ':' after the groups");
  const std::string_view groups = text.substr(0, colon), pair = text.substr(colon + 1);
  const size_t eq = pair.find('=');
  if (eq == std::string_view::npos) return bad("no '=' between the key and its value");
  Restriction restriction;
  restriction.key = Lower(pair.substr(0, eq));
  restriction.value = std::string(pair.substr(eq + 1));
  if (!IsToken(restriction.key)) {
    return bad(fmt::format("the key '{}' is not a header name", restriction.key));
  }
  if (restriction.value.empty()) return bad("the value is empty");
  for (absl::string_view name : absl::StrSplit(ToAbsl(groups), ',')) {
    const auto group = std::find_if(std::begin(kGroups), std::end(kGroups), [&](ApiGroup g) {
      return ApiGroupName(g) == FromAbsl(name);
    });
    if (group == std::end(kGroups)) return bad(fmt::format("unknown group '{}'", FromAbsl(name)));
    restriction.groups.push_back(*group);
  }
  return restriction;
}

absl::StatusOr<AccessPolicy> AccessPolicy::Create(std::vector<Restriction> restrictions) {
  std::vector<ApiGroup> seen;
  for (const Restriction& restriction : restrictions) {
    for (ApiGroup group : restriction.groups) {
      if (std::find(seen.begin(), seen.end(), group) != seen.end()) {
        return absl::InvalidArgumentError(fmt::format(
            "--restricted-api: group {} is restricted twice; give each group one key",
            ApiGroupName(group)));
      }
      seen.push_back(group);
    }
  }
  AccessPolicy policy;
  policy.restrictions_ = std::move(restrictions);
  return policy;
}

absl::Status AccessPolicy::Check(ApiGroup group, HeaderLookup header) const {
  for (const Restriction& restriction : restrictions_) {
    if (std::find(restriction.groups.begin(), restriction.groups.end(), group) ==
        restriction.groups.end()) {
      continue;
    }
    const std::optional<std::string_view> given = header(restriction.key);
    // Every byte is compared whatever the first difference: the time tells nothing.
    if (given && given->size() == restriction.value.size() &&
        CRYPTO_memcmp(given->data(), restriction.value.data(), given->size()) == 0) {
      return absl::OkStatus();
    }
    return absl::PermissionDeniedError(
        fmt::format("the {} API is restricted: the request needs the header (gRPC: metadata) "
                    "'{}' with the key maasd was given{}",
                    ApiGroupName(group), restriction.key,
                    given ? "; the value sent is not it" : "; none was sent"));
  }
  return absl::OkStatus();
}

std::vector<std::string> AccessPolicy::Keys() const {
  std::vector<std::string> keys;
  for (const Restriction& restriction : restrictions_) keys.push_back(restriction.key);
  return keys;
}

}  // namespace maasd
