#include "infer_command.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>

#include "fmt/core.h"
#include "util/json.h"

namespace maas::cli {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

absl::StatusCode CodeOfHttp(int status) {
  switch (status) {
    case 400:
    case 413:
      return absl::StatusCode::kInvalidArgument;
    case 404:
      return absl::StatusCode::kNotFound;
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

absl::Status Infer(const InferRequest& request) {
  constexpr std::string_view kScheme = "http://";
  if (request.url.rfind(kScheme, 0) != 0) {
    return absl::InvalidArgumentError(
        fmt::format("--url '{}' is not http://HOST:PORT (maasd's REST address)", request.url));
  }
  std::string host_port = request.url.substr(kScheme.size());
  while (!host_port.empty() && host_port.back() == '/') host_port.pop_back();
  const size_t colon = host_port.rfind(':');
  const std::string host = colon == std::string::npos ? host_port : host_port.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : host_port.substr(colon + 1);
  const std::string target =
      request.version.empty()
          ? fmt::format("/v2/models/{}/infer", request.model)
          : fmt::format("/v2/models/{}/versions/{}/infer", request.model, request.version);
  try {
    net::io_context context;
    beast::tcp_stream stream(context);
    stream.expires_after(std::chrono::microseconds(absl::ToInt64Microseconds(request.timeout)));
    net::ip::tcp::resolver resolver(context);
    stream.connect(resolver.resolve(host, port));
    http::request<http::string_body> post(http::verb::post, target, 11);
    post.set(http::field::host, host);
    post.set(http::field::content_type, "application/json");
    post.body() = request.body;
    post.prepare_payload();
    http::write(stream, post);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(size_t{1} << 30);
    http::read(stream, buffer, parser);
    const http::response<http::string_body>& response = parser.get();
    const int status = static_cast<int>(response.result_int());
    if (status == 200) {
      std::string body = response.body();
      if (body.empty() || body.back() != '\n') body += '\n';
      std::fwrite(body.data(), 1, body.size(), stdout);
      return absl::OkStatus();
    }
    std::string message = response.body();
    if (absl::StatusOr<internal::Json> json = internal::ParseJson(response.body());
        json.ok() && json->is_object() && json->contains("error") && (*json)["error"].is_string()) {
      message = (*json)["error"].get<std::string>();
    }
    return absl::Status(CodeOfHttp(status), fmt::format("maasd answered {}: {}", status, message));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        fmt::format("cannot reach maasd at {}: {}", request.url, e.what()));
  }
}

}  // namespace maas::cli
