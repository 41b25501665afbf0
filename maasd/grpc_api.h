// The Open Inference Protocol (KServe v2) over gRPC: health, metadata, inference and the model
// repository RPCs of inference.GRPCInferenceService (maasd/inference.proto), on gRPC's
// callback API.
#ifndef MAASD_GRPC_API_H_
#define MAASD_GRPC_API_H_

#include <atomic>

#include "inference.grpc.pb.h"
#include "model_control.h"
#include "protocol.h"
#include "request_metrics.h"

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

}  // namespace maasd

#endif  // MAASD_GRPC_API_H_
