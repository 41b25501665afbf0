#include "protocol.h"

#include <algorithm>
#include <utility>

#include "datatypes.h"
#include "fmt/core.h"

namespace maasd {
namespace {

std::vector<TensorMetadata> Metadata(const std::vector<maas::TensorSpec>& specs, bool batchable) {
  std::vector<TensorMetadata> tensors;
  for (const maas::TensorSpec& spec : specs) {
    TensorMetadata tensor{spec.name, DatatypeOf(spec.dtype), spec.shape};
    if (batchable) tensor.shape.insert(tensor.shape.begin(), -1);
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

std::string_view StateName(maas::ModelState state) {
  switch (state) {
    case maas::ModelState::kLoading:
      return "LOADING";
    case maas::ModelState::kReady:
      return "READY";
    case maas::ModelState::kUnloading:
      return "UNLOADING";
    default:
      return "UNAVAILABLE";
  }
}

}  // namespace

std::string Platform(maas::ModelFormat format) {
  return "pytorch_" + std::string(maas::ModelFormatName(format));
}

absl::Status ForProtocol(ModelControl& control, const std::string& model, absl::Status status) {
  if (!absl::IsNotFound(status)) return status;
  const std::vector<std::string> deployed = control.server().Models();
  if (std::find(deployed.begin(), deployed.end(), model) != deployed.end()) return status;
  return absl::NotFoundError(fmt::format("Request for unknown model: '{}' is not found", model));
}

absl::StatusOr<ModelMetadata> DescribeModel(ModelControl& control, const std::string& model,
                                            const std::string& version) {
  absl::StatusOr<int64_t> served = control.ServedVersion(model, version);
  if (!served.ok()) return served.status();
  absl::StatusOr<maas::ModelSignature> signature = control.Signature(model, *served);
  if (!signature.ok()) return signature.status();
  absl::StatusOr<maas::ModelFormat> format = control.Format(model, *served);
  if (!format.ok()) return format.status();
  ModelMetadata metadata;
  metadata.name = model;
  metadata.platform = Platform(*format);
  if (absl::StatusOr<maas::ModelStatus> status = control.server().Describe(model); status.ok()) {
    for (const maas::VersionStatus& v : status->versions) {
      if (v.state == maas::ModelState::kReady)
        metadata.versions.push_back(std::to_string(v.version));
    }
  }
  metadata.inputs = Metadata(signature->inputs, signature->batchable);
  metadata.outputs = Metadata(signature->outputs, signature->batchable);
  return metadata;
}

absl::StatusOr<ModelConfiguration> ConfigureModel(ModelControl& control, const std::string& model,
                                                  const std::string& version) {
  absl::StatusOr<ModelMetadata> metadata = DescribeModel(control, model, version);
  if (!metadata.ok()) return metadata.status();
  absl::StatusOr<int64_t> served = control.ServedVersion(model, version);
  if (!served.ok()) return served.status();
  absl::StatusOr<maas::ModelSignature> signature = control.Signature(model, *served);
  if (!signature.ok()) return signature.status();
  ModelConfiguration config;
  config.metadata = *std::move(metadata);
  if (signature->batchable) {
    for (auto* tensors : {&config.metadata.inputs, &config.metadata.outputs}) {
      for (TensorMetadata& tensor : *tensors) tensor.shape.erase(tensor.shape.begin());
    }
    // The Server's limit for the version: its batch-size histogram has a slot per size.
    if (absl::StatusOr<maas::ModelStatus> status = control.server().Describe(model); status.ok()) {
      for (const maas::VersionStatus& v : status->versions) {
        if (v.version == *served) {
          config.max_batch_size =
              static_cast<int64_t>(v.stats.batch_size_histogram.size()) - 1;
        }
      }
    }
    if (config.max_batch_size <= 0) config.max_batch_size = 1;
  }
  return config;
}

std::string ConfigDatatype(std::string_view datatype) {
  return "TYPE_" + std::string(datatype);
}

absl::StatusOr<bool> ModelReady(ModelControl& control, const std::string& model,
                                const std::string& version) {
  absl::StatusOr<int64_t> served = control.ServedVersion(model, version);
  if (served.ok()) return true;
  if (absl::IsNotFound(served.status()) && !control.server().Describe(model).ok()) {
    return served.status();
  }
  return false;
}

absl::StatusOr<std::vector<IndexEntry>> RepositoryIndex(ModelControl& control, bool only_ready) {
  absl::StatusOr<std::vector<std::string>> models = control.store().Models();
  if (!models.ok()) return models.status();
  std::vector<IndexEntry> entries;
  for (const std::string& model : *models) {
    absl::StatusOr<maas::ModelStatus> status = control.server().Describe(model);
    if (!status.ok()) {
      if (!only_ready) entries.push_back({model, "", "UNAVAILABLE", "not loaded"});
      continue;
    }
    for (const maas::VersionStatus& v : status->versions) {
      if (only_ready && v.state != maas::ModelState::kReady) continue;
      entries.push_back(
          {model, std::to_string(v.version), StateName(v.state), control.ForClients(v.reason)});
    }
  }
  return entries;
}

namespace {

VersionStatistics::Duration Of(int64_t count, absl::Duration total) {
  return {count, absl::ToInt64Nanoseconds(total)};
}

VersionStatistics StatisticsOf(const std::string& model, const maas::VersionStatus& v,
                               const std::map<RequestMetrics::Key, RequestMetrics::Series>& series) {
  const maas::ModelStats& s = v.stats;
  VersionStatistics out;
  out.name = model;
  out.version = std::to_string(v.version);
  if (s.last_execution != absl::InfinitePast()) {
    out.last_inference_ms = absl::ToUnixMillis(s.last_execution);
  }
  out.inference_count = s.items;
  out.execution_count = s.batches;
  // Counts from the Server (it counts the requests it refused for this version too); times
  // from arrival to answer at maasd's network layer.
  out.success.count = s.succeeded;
  for (const auto& [code, count] : s.failures) out.fail.count += count;
  for (const auto& [key, network] : series) {
    if (key.model != model || key.version != v.version) continue;
    out.success.ns += absl::ToInt64Nanoseconds(network.success_time);
    out.fail.ns += absl::ToInt64Nanoseconds(network.failure_time);
  }
  out.queue = Of(s.queue_time.count, s.queue_time.sum);
  const maas::ComputeTimes& c = s.request_compute;
  out.compute_input = Of(c.count, c.input);
  out.compute_infer = Of(c.count, c.infer);
  out.compute_output = Of(c.count, c.output);
  for (size_t n = 1; n < s.compute_by_batch_size.size(); ++n) {
    const maas::ComputeTimes& b = s.compute_by_batch_size[n];
    if (b.count == 0) continue;
    out.batch_stats.push_back({static_cast<int64_t>(n), Of(b.count, b.input),
                               Of(b.count, b.infer), Of(b.count, b.output)});
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<VersionStatistics>> Statistics(ModelControl& control,
                                                          const RequestMetrics& requests,
                                                          const std::string& model,
                                                          const std::string& version) {
  const std::vector<std::string> models =
      model.empty() ? control.server().Models() : std::vector<std::string>{model};
  const std::map<RequestMetrics::Key, RequestMetrics::Series> series = requests.Snapshot();
  std::vector<VersionStatistics> out;
  for (const std::string& name : models) {
    absl::StatusOr<maas::ModelStatus> status = control.server().Describe(name);
    if (!status.ok()) {
      if (model.empty()) continue;  // Undeployed meanwhile.
      return ForProtocol(control, name, status.status());
    }
    for (const maas::VersionStatus& v : status->versions) {
      if (!version.empty() && std::to_string(v.version) != version) continue;
      out.push_back(StatisticsOf(name, v, series));
    }
  }
  return out;
}

maas::ServerRequestOptions RequestOptionsFor(const InferRequest& request, std::string version,
                                             int64_t default_priority_level) {
  maas::ServerRequestOptions options;
  options.version = std::move(version);
  options.input_names = request.input_names;
  // maas runs higher priorities first; the protocol's level 1 is the highest.
  const int64_t level = request.priority == 0 ? default_priority_level : request.priority;
  options.priority = -static_cast<int>(std::min<int64_t>(level, 1 << 30));
  options.timeout = request.timeout;
  // A quick model with nothing queued runs right here: two thread hand-offs saved.
  options.run_on_calling_thread_when_idle = true;
  return options;
}

}  // namespace maasd
