#include "rest_api.h"

#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "util/absl_compat.h"
#include "datatypes.h"
#include "fmt/core.h"
#include "infer_codec.h"
#include "maas/version.h"
#include "metrics.h"
#include "protocol.h"
#include "status_page.h"

namespace maasd {
namespace {

// Responses whose outputs hold up to this many bytes are encoded on the model's worker.
constexpr int64_t kEncodeOnWorkerBytes = 16 << 10;

// HTTP statuses of absl codes, as Triton and KServe use them.
int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
      return 503;  // Overload, a deadline passed in the queue, shutdown: retry elsewhere.
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 400;
    case absl::StatusCode::kUnimplemented:
      return 501;
    default:
      return 500;  // Internal (the model threw), DataLoss, Unknown.
  }
}

HttpResponse Json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse Error(int status, std::string_view message) {
  std::string body = "{\"error\":";
  AppendJsonString(message, body);
  body += '}';
  return Json(status, std::move(body));
}

HttpResponse Error(const absl::Status& status) {
  return Error(HttpStatusOf(status.code()), maas::internal::FromAbsl(status.message()));
}

std::string TensorsJson(const std::vector<TensorMetadata>& tensors) {
  std::vector<std::string> entries;
  for (const TensorMetadata& tensor : tensors) {
    entries.push_back(fmt::format("{{\"name\":{},\"datatype\":\"{}\",\"shape\":[{}]}}",
                                  JsonString(tensor.name), tensor.datatype,
                                  absl::StrJoin(tensor.shape, ",")));
  }
  return fmt::format("[{}]", absl::StrJoin(entries, ","));
}

// Triton's model configuration, as JSON.
std::string ConfigJson(const ModelConfiguration& config) {
  const auto tensors = [](const std::vector<TensorMetadata>& all) {
    std::vector<std::string> entries;
    for (const TensorMetadata& t : all) {
      entries.push_back(fmt::format("{{\"name\":{},\"data_type\":\"{}\",\"dims\":[{}]}}",
                                    JsonString(t.name), ConfigDatatype(t.datatype),
                                    absl::StrJoin(t.shape, ",")));
    }
    return absl::StrJoin(entries, ",");
  };
  return fmt::format(
      "{{\"name\":{},\"platform\":\"{}\",\"backend\":\"maas\",\"max_batch_size\":{},"
      "\"input\":[{}],\"output\":[{}]}}",
      JsonString(config.metadata.name), config.metadata.platform, config.max_batch_size,
      tensors(config.metadata.inputs), tensors(config.metadata.outputs));
}

std::string StatisticJson(const VersionStatistics::Duration& d) {
  return fmt::format("{{\"count\":{},\"ns\":{}}}", d.count, d.ns);
}

// Triton's statistics extension, as JSON.
std::string StatisticsJson(const std::vector<VersionStatistics>& all) {
  std::vector<std::string> entries;
  for (const VersionStatistics& v : all) {
    std::vector<std::string> batches;
    for (const VersionStatistics::Batch& b : v.batch_stats) {
      batches.push_back(fmt::format(
          "{{\"batch_size\":{},\"compute_input\":{},\"compute_infer\":{},"
          "\"compute_output\":{}}}",
          b.batch_size, StatisticJson(b.compute_input), StatisticJson(b.compute_infer),
          StatisticJson(b.compute_output)));
    }
    entries.push_back(fmt::format(
        "{{\"name\":{},\"version\":\"{}\",\"last_inference\":{},\"inference_count\":{},"
        "\"execution_count\":{},\"inference_stats\":{{\"success\":{},\"fail\":{},"
        "\"queue\":{},\"compute_input\":{},\"compute_infer\":{},\"compute_output\":{},"
        "\"cache_hit\":{{\"count\":0,\"ns\":0}},\"cache_miss\":{{\"count\":0,\"ns\":0}}}},"
        "\"batch_stats\":[{}]}}",
        JsonString(v.name), v.version, v.last_inference_ms, v.inference_count,
        v.execution_count, StatisticJson(v.success), StatisticJson(v.fail),
        StatisticJson(v.queue), StatisticJson(v.compute_input), StatisticJson(v.compute_infer),
        StatisticJson(v.compute_output), absl::StrJoin(batches, ",")));
  }
  return fmt::format("{{\"model_stats\":[{}]}}", absl::StrJoin(entries, ","));
}

