#include "http_server.h"

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <array>
#include <charconv>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "util/absl_compat.h"
#include "content_coding.h"
#include "util/cpu_cores.h"
#include "fmt/core.h"
#include "infer_codec.h"
#include "util/log.h"
#include "tls_files.h"
#include "util/utf8.h"
#include "util/mutex.h"

namespace maasd {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

HttpResponse ErrorResponse(int status, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = "{\"error\":";
  AppendJsonString(message, response.body);
  response.body += '}';
  return response;
}

}  // namespace

struct HttpServerShared {
  HttpServerOptions options;
  HttpHandler handler;
  std::optional<net::ssl::context> tls;  // Set when serving HTTPS.
  std::atomic<bool> stopping{false};
  std::atomic<int> connections{0};
  std::atomic<int64_t> in_flight{0};  // Requests read and not yet answered.
  maas::internal::Mutex mu;
  std::unordered_map<Responder::Connection*, std::weak_ptr<Responder::Connection>> open
      ABSL_GUARDED_BY(mu);
};

// What a Responder asks of its connection, whichever the transport.
class Responder::Connection {
 public:
  virtual ~Connection() = default;
  // Sends what `make` returns, from the connection's I/O thread.
  virtual void Post(absl::AnyInvocable<HttpResponse() &&> make) = 0;
  // Writes from the calling thread what the socket takes at once (see Responder::SendNow).
  virtual void WriteNow(HttpResponse answer) = 0;
  // The request will not be answered: closes the connection.
  virtual void Abandon() = 0;
  // On shutdown: closes when waiting for a request; after its response when serving one.
  virtual void CloseWhenIdle() = 0;
};

namespace {

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The response's status line and headers; its body goes after them, unless it answers HEAD
// (whose response says the length of the body a GET would get, and sends none).
std::string ResponseHead(const HttpResponse& answer, bool keep_alive) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(answer.status));
  std::string out =
      fmt::format("HTTP/1.1 {} {}\r\nServer: maasd\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
                  answer.status, std::string_view(reason.data(), reason.size()),
                  answer.content_type, answer.body.size());
  for (const auto& [name, value] : answer.headers) out += fmt::format("{}: {}\r\n", name, value);
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

