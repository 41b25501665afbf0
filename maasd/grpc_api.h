// The Open Inference Protocol (KServe v2) over gRPC: health, metadata, inference and the model
// repository RPCs of inference.GRPCInferenceService (maasd/inference.proto), on gRPC's
// callback API.
#ifndef MAASD_GRPC_API_H_
#define MAASD_GRPC_API_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inference.grpc.pb.h"
#include "model_control.h"
#include "protocol.h"
#include "request_metrics.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace maasd {

// Serves the RPCs. An RPC never blocks a gRPC thread: ModelInfer submits to the Server and
// finishes from the model's worker when the answer comes (a quick, idle model runs at once, on
// the calling thread); load and unload finish from the control thread.
//
// This class is thread-safe.
class GrpcApi final : public inference::GRPCInferenceService::CallbackService {
 public:
  GrpcApi(ModelControl* control, RequestMetrics* metrics, ApiOptions options);

  // Refuses the RPCs that start from now on (Unavailable) and waits for those running on a
  // gRPC thread to hand their work over: after it returns, nothing here touches the
  // ModelControl but the answers still to come, which the Server gives when it stops.
  void Stop();

  // The RPCs accepted and not yet answered.
  int in_flight() const { return in_flight_.load(); }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* context, const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(
      grpc::CallbackServerContext* context, const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* context, const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;

 private:
  class Call;

  ModelControl* const control_;
  RequestMetrics* const metrics_;
  const ApiOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_{0};            // RPC handlers on a gRPC thread now.
  mutable std::atomic<int> in_flight_{0};  // Counted by Call.
};

struct GrpcServerOptions {
  // Where to listen; "0.0.0.0" in a container. Default: 127.0.0.1.
  std::string address = "127.0.0.1";
  // 0 picks a free port; -1 serves no gRPC. Default: 8001 (Triton's).
  int port = 8001;
  // Larger request messages are refused (ResourceExhausted). Default: 64 MiB.
  size_t max_message_bytes = size_t{64} << 20;
  // Streams (RPCs) one connection may have open at once; a client that opens more waits
  // (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS). Default: 100.
  int max_concurrent_streams = 100;
  // Memory gRPC's transport may hold for all connections together (gRPC's resource quota):
  // beyond it, gRPC shrinks its buffers and refuses new streams. Default: 1 GiB.
  size_t memory_quota_bytes = size_t{1} << 30;
  // TLS: the PEM files of the server's certificate (chain) and key. Empty: plain text.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Mutual TLS: clients must present a certificate signed by these CAs (PEM). Empty: none
  // asked for.
  std::string tls_client_ca_file;
};

// A running gRPC server of a GrpcApi.
class GrpcServer {
 public:
  // Listens and serves `api`, which must outlive the server. Unavailable: the address or port
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                           GrpcApi* api);
  ~GrpcServer();

  int port() const { return port_; }

  // Stops accepting RPCs, lets the accepted ones finish for up to `grace`, then cancels them
  // and waits until every accepted RPC is answered (those waiting for a model are answered when
  // the Server stops: call from another thread than the one that stops it).
  void Shutdown(absl::Duration grace);

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, int port);

  std::unique_ptr<grpc::Server> server_;
  const int port_;
  std::once_flag shutdown_once_;
};

}  // namespace maasd

#endif  // MAASD_GRPC_API_H_
