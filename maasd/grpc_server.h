// The gRPC server of a GrpcApi: where it listens, TLS, and the transport's limits.
#ifndef MAASD_GRPC_SERVER_H_
#define MAASD_GRPC_SERVER_H_

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc_api.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace maasd {

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
//
// The RPCs run on gRPC's callback API. Serving them instead from completion queues polled by
// threads of maasd's own, as Triton does, was built and measured with perf_analyzer on gRPC
// 1.51 (docs/maasd.md, Performance): with two threads no faster; with one, ~25 us less per
// small request, but quick models then run on the only network thread and starve batching.
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

#endif  // MAASD_GRPC_SERVER_H_