std::string_view Trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// One client connection over `Stream` (plain TCP or TLS). All its work runs on its socket's
// I/O thread; a Responder's Send from another thread is posted there.
template <typename Stream>
class ConnectionOn final : public Responder::Connection,
                           public std::enable_shared_from_this<ConnectionOn<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  // Reads ahead of the parser at most this much beyond the header limit: a chunk extension or
  // a trailer without a line end cannot grow the buffer further.
  static constexpr size_t kReadAhead = size_t{64} << 10;

  template <typename... StreamArgs>
  ConnectionOn(HttpServerShared* shared, StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...),
        shared_(shared),
        buffer_(shared->options.max_header_bytes + kReadAhead) {}

  ~ConnectionOn() override {
    shared_->connections.fetch_sub(1);
    maas::internal::MutexLock lock(&shared_->mu);
    shared_->open.erase(this);
  }

  void Start() {
    {
      maas::internal::MutexLock lock(&shared_->mu);
      shared_->open.emplace(this, this->weak_from_this());
    }
    if constexpr (kTls) {
      Socket().expires_after(Chrono(shared_->options.transfer_timeout));
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](error_code ec) {
                                if (ec) return self->Close();  // Plain text, a bad certificate.
                                self->ReadHeader();
                              });
    } else {
      ReadHeader();
    }
  }

  void CloseWhenIdle() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->state_ == State::kIdle) self->Close();
    });
  }

  void Post(absl::AnyInvocable<HttpResponse() &&> make) override {
    net::post(stream_.get_executor(),
              [self = this->shared_from_this(), make = std::move(make)]() mutable {
                self->Write(std::move(make)());
              });
  }

  // Off the I/O thread, while this connection serves a request (no operation of its own is
  // pending on the socket, so a direct write cannot collide with one): writes what the
  // socket takes without blocking; the I/O thread writes the rest and reads the next request.
  // Over TLS the I/O thread writes it all (the TLS state is the I/O thread's).
  void WriteNow(HttpResponse answer) override {
    if constexpr (kTls) {
      Post([answer = std::move(answer)]() mutable { return std::move(answer); });
    } else {
      const bool keep_alive = keep_alive_ && !shared_->stopping.load();
      auto bytes = std::make_shared<std::string>(ResponseHead(answer, keep_alive));
      if (!head_) *bytes += answer.body;
      size_t sent = 0;
      const int fd = Socket().socket().native_handle();
      while (sent < bytes->size()) {
        const ssize_t n =
            ::send(fd, bytes->data() + sent, bytes->size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          break;  // Would block, or failed: the I/O thread carries on (and sees a failure).
        }
      }
      net::post(stream_.get_executor(),
                [self = this->shared_from_this(), bytes = std::move(bytes), sent, keep_alive] {
                  if (sent == bytes->size()) return self->Written(error_code(), keep_alive);
                  self->Socket().expires_after(Chrono(self->shared_->options.transfer_timeout));
                  net::async_write(self->stream_, net::buffer(*bytes) + sent,
                                   [self, bytes, keep_alive](error_code ec, size_t) {
                                     self->Written(ec, keep_alive);
                                   });
                });
    }
  }

  void Abandon() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      self->shared_->in_flight.fetch_sub(1);
      self->Close();
    });
  }

 private:
  enum class State { kIdle, kReading, kServing, kClosed };

  beast::tcp_stream& Socket() { return beast::get_lowest_layer(stream_); }

  void ReadHeader() {
    if (shared_->stopping.load()) return Close();
    state_ = State::kIdle;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->options.max_header_bytes));
    parser_->body_limit(shared_->options.max_body_bytes);
    Socket().expires_after(Chrono(shared_->options.idle_timeout));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (ec) return Fail(ec);
    state_ = State::kReading;
    Socket().expires_after(Chrono(shared_->options.transfer_timeout));
    const auto& request = parser_->get();
    // A body framed any other way than chunked or by its length cannot be delimited: the spec
    // (RFC 9112 6.3) says 400 and close; reading on would take the body for the next request.
    if (const auto coding = request.find(http::field::transfer_encoding);
        coding != request.end() && !beast::iequals(Trimmed(coding->value()), "chunked")) {
      return WriteError(400, fmt::format("Transfer-Encoding '{}' is not supported; send the "
                                         "body as is (Content-Length) or chunked",
                                         maas::internal::ValidUtf8(coding->value())));
    }
    if (beast::iequals(request[http::field::expect], "100-continue")) {
      // curl asks before sending a large body; the answer lets it go on.
      continue_ = std::make_unique<http::response<http::empty_body>>(http::status::continue_,
                                                                     request.version());
      http::async_write(stream_, *continue_,
                        [self = this->shared_from_this()](error_code ec, size_t) {
                          if (ec) return self->Fail(ec);
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, size_t) { self->OnRequest(ec); });
  }

  void OnRequest(error_code ec) {
    if (ec) return Fail(ec);
    http::request<http::string_body> message = parser_->release();
    parser_.reset();
    keep_alive_ = message.keep_alive();
    head_ = message.method() == http::verb::head;
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    request.body = std::move(message.body());
    // A compressed body is inflated here, under the same limit as any body: a bomb stops at
    // the limit (413), not after.
    if (const auto coding = message.find(http::field::content_encoding);
        coding != message.end() && !beast::iequals(Trimmed(coding->value()), "identity")) {
      const std::string_view name = Trimmed(coding->value());
      if (!IsSupportedCoding(name)) {
        return WriteError(415, fmt::format("Content-Encoding '{}' is not supported; send gzip, "
                                           "deflate or no encoding",
                                           maas::internal::ValidUtf8(name)));
      }
      absl::StatusOr<std::string> inflated =
          Inflate(request.body, name, shared_->options.max_body_bytes);
      if (!inflated.ok()) {
        return WriteError(absl::IsResourceExhausted(inflated.status()) ? 413 : 400,
                          std::string(maas::internal::FromAbsl(inflated.status().message())));
      }
      request.body = *std::move(inflated);
    }
    const auto header = message.find("Inference-Header-Content-Length");
    if (header != message.end()) {
      const std::string_view text = header->value();
      size_t length = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), length);
      if (error != std::errc() || end != text.data() + text.size()) {
        request.bad_inference_header_length = true;
      } else {
        request.inference_header_length = length;
      }
    }
    for (const std::string& name : shared_->options.forwarded_headers) {
      if (const auto field = message.find(name); field != message.end()) {
        request.headers.emplace_back(name, std::string(field->value()));
      }
    }
    state_ = State::kServing;
    Socket().expires_never();  // The request's own deadline applies while it is served.
    shared_->in_flight.fetch_add(1);
    shared_->handler(std::move(request), Responder(this->shared_from_this()));
  }

  // Answers a protocol error, then closes; or just closes when the client went away or idled.
  void Fail(error_code ec) {
    if (ec == http::error::body_limit) {
      return WriteError(413, fmt::format("the request body is larger than the limit of {} bytes",
                                         shared_->options.max_body_bytes));
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return WriteError(431, fmt::format("the request headers (or a chunk header, or the "
                                         "trailers) are larger than the limit of {} bytes",
                                         shared_->options.max_header_bytes));
    }
    if (ec.category() == make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return WriteError(400, fmt::format("malformed HTTP request: {}", ec.message()));
    }
    Close();  // End of stream, timeout, reset: nobody to answer.
  }

  void WriteError(int status, std::string message) {
    keep_alive_ = false;
    head_ = false;
    shared_->in_flight.fetch_add(1);  // Write() counts it out.
    parser_.reset();
    Write(ErrorResponse(status, message));
  }

  void Write(HttpResponse answer) {
    if (state_ == State::kClosed) {
      shared_->in_flight.fetch_sub(1);
      return;
    }
    const bool keep_alive = keep_alive_ && !shared_->stopping.load();
    response_head_ = ResponseHead(answer, keep_alive);
    response_body_ = head_ ? std::string() : std::move(answer.body);
    const std::array<net::const_buffer, 2> buffers = {net::buffer(response_head_),
                                                      net::buffer(response_body_)};
    Socket().expires_after(Chrono(shared_->options.transfer_timeout));
    net::async_write(stream_, buffers,
                     [self = this->shared_from_this(), keep_alive](error_code ec, size_t) {
                       self->response_head_.clear();
                       std::string().swap(self->response_body_);  // Its memory goes now.
                       self->Written(ec, keep_alive);
                     });
  }

  // After a response went out: the next request, or the end.
  void Written(error_code ec, bool keep_alive) {
    shared_->in_flight.fetch_sub(1);
    if (!ec && keep_alive && state_ != State::kClosed) {
      ReadHeader();
    } else {
      Close();
    }
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    error_code ignored;
    Socket().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Socket().socket().close(ignored);
  }

  Stream stream_;
  HttpServerShared* const shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<http::response<http::empty_body>> continue_;
  std::string response_head_;
  std::string response_body_;
  bool keep_alive_ = true;
  bool head_ = false;  // The request being served is a HEAD.
  State state_ = State::kIdle;
};

}  // namespace

