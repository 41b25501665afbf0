// A small HTTP/1.1 server (Boost.Beast over Asio): keep-alive, bounded requests, and handlers
// that answer later from any thread. The transport of maasd's REST API, metrics and status page.
#ifndef MAASD_HTTP_SERVER_H_
#define MAASD_HTTP_SERVER_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace maasd {

struct HttpServerOptions {
  // The address to listen on; "0.0.0.0" for every interface (containers). Default: loopback.
  std::string address = "127.0.0.1";
  // The TCP port; 0 picks a free one (see HttpServer::port). Default: 8000.
  int port = 8000;
  // I/O threads, each serving its share of the connections. They parse and encode requests;
  // models run on the Server's workers. 0: min(4, cores). Default: 0.
  int threads = 0;
  // Larger bodies are refused with 413 before they are read. Default: 64 MiB.
  size_t max_body_bytes = size_t{64} << 20;
  // Larger request lines and headers are refused with 431. Default: 16 KiB.
  size_t max_header_bytes = size_t{16} << 10;
  // A connection is closed when its next request's headers do not arrive within this time
  // (an idle keep-alive connection, or a client that trickles bytes). Default: 60 s.
  absl::Duration idle_timeout = absl::Seconds(60);
  // ... or when a request's body, or the reading of a response, takes longer. Default: 30 s.
  absl::Duration transfer_timeout = absl::Seconds(30);
  // Connections beyond this many are closed as soon as they are accepted. Default: 10000.
  int max_connections = 10000;
  // Request headers handed to the handler in HttpRequest::headers (lowercase names).
  // Default: none.
  std::vector<std::string> forwarded_headers;
  // TLS: the PEM files of the server's certificate (chain) and key. Empty: plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Mutual TLS: clients must present a certificate signed by these CAs (PEM). Empty: none
  // asked for.
  std::string tls_client_ca_file;
};

// One request, read whole.
struct HttpRequest {
  std::string method;  // "GET", "HEAD", "POST", ...: the response to HEAD goes without body.
  std::string target;  // The path and query, as sent ("/v2/models/mlp/infer").
  std::string body;
  // The headers of HttpServerOptions::forwarded_headers that the request has: (lowercase
  // name, value).
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<size_t> inference_header_length;  // Inference-Header-Content-Length, parsed.
  bool bad_inference_header_length = false;       // ... present but not a number.
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // Extra headers.
};

// The way back to the client of one request: exactly one Send, SendNow or SendFrom, from any
// thread.
// Dropping it unused closes the connection (the client sees it fail rather than wait).
class Responder {
 public:
  class Connection;
  explicit Responder(std::shared_ptr<Connection> connection);
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;
  ~Responder();

  // Sends `response` from the connection's I/O thread.
  void Send(HttpResponse response) &&;
  // Writes `response` on the calling thread when the socket takes it at once (what a small
  // response does); what does not fit goes on from the I/O thread. It saves a hand-off
  // between threads (tens of microseconds) when called from a model's worker.
  void SendNow(HttpResponse response) &&;
  // Runs `make` on the connection's I/O thread and sends what it returns: work such as
  // encoding a large response stays off the thread that calls (a model's worker).
  void SendFrom(absl::AnyInvocable<HttpResponse() &&> make) &&;

 private:
  std::shared_ptr<Connection> connection_;
};

// Called on an I/O thread for each request. It must not block: it answers through `responder`,
// at once or later from another thread.
using HttpHandler = absl::AnyInvocable<void(HttpRequest request, Responder responder)>;

// Serves HTTP/1.1 on one port, over TLS when given a certificate. Protocol errors are answered
// by the server itself, as {"error": "..."}: 400 (malformed request, a Transfer-Encoding other
// than chunked), 413 (body above max_body_bytes), 431 (headers, or a chunk's header or the
// trailers, above max_header_bytes); then the connection closes. No request reads more than
// max_header_bytes + 64 KiB ahead of what it has parsed.
//
// Lifetime: every Responder must be used or dropped before the server is destroyed (after
// Shutdown, a response is no longer sent, but the Responder must still go first).
//
// This class is thread-safe.
class HttpServer {
 public:
  // Listens and starts the I/O threads. `handler` must outlive the server.
  // Unavailable: the address or port cannot be bound (the message says why). InvalidArgument:
  // the TLS files cannot be read or used.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           HttpHandler handler);
  ~HttpServer();  // Shutdown(zero grace) if not done.

  // The port it listens on (the chosen one when options.port was 0).
  int port() const;
  // Connections open now.
  int connections() const;

  // Stops accepting connections and requests, closes idle connections, lets the requests being
  // served finish (for at most `grace`), then closes everything and joins the threads.
  void Shutdown(absl::Duration grace);

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace maasd

#endif  // MAASD_HTTP_SERVER_H_