void LogRequest(const HttpRequest& request, std::string_view model, int64_t version, int status,
                absl::Duration took) {
  std::string line = "{\"time\":";
  AppendJsonString(absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()), line);
  line += ",\"method\":";
  AppendJsonString(request.method, line);
  line += ",\"path\":";
  AppendJsonString(request.target, line);
  if (!model.empty()) {
    line += ",\"model\":";
    AppendJsonString(model, line);
    line += fmt::format(",\"version\":{}", version);
  }
  line +=
      fmt::format(",\"status\":{},\"duration_us\":{}}}\n", status, absl::ToInt64Microseconds(took));
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

// A parsed request path: /v2/models/<model>[/versions/<version>][/<action>].
struct RestApi::Target {
  std::string model;
  std::string version;
  std::string action;  // "", "ready", "infer", "stats"
};

RestApi::RestApi(ModelControl* control, RequestMetrics* metrics, ApiOptions options)
    : control_(control), metrics_(metrics), options_(std::move(options)) {}

HttpResponse RestApi::ErrorOf(const absl::Status& status) const {
  return Error(control_->ForClients(status));
}

void RestApi::Record(const std::string& model, int64_t version, bool success,
                     absl::Duration took) {
  const bool known = version != 0 || control_->server().Describe(model).ok();
  metrics_->Record({known ? model : "", version, "http"}, success, took);
}

