#include "grpc_api.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl_compat.h"
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
    reactor_->Finish(ToGrpc(status));
    api_->in_flight_.fetch_sub(1);
    return reactor_;
  }

  // Finishes an inference, counted in the metrics.
  void FinishInference(const absl::Status& status, const std::string& model,
                       int64_t version) const {
    api_->metrics_->Record({model, version, "grpc"}, status.ok(), absl::Now() - start_);
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
    : control_(control), metrics_(metrics), options_(options) {}

void GrpcApi::Stop() {
  stopping_.store(true);
  while (running_.load() > 0) absl::SleepFor(absl::Microseconds(200));
}

grpc::ServerUnaryReactor* GrpcApi::ServerLive(grpc::CallbackServerContext* context,
                                              const inference::ServerLiveRequest*,
                                              inference::ServerLiveResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ServerLive");
  response->set_live(true);  // Even while stopping: the process is alive.
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcApi::ServerReady(grpc::CallbackServerContext* context,
                                               const inference::ServerReadyRequest*,
                                               inference::ServerReadyResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ServerReady");
  response->set_ready(!running.refused() && control_->Ready());
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcApi::ModelReady(grpc::CallbackServerContext* context,
                                              const inference::ModelReadyRequest* request,
                                              inference::ModelReadyResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ModelReady");
  if (running.refused()) return call.Finish(Stopping());
  absl::StatusOr<bool> ready = maasd::ModelReady(*control_, request->name(), request->version());
  if (!ready.ok()) return call.Finish(ready.status(), request->name());
  response->set_ready(*ready);
  return call.Finish(absl::OkStatus(), request->name());
}

grpc::ServerUnaryReactor* GrpcApi::ServerMetadata(grpc::CallbackServerContext* context,
                                                  const inference::ServerMetadataRequest*,
                                                  inference::ServerMetadataResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ServerMetadata");
  response->set_name(std::string(kServerName));
  response->set_version(MAAS_VERSION_STRING);
  response->add_extensions("model_repository");
  return call.Finish(absl::OkStatus());
}

grpc::ServerUnaryReactor* GrpcApi::ModelMetadata(grpc::CallbackServerContext* context,
                                                 const inference::ModelMetadataRequest* request,
                                                 inference::ModelMetadataResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "ModelMetadata");
  if (running.refused()) return call.Finish(Stopping());
  absl::StatusOr<maasd::ModelMetadata> metadata =
      DescribeModel(*control_, request->name(), request->version());
  if (!metadata.ok()) return call.Finish(metadata.status(), request->name());
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
                                                            signature->outputs, *result, response)
                                  : signature.status();
        }
        call.FinishInference(status, request->model_name(), version);
      }));
  if (!submitted.ok()) call.FinishInference(submitted, model, 0);
  return call.reactor();
}

grpc::ServerUnaryReactor* GrpcApi::RepositoryIndex(grpc::CallbackServerContext* context,
                                                   const inference::RepositoryIndexRequest* request,
                                                   inference::RepositoryIndexResponse* response) {
  const Running running(stopping_, running_);
  const Call call(this, context, "RepositoryIndex");
  if (running.refused()) return call.Finish(Stopping());
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
  const std::string model = request->model_name();
  control_->Unload(model, [call, model](absl::Status status) { call.Finish(status, model); });
  return call.reactor();
}

GrpcServer::GrpcServer(std::unique_ptr<grpc::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

GrpcServer::~GrpcServer() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              GrpcApi* api) {
  // IPv6 addresses go in brackets, as in a URL.
  const std::string host = options.address.find(':') != std::string::npos
                               ? fmt::format("[{}]", options.address)
                               : options.address;
  const std::string address = fmt::format("{}:{}", host, options.port);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(options.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(-1);  // Answers are as large as the model makes them.
  builder.RegisterService(api);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(fmt::format("cannot serve gRPC on {} (in use?)", address));
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(server), port));
}

void GrpcServer::Shutdown(absl::Duration grace) {
  std::call_once(shutdown_once_, [&] {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  });
}

}  // namespace maasd
