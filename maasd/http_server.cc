#include "http_server.h"

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl_compat.h"
#include "cpu_cores.h"
#include "fmt/core.h"
#include "infer_codec.h"
#include "mutex.h"

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
  std::atomic<bool> stopping{false};
  std::atomic<int> connections{0};
  std::atomic<int64_t> in_flight{0};  // Requests read and not yet answered.
  maas::internal::Mutex mu;
  std::unordered_map<Responder::Connection*, std::weak_ptr<Responder::Connection>> open
      ABSL_GUARDED_BY(mu);
};

// One client connection. All its work runs on its socket's I/O thread; a Responder's Send from
// another thread is posted there.
class Responder::Connection : public std::enable_shared_from_this<Responder::Connection> {
 public:
  Connection(tcp::socket socket, HttpServerShared* shared)
      : stream_(std::move(socket)), shared_(shared) {}

  ~Connection() {
    shared_->connections.fetch_sub(1);
    maas::internal::MutexLock lock(&shared_->mu);
    shared_->open.erase(this);
  }

  void Start() {
    {
      maas::internal::MutexLock lock(&shared_->mu);
      shared_->open.emplace(this, weak_from_this());
    }
    ReadHeader();
  }

  // On shutdown: a connection waiting for a request closes; one serving a request closes
  // after its response.
  void CloseWhenIdle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kIdle) self->Close();
    });
  }

  void Post(absl::AnyInvocable<HttpResponse() &&> make) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), make = std::move(make)]() mutable {
                self->Write(std::move(make)());
              });
  }

  // Off the I/O thread, while this connection serves a request (no operation of its own is
  // pending on the socket, so a direct write cannot collide with one): writes what the
  // socket takes without blocking; the I/O thread writes the rest and reads the next request.
  void WriteNow(HttpResponse answer) {
    const bool keep_alive = keep_alive_ && !shared_->stopping.load();
    auto bytes = std::make_shared<std::string>(Serialize(answer, keep_alive));
    size_t sent = 0;
    const int fd = stream_.socket().native_handle();
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
              [self = shared_from_this(), bytes = std::move(bytes), sent, keep_alive] {
                if (sent == bytes->size()) return self->Written(error_code(), keep_alive);
                self->stream_.expires_after(Chrono(self->shared_->options.transfer_timeout));
                net::async_write(self->stream_, net::buffer(*bytes) + sent,
                                 [self, bytes, keep_alive](error_code ec, size_t) {
                                   self->Written(ec, keep_alive);
                                 });
              });
  }

  void Abandon() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->shared_->in_flight.fetch_sub(1);
      self->Close();
    });
  }

 private:
  enum class State { kIdle, kReading, kServing, kClosed };

  void ReadHeader() {
    if (shared_->stopping.load()) return Close();
    state_ = State::kIdle;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->options.max_header_bytes));
    parser_->body_limit(shared_->options.max_body_bytes);
    stream_.expires_after(Chrono(shared_->options.idle_timeout));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (ec) return Fail(ec);
    state_ = State::kReading;
    stream_.expires_after(Chrono(shared_->options.transfer_timeout));
    const auto& request = parser_->get();
    if (beast::iequals(request[http::field::expect], "100-continue")) {
      // curl asks before sending a large body; the answer lets it go on.
      continue_ = std::make_unique<http::response<http::empty_body>>(http::status::continue_,
                                                                     request.version());
      http::async_write(stream_, *continue_, [self = shared_from_this()](error_code ec, size_t) {
        if (ec) return self->Fail(ec);
        self->ReadBody();
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->OnRequest(ec); });
  }

  void OnRequest(error_code ec) {
    if (ec) return Fail(ec);
    http::request<http::string_body> message = parser_->release();
    parser_.reset();
    keep_alive_ = message.keep_alive();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    request.body = std::move(message.body());
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
    state_ = State::kServing;
    stream_.expires_never();  // The request's own deadline applies while it is served.
    shared_->in_flight.fetch_add(1);
    shared_->handler(std::move(request), Responder(shared_from_this()));
  }

  // Answers a protocol error, then closes; or just closes when the client went away or idled.
  void Fail(error_code ec) {
    if (ec == http::error::body_limit) {
      return WriteError(413, fmt::format("the request body is larger than the limit of {} bytes",
                                         shared_->options.max_body_bytes));
    }
    if (ec == http::error::header_limit) {
      return WriteError(431, fmt::format("the request headers are larger than the limit of {} "
                                         "bytes",
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
    shared_->in_flight.fetch_add(1);  // Write() counts it out.
    Write(ErrorResponse(status, message));
  }

  void Write(HttpResponse answer) {
    if (state_ == State::kClosed) {
      shared_->in_flight.fetch_sub(1);
      return;
    }
    response_.emplace();
    response_->result(static_cast<unsigned>(answer.status));
    response_->version(11);
    response_->set(http::field::server, "maasd");
    response_->set(http::field::content_type, answer.content_type);
    for (auto& [name, value] : answer.headers) response_->set(name, value);
    response_->body() = std::move(answer.body);
    response_->keep_alive(keep_alive_ && !shared_->stopping.load());
    response_->prepare_payload();
    stream_.expires_after(Chrono(shared_->options.transfer_timeout));
    http::async_write(stream_, *response_, [self = shared_from_this()](error_code ec, size_t) {
      self->shared_->in_flight.fetch_sub(1);
      const bool again = !ec && self->response_->keep_alive();
      self->response_.reset();
      if (again) {
        self->ReadHeader();
      } else {
        self->Close();
      }
    });
  }

  // The response whole, as bytes (for WriteNow).
  static std::string Serialize(const HttpResponse& answer, bool keep_alive) {
    const auto reason = http::obsolete_reason(static_cast<http::status>(answer.status));
    std::string out =
        fmt::format("HTTP/1.1 {} {}\r\nServer: maasd\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
                    answer.status, std::string_view(reason.data(), reason.size()),
                    answer.content_type, answer.body.size());
    for (const auto& [name, value] : answer.headers) out += fmt::format("{}: {}\r\n", name, value);
    if (!keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
    out += answer.body;
    return out;
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
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  HttpServerShared* const shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<http::response<http::empty_body>> continue_;
  std::optional<http::response<http::string_body>> response_;
  bool keep_alive_ = true;
  State state_ = State::kIdle;
};

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
  std::vector<std::thread> threads;
  size_t next_context = 0;  // Only the accepting thread touches it.
  int port = 0;
  std::once_flag shutdown_once;

  void Accept() {
    net::io_context& target = *contexts[next_context];
    next_context = (next_context + 1) % contexts.size();
    acceptor->async_accept(target, [this](error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || shared.stopping.load()) return;
      if (!ec) {
        if (shared.connections.fetch_add(1) >= shared.options.max_connections) {
          shared.connections.fetch_sub(1);
          error_code ignored;
          socket.close(ignored);
        } else {
          error_code ignored;
          socket.set_option(tcp::no_delay(true), ignored);
          std::make_shared<Responder::Connection>(std::move(socket), &shared)->Start();
        }
      }
      Accept();
    });
  }
};

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
