// The Open Inference Protocol (KServe v2) over HTTP: health, metadata, inference (JSON and the
// binary tensor data extension), the model repository and statistics extensions; plus
// /metrics and the status page.
#ifndef MAASD_REST_API_H_
#define MAASD_REST_API_H_

#include <functional>
#include <memory>
#include <string>

#include "http_server.h"
#include "model_control.h"
#include "request_metrics.h"

namespace maasd {

struct RestApiOptions {
  // The priority level of requests that give none (the protocol's priority 0). Levels run
  // from 1, the highest; a request of level n runs before queued requests of levels > n.
  // Default: 1 (unprioritized requests are served first; clients lower theirs with 2, 3, ...).
  int64_t default_priority_level = 1;
  // Writes one JSON line per request to stderr (method, path, model, version, status, time).
  bool log_requests = false;
};

// Routes HTTP requests to a ModelControl (which owns the maas::Server and the store).
//
// This class is thread-safe.
class RestApi {
 public:
  RestApi(ModelControl* control, RequestMetrics* metrics, RestApiOptions options);

  // An HttpHandler.
  void Handle(HttpRequest request, Responder responder);

  // Where /metrics reads the count of open connections (the HttpServer, created after this).
  // Call before serving.
  void set_open_connections(std::function<int()> count) { open_connections_ = std::move(count); }

 private:
  struct Target;
  void Infer(HttpRequest request, const Target& target, Responder responder);

  ModelControl* const control_;
  RequestMetrics* const metrics_;
  const RestApiOptions options_;
  std::function<int()> open_connections_;
};

}  // namespace maasd

#endif  // MAASD_REST_API_H_