void RestApi::Handle(HttpRequest request, Responder responder) {
  const absl::Time start = absl::Now();
  std::string path = request.target.substr(0, request.target.find('?'));
  // HEAD is GET without the body (the HttpServer leaves it out).
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  const auto reply = [&](HttpResponse response) {
    if (options_.log_requests) LogRequest(request, "", 0, response.status, absl::Now() - start);
    std::move(responder).Send(std::move(response));
  };
  // Whether `group` is closed to this request; then the 403 is sent.
  const auto denied = [&](ApiGroup group) {
    absl::Status allowed =
        options_.access.Check(group, [&](std::string_view name) -> std::optional<std::string_view> {
          for (const auto& [key, value] : request.headers) {
            if (key == name) return value;
          }
          return std::nullopt;
        });
    if (allowed.ok()) return false;
    reply(Error(403, maas::internal::FromAbsl(allowed.message())));
    return true;
  };
  const auto wrong_method = [&](std::string_view allowed) {
    HttpResponse response =
        Error(405, fmt::format("{} {} is not allowed; use {}", request.method, path, allowed));
    response.headers.emplace_back("Allow", std::string(allowed));
    reply(std::move(response));
  };

  if (path == "/" || path == "/index.html") {
    if (!get) return wrong_method("GET");
    if (denied(ApiGroup::kStatistics)) return;
    HttpResponse page;
    page.content_type = "text/html; charset=utf-8";
    page.body = std::string(StatusPageHtml());
    return reply(std::move(page));
  }
  if (path == "/metrics") {
    if (!get) return wrong_method("GET");
    if (denied(ApiGroup::kStatistics)) return;
    HttpResponse metrics;
    metrics.content_type = "text/plain; version=0.0.4; charset=utf-8";
    metrics.body = RenderMetrics(*control_, *metrics_, open_connections_ ? open_connections_() : 0);
    return reply(std::move(metrics));
  }
  if (path == "/v2" || path == "/v2/") {
    if (!get) return wrong_method("GET");
    if (denied(ApiGroup::kMetadata)) return;
    return reply(Json(200, fmt::format("{{\"name\":\"{}\",\"version\":\"{}\",\"extensions\":["
                                       "\"binary_tensor_data\",\"model_repository\","
                                       "\"statistics\"]}}",
                                       kServerName, MAAS_VERSION_STRING)));
  }
  if (path == "/v2/health/live") {
    if (!get) return wrong_method("GET");
    if (denied(ApiGroup::kHealth)) return;
    return reply(Json(200, "{\"live\":true}"));
  }
  if (path == "/v2/health/ready") {
    if (!get) return wrong_method("GET");
    if (denied(ApiGroup::kHealth)) return;
    const bool ready = control_->Ready();
    return reply(Json(ready ? 200 : 503, fmt::format("{{\"ready\":{}}}", ready)));
  }
  if (path == "/v2/status") {
    if (!get) return wrong_method("GET");
    if (denied(ApiGroup::kStatistics)) return;
    return reply(Json(200, StatusJson(*control_, *metrics_)));
  }
  if (path == "/v2/models/stats") {
    if (!get) return wrong_method("GET");
    if (denied(ApiGroup::kStatistics)) return;
    absl::StatusOr<std::vector<VersionStatistics>> all = Statistics(*control_, *metrics_, "", "");
    if (!all.ok()) return reply(ErrorOf(all.status()));
    return reply(Json(200, StatisticsJson(*all)));
  }
  if (path == "/v2/repository/index") {
    if (!post) return wrong_method("POST");
    if (denied(ApiGroup::kModelRepository)) return;
    const bool only_ready = request.body.find("\"ready\":true") != std::string::npos ||
                            request.body.find("\"ready\": true") != std::string::npos;
    absl::StatusOr<std::vector<IndexEntry>> index = RepositoryIndex(*control_, only_ready);
    if (!index.ok()) return reply(ErrorOf(index.status()));
    std::vector<std::string> entries;
    for (const IndexEntry& entry : *index) {
      std::string line = "{\"name\":" + JsonString(entry.name);
      if (!entry.version.empty()) line += ",\"version\":" + JsonString(entry.version);
      line +=
          fmt::format(",\"state\":\"{}\",\"reason\":{}}}", entry.state, JsonString(entry.reason));
      entries.push_back(std::move(line));
    }
    return reply(Json(200, fmt::format("[{}]", absl::StrJoin(entries, ","))));
  }
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  // "", "v2", "repository", "models", <m>, load|unload
  if (parts.size() == 6 && parts[1] == "v2" && parts[2] == "repository" && parts[3] == "models" &&
      (parts[5] == "load" || parts[5] == "unload")) {
    if (!post) return wrong_method("POST");
    if (denied(ApiGroup::kModelRepository)) return;
    auto shared = std::make_shared<Responder>(std::move(responder));
    auto done = [shared, request, start, this](absl::Status status) {
      HttpResponse response = status.ok() ? Json(200, "{}") : ErrorOf(status);
      if (options_.log_requests) {
        LogRequest(request, "", 0, response.status, absl::Now() - start);
      }
      std::move(*shared).Send(std::move(response));
    };
    if (parts[5] == "load") {
      control_->Load(parts[4], std::move(done));
    } else {
      control_->Unload(parts[4], std::move(done));
    }
    return;
  }
  // "", "v2", "models", <m> [, "versions", <v>] [, action]
  if (parts.size() < 4 || parts[1] != "v2" || parts[2] != "models" || parts[3].empty()) {
    return reply(Error(404, fmt::format("no such endpoint: {}", path)));
  }
  Target target;
  target.model = parts[3];
  size_t next = 4;
  if (parts.size() >= 6 && parts[4] == "versions") {
    target.version = parts[5];
    next = 6;
  }
  if (parts.size() == next + 1) {
    target.action = parts[next];
  } else if (parts.size() != next) {
    return reply(Error(404, fmt::format("no such endpoint: {}", path)));
  }
  if (target.action == "infer") {
    if (!post) return wrong_method("POST");
    if (denied(ApiGroup::kInference)) return;
    return Infer(std::move(request), target, std::move(responder));
  }
  if (!get) return wrong_method("GET");
  if (target.action == "ready") {
    if (denied(ApiGroup::kHealth)) return;
    absl::StatusOr<bool> ready = ModelReady(*control_, target.model, target.version);
    if (!ready.ok()) return reply(ErrorOf(ForProtocol(*control_, target.model, ready.status())));
    return reply(Json(*ready ? 200 : 503, fmt::format("{{\"name\":{},\"ready\":{}}}",
                                                      JsonString(target.model), *ready)));
  }
  if (target.action == "stats") {
    if (denied(ApiGroup::kStatistics)) return;
    absl::StatusOr<std::vector<VersionStatistics>> one =
        Statistics(*control_, *metrics_, target.model, target.version);
    if (!one.ok()) return reply(ErrorOf(one.status()));
    return reply(Json(200, StatisticsJson(*one)));
  }
  if (target.action == "config") {
    if (denied(ApiGroup::kMetadata)) return;
    absl::StatusOr<ModelConfiguration> config =
        ConfigureModel(*control_, target.model, target.version);
    if (!config.ok()) {
      return reply(ErrorOf(ForProtocol(*control_, target.model, config.status())));
    }
    return reply(Json(200, ConfigJson(*config)));
  }
  if (!target.action.empty()) {
    return reply(Error(404, fmt::format("no such endpoint: {}", path)));
  }
  if (denied(ApiGroup::kMetadata)) return;
  absl::StatusOr<ModelMetadata> metadata = DescribeModel(*control_, target.model, target.version);
  if (!metadata.ok()) {
    return reply(ErrorOf(ForProtocol(*control_, target.model, metadata.status())));
  }
  std::vector<std::string> versions;
  for (const std::string& v : metadata->versions) versions.push_back(JsonString(v));
  reply(Json(200, fmt::format("{{\"name\":{},\"versions\":[{}],\"platform\":\"{}\",\"inputs\":{},"
                              "\"outputs\":{}}}",
                              JsonString(metadata->name), absl::StrJoin(versions, ","), metadata->platform,
                              TensorsJson(metadata->inputs), TensorsJson(metadata->outputs))));
}

