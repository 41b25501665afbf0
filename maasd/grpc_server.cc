#include "grpc_server.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "fmt/core.h"
#include "tls_files.h"

namespace maasd {

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
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert_file.empty()) {
    absl::StatusOr<TlsFiles> files =
        ReadTlsFiles(options.tls_cert_file, options.tls_key_file, options.tls_client_ca_file);
    if (!files.ok()) return files.status();
    grpc::SslServerCredentialsOptions ssl(
        files->client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                 : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = files->client_ca;
    ssl.pem_key_cert_pairs.push_back({files->key, files->cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, credentials, &port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(options.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(-1);  // Answers are as large as the model makes them.
  // Bounds on what one client can make gRPC hold: streams per connection (HTTP/2 "rapid
  // reset" opens and cancels them by the thousand) and memory in all.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  grpc::ResourceQuota quota("maasd");
  quota.Resize(options.memory_quota_bytes);
  builder.SetResourceQuota(quota);
  // Compressed requests are refused (UNIMPLEMENTED, naming the algorithm): this gRPC inflates
  // a message whole before it checks the size limit, so a small gzip bomb would cost
  // gigabytes. Responses are not compressed either.
  builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
  builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
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