Responder::Responder(std::shared_ptr<Connection> connection) : connection_(std::move(connection)) {}
Responder::Responder(Responder&&) noexcept = default;
Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (connection_) connection_->Abandon();
    connection_ = std::move(other.connection_);
  }
  return *this;
}
Responder::~Responder() {
  if (connection_) connection_->Abandon();
}

void Responder::Send(HttpResponse response) && {
  std::shared_ptr<Connection> connection = std::move(connection_);
  connection->Post([response = std::move(response)]() mutable { return std::move(response); });
}

void Responder::SendNow(HttpResponse response) && {
  std::shared_ptr<Connection> connection = std::move(connection_);
  connection->WriteNow(std::move(response));
}

void Responder::SendFrom(absl::AnyInvocable<HttpResponse() &&> make) && {
  std::shared_ptr<Connection> connection = std::move(connection_);
  connection->Post(std::move(make));
}

struct HttpServer::Impl {
  HttpServerShared shared;
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> accept_retry;  // On the acceptor's thread.
  absl::Duration accept_backoff = absl::ZeroDuration();  // Only the accepting thread.
  std::vector<std::thread> threads;
  size_t next_context = 0;  // Only the accepting thread touches it.
  int port = 0;
  std::once_flag shutdown_once;

  void Accept() {
    net::io_context& target = *contexts[next_context];
    next_context = (next_context + 1) % contexts.size();
    acceptor->async_accept(target, [this](error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || shared.stopping.load()) return;
      if (ec) return AcceptLater(ec);
      accept_backoff = absl::ZeroDuration();
      if (shared.connections.fetch_add(1) >= shared.options.max_connections) {
        shared.connections.fetch_sub(1);
        error_code ignored;
        socket.close(ignored);
      } else {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        if (shared.tls) {
          std::make_shared<ConnectionOn<TlsStream>>(&shared, std::move(socket), *shared.tls)
              ->Start();
        } else {
          std::make_shared<ConnectionOn<beast::tcp_stream>>(&shared, std::move(socket))->Start();
        }
      }
      Accept();
    });
  }

  // accept() failed (out of descriptors, most often): retrying at once would fail at once, in
  // a loop that keeps a core busy. Waits 10 ms, doubling up to 1 s while it keeps failing.
  void AcceptLater(error_code ec) {
    const bool first = accept_backoff == absl::ZeroDuration();
    accept_backoff = first ? absl::Milliseconds(10)
                           : std::min(accept_backoff * 2, absl::Seconds(1));
    if (first) {
      maas::internal::Log(
          maas::LogSeverity::kWarning,
          fmt::format("cannot accept HTTP connections: {}; retrying after 10 ms to 1 s (at the "
                      "descriptor limit: raise it, ulimit -n, or lower --max-connections)",
                      ec.message()));
    }
    accept_retry->expires_after(Chrono(accept_backoff));
    accept_retry->async_wait([this](error_code wait_error) {
      if (wait_error || shared.stopping.load()) return;
      Accept();
    });
  }
};

