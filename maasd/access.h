// Restricted APIs: groups of endpoints that only clients presenting a key may call, on both
// protocols (an HTTP header, gRPC metadata), in the manner of Triton's --*-restricted-api.
#ifndef MAASD_ACCESS_H_
#define MAASD_ACCESS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace maasd {

// The endpoints of each group, REST and gRPC alike.
enum class ApiGroup {
  kHealth,           // /v2/health/*, ServerLive, ServerReady, ModelReady
  kMetadata,         // /v2, /v2/models/M, ServerMetadata, ModelMetadata
  kInference,        // /v2/models/M/infer, ModelInfer
  kModelRepository,  // /v2/repository/*, RepositoryIndex, RepositoryModelLoad/Unload
  kStatistics,       // /metrics, /v2/status, /v2/models/.../stats, the status page
};

// "health", "metadata", "inference", "model-repository", "statistics".
std::string_view ApiGroupName(ApiGroup group);

// One --restricted-api: the groups that need `key` (an HTTP header / gRPC metadata key, kept
// in lowercase) to carry `value`.
struct Restriction {
  std::vector<ApiGroup> groups;
  std::string key;
  std::string value;
};

// Parses "GROUP[,GROUP...]:KEY=VALUE". InvalidArgument naming what is wrong.
absl::StatusOr<Restriction> ParseRestriction(std::string_view text);

// Looks up a request's header (HTTP) or metadata (gRPC) by lowercase name.
using HeaderLookup = absl::FunctionRef<std::optional<std::string_view>(std::string_view name)>;

// The restrictions of one maasd. This class is immutable once built, hence thread-safe.
class AccessPolicy {
 public:
  AccessPolicy() = default;
  // InvalidArgument when a group is restricted twice.
  static absl::StatusOr<AccessPolicy> Create(std::vector<Restriction> restrictions);

  // OK when `group` is open or the request carries its key with the right value (compared in
  // constant time); else PermissionDenied naming the group and the key, never the value.
  absl::Status Check(ApiGroup group, HeaderLookup header) const;

  // The header names the restrictions read (lowercase).
  std::vector<std::string> Keys() const;

  bool empty() const { return restrictions_.empty(); }

 private:
  std::vector<Restriction> restrictions_;
};

}  // namespace maasd

#endif  // MAASD_ACCESS_H_
