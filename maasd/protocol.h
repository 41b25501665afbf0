// What maasd's two front ends, REST and gRPC, answer alike: model metadata, readiness, the
// repository index, and how a request's protocol parameters become ServerRequestOptions. Each
// front end only encodes these in its own format.
#ifndef MAASD_PROTOCOL_H_
#define MAASD_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "access.h"
#include "infer_codec.h"
#include "maas/request.h"
#include "model_control.h"
#include "request_metrics.h"

namespace maasd {

inline constexpr std::string_view kServerName = "maasd";
// The metadata's "platform" of a version: "pytorch_torchscript" or "pytorch_aot_inductor".
std::string Platform(maas::ModelFormat format);

// How both front ends treat requests.
struct ApiOptions {
  // The priority level of requests that give none (the protocol's priority 0). Levels run
  // from 1, the highest; a request of level n runs before queued requests of levels > n.
  // Default: 1 (unprioritized requests are served first; clients lower theirs with 2, 3, ...).
  int64_t default_priority_level = 1;
  // Writes one JSON line per request to stderr (model, version, status, time, and the HTTP
  // method and path or the gRPC method).
  bool log_requests = false;
  // An answer that would take more bytes is refused (InvalidArgument) before it is built.
  // Default: 64 MiB (maasd sets it to --max-body-bytes unless --max-response-bytes is given).
  size_t max_response_bytes = size_t{64} << 20;
  // Which endpoint groups need a key (--restricted-api). Default: none.
  AccessPolicy access;
};

struct TensorMetadata {
  std::string name;
  std::string_view datatype;   // "FP32"
  std::vector<int64_t> shape;  // -1 first for a batchable model's batch dimension.
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;  // The ready versions.
  std::string platform;               // Of the version described: Platform(its format).
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

// `status` as a client of the protocol expects it: when it is NotFound because `model` is not
// deployed at all, "Request for unknown model: 'x' is not found", Triton's words (its
// clients and examples test for them), without the list of deployed models.
absl::Status ForProtocol(ModelControl& control, const std::string& model, absl::Status status);

// The metadata of the version of `model` that `version` names (empty: the one a request naming
// none would most likely reach). NotFound: not deployed, or no such ready version.
absl::StatusOr<ModelMetadata> DescribeModel(ModelControl& control, const std::string& model,
                                            const std::string& version);

// Whether `model` (its version `version`, when not empty) is ready. NotFound when the model is
// not deployed at all (a deployed model without a ready version is not ready: false).
absl::StatusOr<bool> ModelReady(ModelControl& control, const std::string& model,
                                const std::string& version);

struct IndexEntry {
  std::string name;
  std::string version;     // Empty for a model of the store that is not deployed.
  std::string_view state;  // READY, LOADING, UNLOADING or UNAVAILABLE
  std::string reason;
};

// Every model of the store, a line per deployed version (only the ready ones if `only_ready`).
absl::StatusOr<std::vector<IndexEntry>> RepositoryIndex(ModelControl& control, bool only_ready);

// Triton's model configuration of one version (its model configuration extension): the
// metadata's tensors with per-item shapes, and the batch limit.
struct ModelConfiguration {
  ModelMetadata metadata;  // Shapes without the batch dimension.
  int64_t max_batch_size = 0;  // 0: not batchable.
};

// The configuration of the version `version` names (as DescribeModel).
absl::StatusOr<ModelConfiguration> ConfigureModel(ModelControl& control, const std::string& model,
                                                  const std::string& version);

// "TYPE_FP32" for "FP32": Triton's configuration names of the protocol's datatypes.
std::string ConfigDatatype(std::string_view datatype);

// Triton's statistics of one version (its statistics extension, REST and gRPC alike).
struct VersionStatistics {
  struct Duration {  // StatisticDuration
    int64_t count = 0;
    int64_t ns = 0;
  };
  struct Batch {
    int64_t batch_size = 0;
    Duration compute_input, compute_infer, compute_output;
  };
  std::string name;
  std::string version;
  int64_t last_inference_ms = 0;  // Since the epoch; 0: never ran.
  int64_t inference_count = 0;    // Items.
  int64_t execution_count = 0;    // Batches.
  // success and fail: requests answered, counted by the Server; their time from arrival to
  // answer at the network (fail's excludes requests refused before a version was chosen, such
  // as an input missing: counted, but their time is not the version's). queue and compute_*:
  // per request, from the Server.
  Duration success, fail, queue, compute_input, compute_infer, compute_output;
  std::vector<Batch> batch_stats;  // Only the sizes that ran.
};

// The statistics of `model` (every deployed model when empty), of every version or the one
// `version` names. NotFound: `model` is not deployed.
absl::StatusOr<std::vector<VersionStatistics>> Statistics(ModelControl& control,
                                                          const RequestMetrics& requests,
                                                          const std::string& model,
                                                          const std::string& version);

// The options of `request` for Server::Submit: the version asked for, the inputs' names, the
// priority (the protocol's level 1 is the highest and 0 means `default_priority_level`) and the
// timeout. Quick models with nothing queued run on the calling (network) thread.
maas::ServerRequestOptions RequestOptionsFor(const InferRequest& request, std::string version,
                                             int64_t default_priority_level);

}  // namespace maasd

#endif  // MAASD_PROTOCOL_H_