// The TLS context of `options`; minimum TLS 1.2.
absl::StatusOr<net::ssl::context> TlsContext(const HttpServerOptions& options) {
  absl::StatusOr<TlsFiles> files =
      ReadTlsFiles(options.tls_cert_file, options.tls_key_file, options.tls_client_ca_file);
  if (!files.ok()) return files.status();
  net::ssl::context context(net::ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  context.set_options(net::ssl::context::default_workarounds | net::ssl::context::single_dh_use);
  error_code ec;
  context.use_certificate_chain(net::buffer(files->cert), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        fmt::format("--tls-cert={}: {}", options.tls_cert_file, ec.message()));
  }
  context.use_private_key(net::buffer(files->key), net::ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        fmt::format("--tls-key={}: {}", options.tls_key_file, ec.message()));
  }
  if (!files->client_ca.empty()) {
    context.add_certificate_authority(net::buffer(files->client_ca), ec);
    if (ec) {
      return absl::InvalidArgumentError(
          fmt::format("--tls-client-ca={}: {}", options.tls_client_ca_file, ec.message()));
    }
    context.set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
  }
  return context;
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              HttpHandler handler) {
  auto impl = std::make_unique<Impl>();
  int threads = options.threads;
  if (threads <= 0) {
    threads = std::min(4, maas::internal::AvailableCores());
  }
  impl->shared.options = std::move(options);
  impl->shared.handler = std::move(handler);
  if (!impl->shared.options.tls_cert_file.empty()) {
    absl::StatusOr<net::ssl::context> tls = TlsContext(impl->shared.options);
    if (!tls.ok()) return tls.status();
    impl->shared.tls.emplace(*std::move(tls));
  }
  for (int i = 0; i < threads; ++i) {
    impl->contexts.push_back(std::make_unique<net::io_context>(1));
    impl->work.push_back(net::make_work_guard(*impl->contexts.back()));
  }
  const HttpServerOptions& opts = impl->shared.options;
  error_code ec;
  const net::ip::address address = net::ip::make_address(opts.address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        fmt::format("--http-address {} is not an IP address: {}", opts.address, ec.message()));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(opts.port));
  impl->acceptor = std::make_unique<tcp::acceptor>(*impl->contexts.front());
  impl->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(endpoint, ec);
  if (!ec) impl->acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        fmt::format("cannot listen on {}:{}: {}", opts.address, opts.port, ec.message()));
  }
  impl->port = impl->acceptor->local_endpoint().port();
  impl->accept_retry = std::make_unique<net::steady_timer>(*impl->contexts.front());
  Impl* raw = impl.get();
  net::post(*impl->contexts.front(), [raw] { raw->Accept(); });
  for (auto& context : impl->contexts) {
    impl->threads.emplace_back([context = context.get()] { context->run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }
int HttpServer::connections() const { return impl_->shared.connections.load(); }

void HttpServer::Shutdown(absl::Duration grace) {
  std::call_once(impl_->shutdown_once, [&] {
    Impl& impl = *impl_;
    impl.shared.stopping.store(true);
    net::post(*impl.contexts.front(), [&impl] {
      error_code ignored;
      impl.acceptor->close(ignored);
      impl.accept_retry->cancel();
    });
    std::vector<std::shared_ptr<Responder::Connection>> open;
    {
      maas::internal::MutexLock lock(&impl.shared.mu);
      for (auto& [raw, weak] : impl.shared.open) {
        if (auto connection = weak.lock()) open.push_back(std::move(connection));
      }
    }
    for (auto& connection : open) connection->CloseWhenIdle();
    open.clear();
    const absl::Time give_up = absl::Now() + grace;
    while (impl.shared.in_flight.load() > 0 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    impl.work.clear();
    for (auto& context : impl.contexts) context->stop();
    for (std::thread& thread : impl.threads) thread.join();
  });
}

}  // namespace maasd
