#include "grpc_api.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <utility>
#include <vector>

#include "util/absl_compat.h"
#include "fmt/core.h"
#include "grpc_codec.h"
#include "maas/version.h"

namespace maasd {
namespace {

// absl's codes are gRPC's, number for number.
grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(maas::internal::FromAbsl(status.message())));
}

void FillTensors(
    const std::vector<TensorMetadata>& tensors,
    google::protobuf::RepeatedPtrField<inference::ModelMetadataResponse::TensorMetadata>* out) {
  for (const TensorMetadata& tensor : tensors) {
    inference::ModelMetadataResponse::TensorMetadata* entry = out->Add();
    entry->set_name(tensor.name);
    entry->set_datatype(std::string(tensor.datatype));
    for (const int64_t size : tensor.shape) entry->add_shape(size);
  }
}

absl::Status Stopping() { return absl::UnavailableError("maasd is stopping"); }

// OK when `group` is open to the RPC of `context` (its metadata carries the key).
absl::Status Allowed(const ApiOptions& options, const grpc::CallbackServerContext* context,
                     ApiGroup group) {
  if (options.access.empty()) return absl::OkStatus();
  return options.access.Check(group, [&](std::string_view name) -> std::optional<std::string_view> {
    const auto& metadata = context->client_metadata();
    const auto found = metadata.find(grpc::string_ref(name.data(), name.size()));
    if (found == metadata.end()) return std::nullopt;
    return std::string_view(found->second.data(), found->second.size());
  });
}

// Counts an RPC handler among those running on a gRPC thread, and says whether it may go on.
class Running {
 public:
  explicit Running(std::atomic<bool>& stopping, std::atomic<int>& running) : running_(running) {
    running_.fetch_add(1);
    refused_ = stopping.load();  // After the count: Stop either sees us or we see it.
  }
  ~Running() { running_.fetch_sub(1); }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;

  bool refused() const { return refused_; }

 private:
  std::atomic<int>& running_;
  bool refused_ = false;
};

}  // namespace

// One RPC's answer: finishes it, and logs it when asked. Copied into what answers later.
class GrpcApi::Call {
 public:
  Call(const GrpcApi* api, grpc::CallbackServerContext* context, std::string_view method)
      : api_(api), reactor_(context->DefaultReactor()), method_(method), start_(absl::Now()) {
    api_->in_flight_.fetch_add(1);
  }

  grpc::ServerUnaryReactor* Finish(const absl::Status& status, std::string_view model = {},
                                   int64_t version = 0) const {
    if (api_->options_.log_requests) Log(status, model, version);
    reactor_->Finish(ToGrpc(api_->control_->ForClients(status)));
    api_->in_flight_.fetch_sub(1);
    return reactor_;
  }

  // Finishes an inference, counted in the metrics.
  void FinishInference(const absl::Status& status, const std::string& model,
                       int64_t version) const {
    // Names that are not deployed share one series (see RequestMetrics::Key).
    const bool known = version != 0 || api_->control_->server().Describe(model).ok();
    api_->metrics_->Record({known ? model : "", version, "grpc"}, status.ok(),
                           absl::Now() - start_);
    Finish(status, model, version);
  }

  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

 private:
  void Log(const absl::Status& status, std::string_view model, int64_t version) const {
    std::string line = "{\"time\":";
    AppendJsonString(absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()), line);
    line += fmt::format(",\"rpc\":\"{}\"", method_);
    if (!model.empty()) {
      line += ",\"model\":";
      AppendJsonString(model, line);
      line += fmt::format(",\"version\":{}", version);
    }
    line += fmt::format(",\"status\":\"{}\",\"duration_us\":{}}}\n",
                        maas::internal::FromAbsl(absl::StatusCodeToString(status.code())),
                        absl::ToInt64Microseconds(absl::Now() - start_));
    std::fwrite(line.data(), 1, line.size(), stderr);
  }

  const GrpcApi* api_;
  grpc::ServerUnaryReactor* reactor_;
  std::string_view method_;  // A literal.
  absl::Time start_;
};