void RestApi::Infer(HttpRequest request, const Target& target, Responder responder) {
  const absl::Time start = absl::Now();
  struct Pending {
    Responder responder;
    InferRequest decoded;
    std::string model;
    HttpRequest http;  // For the log line (without its body).
    absl::Time start;
  };
  auto pending =
      std::make_shared<Pending>(Pending{std::move(responder), {}, target.model, {}, start});
  const auto finish = [this](Pending& p, HttpResponse response, int64_t version) {
    const absl::Duration took = absl::Now() - p.start;
    Record(p.model, version, response.status == 200, took);
    if (options_.log_requests) LogRequest(p.http, p.model, version, response.status, took);
    std::move(p.responder).Send(std::move(response));
  };
  pending->http.method = request.method;
  pending->http.target = request.target;
  if (request.bad_inference_header_length) {
    return finish(*pending, Error(400, "Inference-Header-Content-Length is not a number"), 0);
  }
  absl::StatusOr<InferRequest> decoded =
      DecodeInferRequest(request.body, request.inference_header_length);
  if (!decoded.ok()) return finish(*pending, ErrorOf(decoded.status()), 0);
  pending->decoded = *std::move(decoded);
  InferRequest& infer = pending->decoded;

  maas::ServerRequestOptions options =
      RequestOptionsFor(infer, target.version, options_.default_priority_level);
  std::vector<at::Tensor> inputs = std::move(infer.inputs);
  infer.inputs.clear();
  request.body.clear();
  request.body.shrink_to_fit();  // The tensors hold the data now.

  absl::Status submitted = control_->server().Submit(
      target.model, std::move(inputs), std::move(options),
      maas::ServedCallback([this, pending](maas::InferenceResult result, int64_t version) {
        int64_t bytes = 0;  // JSON takes a few times more; an error, next to nothing.
        if (result.ok()) {
          for (const at::Tensor& output : *result) bytes += output.nbytes();
        }
        auto respond = [this, pending, result = std::move(result), version]() mutable {
          Pending& p = *pending;
          HttpResponse response;
          if (!result.ok()) {
            response = ErrorOf(result.status());
          } else if (absl::StatusOr<maas::ModelSignature> signature =
                         control_->Signature(p.model, version);
                     !signature.ok()) {
            response = ErrorOf(signature.status());
          } else if (absl::StatusOr<EncodedResponse> encoded = EncodeInferResponse(
                         p.model, version, p.decoded, signature->outputs, *result,
                         options_.max_response_bytes);
                     !encoded.ok()) {
            response = ErrorOf(encoded.status());
          } else {
            response.body = std::move(encoded->body);
            if (encoded->json_size) {
              response.content_type = "application/octet-stream";
              response.headers.emplace_back("Inference-Header-Content-Length",
                                            std::to_string(*encoded->json_size));
            }
          }
          const absl::Duration took = absl::Now() - p.start;
          Record(p.model, version, response.status == 200, took);
          if (options_.log_requests) LogRequest(p.http, p.model, version, response.status, took);
          return response;
        };
        // A small answer is encoded and written here, on the model's worker: a few
        // microseconds, against a hand-off to the network thread that costs tens. A large one
        // is encoded on the network thread, so that the worker moves on to the next batch.
        Responder responder = std::move(pending->responder);
        if (bytes <= kEncodeOnWorkerBytes) {
          std::move(responder).SendNow(respond());
        } else {
          std::move(responder).SendFrom(std::move(respond));
        }
      }));
  if (!submitted.ok()) {
    finish(*pending, ErrorOf(ForProtocol(*control_, pending->model, submitted)), 0);
  }
}

}  // namespace maasd