GrpcApi::GrpcApi(ModelControl* control, RequestMetrics* metrics, ApiOptions options)
    : control_(control), metrics_(metrics), options_(std::move(options)) {}

void GrpcApi::Stop() {
  stopping_.store(true);
  while (running_.load() > 0) absl::SleepFor(absl::Microseconds(200));
}

grpc::ServerUnaryReactor* GrpcApi::ServerLive(grpc::CallbackServerContext* context,
                                              const inference::ServerLiveRequest*,
                                              inference::ServerLiveResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ServerLive");
  if (absl::Status s = Allowed(options_, context, ApiGroup::kHealth); !s.ok()) {
    return call.Finish(s);
  }
  response->set_live(true);  // Even while stopping: the process is alive.
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcApi::ServerReady(grpc::CallbackServerContext* context,
                                               const inference::ServerReadyRequest*,
                                               inference::ServerReadyResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ServerReady");
  if (absl::Status s = Allowed(options_, context, ApiGroup::kHealth); !s.ok()) {
    return call.Finish(s);
  }
  response->set_ready(!running.refused() && control_->Ready());
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcApi::ModelReady(grpc::CallbackServerContext* context,
                                              const inference::ModelReadyRequest* request,
                                              inference::ModelReadyResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ModelReady");
  if (running.refused()) return call.Finish(Stopping());
  if (absl::Status s = Allowed(options_, context, ApiGroup::kHealth); !s.ok()) {
    return call.Finish(s);
  }
  absl::StatusOr<bool> ready = maasd::ModelReady(*control_, request->name(), request->version());
  // A model that is not deployed is not ready, as Triton answers: clients poll with it while
  // a model loads (REST says 404, which Triton's HTTP client also reads as not ready).
  if (!ready.ok() && !absl::IsNotFound(ready.status())) {
    return call.Finish(ready.status(), request->name());
  }
  response->set_ready(ready.ok() && *ready);
  return call.Finish(absl::OkStatus(), request->name());
}

grpc::ServerUnaryReactor* GrpcApi::ServerMetadata(grpc::CallbackServerContext* context,
                                                  const inference::ServerMetadataRequest*,
                                                  inference::ServerMetadataResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ServerMetadata");
  if (absl::Status s = Allowed(options_, context, ApiGroup::kMetadata); !s.ok()) {
    return call.Finish(s);
  }
  response->set_name(std::string(kServerName));
  response->set_version(MAAS_VERSION_STRING);
  // As REST's /v2 lists them (binary_tensor_data is REST's own).
  response->add_extensions("model_repository");
  response->add_extensions("statistics");
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcApi::ModelMetadata(grpc::CallbackServerContext* context,
                                                 const inference::ModelMetadataRequest* request,
                                                 inference::ModelMetadataResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ModelMetadata");
  if (running.refused()) return call.Finish(Stopping());
  if (absl::Status s = Allowed(options_, context, ApiGroup::kMetadata); !s.ok()) {
    return call.Finish(s);
  }
  absl::StatusOr<maasd::ModelMetadata> metadata =
      DescribeModel(*control_, request->name(), request->version());
  if (!metadata.ok()) {
    return call.Finish(ForProtocol(*control_, request->name(), metadata.status()),
                       request->name());
  }
  response->set_name(metadata->name);
  for (const std::string& version : metadata->versions) response->add_versions(version);
  response->set_platform(metadata->platform);
  FillTensors(metadata->inputs, response->mutable_inputs());
  FillTensors(metadata->outputs, response->mutable_outputs());
  return call.Finish(absl::OkStatus(), request->name());
}

grpc::ServerUnaryReactor* GrpcApi::ModelInfer(grpc::CallbackServerContext* context,
                                              const inference::ModelInferRequest* request,
                                              inference::ModelInferResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ModelInfer");
  const std::string& model = request->model_name();
  if (running.refused()) {
    call.FinishInference(Stopping(), model, 0);
    return call.reactor();
  }
  if (absl::Status s = Allowed(options_, context, ApiGroup::kInference); !s.ok()) {
    call.FinishInference(s, model, 0);
    return call.reactor();
  }
  absl::StatusOr<InferRequest> decoded = DecodeGrpcInferRequest(*request);
  if (!decoded.ok()) {
    call.FinishInference(decoded.status(), model, 0);
    return call.reactor();
  }
  auto infer = std::make_shared<InferRequest>(*std::move(decoded));
  std::vector<at::Tensor> inputs = std::move(infer->inputs);
  infer->inputs.clear();
  maas::ServerRequestOptions options =
      RequestOptionsFor(*infer, request->model_version(), options_.default_priority_level);
  // The client's gRPC deadline bounds the request: one whose client gave up is not run.
  if (const auto deadline = context->deadline();
      deadline < std::chrono::system_clock::time_point::max()) {
    options.deadline = absl::FromChrono(deadline);
  }
  // `request` and `response` live until the RPC is finished.
  absl::Status submitted = control_->server().Submit(
      model, std::move(inputs), std::move(options),
      maas::ServedCallback([this, call, infer, request, response](maas::InferenceResult result,
                                                                  int64_t version) {
        absl::Status status = result.status();
        if (status.ok()) {
          absl::StatusOr<maas::ModelSignature> signature =
              control_->Signature(request->model_name(), version);
          status = signature.ok() ? EncodeGrpcInferResponse(request->model_name(), version, *infer,
                                                            signature->outputs, *result,
                                                            options_.max_response_bytes, response)
                                  : signature.status();
        }
        call.FinishInference(status, request->model_name(), version);
      }));
  if (!submitted.ok()) call.FinishInference(ForProtocol(*control_, model, submitted), model, 0);
  return call.reactor();
}

grpc::ServerUnaryReactor* GrpcApi::RepositoryIndex(grpc::CallbackServerContext* context,
                                                   const inference::RepositoryIndexRequest* request,
                                                   inference::RepositoryIndexResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "RepositoryIndex");
  if (running.refused()) return call.Finish(Stopping());
  if (absl::Status s = Allowed(options_, context, ApiGroup::kModelRepository); !s.ok()) {
    return call.Finish(s);
  }
  absl::StatusOr<std::vector<IndexEntry>> index =
      maasd::RepositoryIndex(*control_, request->ready());
  if (!index.ok()) return call.Finish(index.status());
  for (const IndexEntry& entry : *index) {
    inference::RepositoryIndexResponse::ModelIndex* model = response->add_models();
    model->set_name(entry.name);
    model->set_version(entry.version);
    model->set_state(std::string(entry.state));
    model->set_reason(entry.reason);
  }
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcApi::RepositoryModelLoad(
    grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  const Running running(stopping_, running_);
  const Call call(this, context, "RepositoryModelLoad");
  if (running.refused()) return call.Finish(Stopping());
  if (absl::Status s = Allowed(options_, context, ApiGroup::kModelRepository); !s.ok()) {
    return call.Finish(s);
  }
  const std::string model = request->model_name();
  control_->Load(model, [call, model](absl::Status status) { call.Finish(status, model); });
  return call.reactor();
}

grpc::ServerUnaryReactor* GrpcApi::RepositoryModelUnload(
    grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  const Running running(stopping_, running_);
  const Call call(this, context, "RepositoryModelUnload");
  if (running.refused()) return call.Finish(Stopping());
  if (absl::Status s = Allowed(options_, context, ApiGroup::kModelRepository); !s.ok()) {
    return call.Finish(s);
  }
  const std::string model = request->model_name();
  control_->Unload(model, [call, model](absl::Status status) { call.Finish(status, model); });
  return call.reactor();
}

grpc::ServerUnaryReactor* GrpcApi::ModelConfig(grpc::CallbackServerContext* context,
                                               const inference::ModelConfigRequest* request,
                                               inference::ModelConfigResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ModelConfig");
  if (running.refused()) return call.Finish(Stopping());
  if (absl::Status s = Allowed(options_, context, ApiGroup::kMetadata); !s.ok()) {
    return call.Finish(s);
  }
  absl::StatusOr<ModelConfiguration> config =
      ConfigureModel(*control_, request->name(), request->version());
  if (!config.ok()) {
    return call.Finish(ForProtocol(*control_, request->name(), config.status()),
                       request->name());
  }
  inference::ModelConfig* out = response->mutable_config();
  out->set_name(config->metadata.name);
  out->set_platform(config->metadata.platform);
  out->set_backend("maas");
  out->set_max_batch_size(static_cast<int32_t>(config->max_batch_size));
  const auto type = [](std::string_view datatype) {
    inference::DataType parsed = inference::TYPE_INVALID;
    inference::DataType_Parse(ConfigDatatype(datatype), &parsed);
    return parsed;
  };
  for (const TensorMetadata& t : config->metadata.inputs) {
    inference::ModelInput* input = out->add_input();
    input->set_name(t.name);
    input->set_data_type(type(t.datatype));
    for (const int64_t d : t.shape) input->add_dims(d);
  }
  for (const TensorMetadata& t : config->metadata.outputs) {
    inference::ModelOutput* output = out->add_output();
    output->set_name(t.name);
    output->set_data_type(type(t.datatype));
    for (const int64_t d : t.shape) output->add_dims(d);
  }
  return call.Finish(absl::OkStatus(), request->name());
}

grpc::ServerUnaryReactor* GrpcApi::ModelStatistics(
    grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ModelStatistics");
  if (running.refused()) return call.Finish(Stopping());
  if (absl::Status s = Allowed(options_, context, ApiGroup::kStatistics); !s.ok()) {
    return call.Finish(s);
  }
  absl::StatusOr<std::vector<VersionStatistics>> all =
      Statistics(*control_, *metrics_, request->name(), request->version());
  if (!all.ok()) return call.Finish(all.status(), request->name());
  const auto fill = [](const VersionStatistics::Duration& from,
                       inference::StatisticDuration* to) {
    to->set_count(static_cast<uint64_t>(from.count));
    to->set_ns(static_cast<uint64_t>(from.ns));
  };
  for (const VersionStatistics& v : *all) {
    inference::ModelStatistics* out = response->add_model_stats();
    out->set_name(v.name);
    out->set_version(v.version);
    out->set_last_inference(static_cast<uint64_t>(v.last_inference_ms));
    out->set_inference_count(static_cast<uint64_t>(v.inference_count));
    out->set_execution_count(static_cast<uint64_t>(v.execution_count));
    inference::InferStatistics* stats = out->mutable_inference_stats();
    fill(v.success, stats->mutable_success());
    fill(v.fail, stats->mutable_fail());
    fill(v.queue, stats->mutable_queue());
    fill(v.compute_input, stats->mutable_compute_input());
    fill(v.compute_infer, stats->mutable_compute_infer());
    fill(v.compute_output, stats->mutable_compute_output());
    stats->mutable_cache_hit();
    stats->mutable_cache_miss();
    for (const VersionStatistics::Batch& b : v.batch_stats) {
      inference::InferBatchStatistics* batch = out->add_batch_stats();
      batch->set_batch_size(static_cast<uint64_t>(b.batch_size));
      fill(b.compute_input, batch->mutable_compute_input());
      fill(b.compute_infer, batch->mutable_compute_infer());
      fill(b.compute_output, batch->mutable_compute_output());
    }
  }
  return call.Finish(absl::OkStatus(), request->name());
}

}  // namespace maasd
