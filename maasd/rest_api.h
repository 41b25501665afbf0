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
#include "protocol.h"
#include "request_metrics.h"

namespace maasd {

// Routes HTTP requests to a ModelControl (which owns the maas::Server and the store).
//
// This class is thread-safe.
class RestApi {
 public:
  RestApi(ModelControl* control, RequestMetrics* metrics, ApiOptions options);

  // An HttpHandler.
  void Handle(HttpRequest request, Responder responder);

  // Where /metrics reads the count of open connections (the HttpServer, created after this).
  // Call before serving.
  void set_open_connections(std::function<int()> count) { open_connections_ = std::move(count); }

 private:
  struct Target;
  void Infer(HttpRequest request, const Target& target, Responder responder);
  // The error response of `status`, without the server's paths.
  HttpResponse ErrorOf(const absl::Status& status) const;
  // Counts an inference response in the metrics: by model and version when the model is
  // deployed, else in one series for every unknown name (clients choose names: a series each
  // would let them grow /metrics without bound).
  void Record(const std::string& model, int64_t version, bool success, absl::Duration took);

  ModelControl* const control_;
  RequestMetrics* const metrics_;
  const ApiOptions options_;
  std::function<int()> open_connections_;
};

}  // namespace maasd

#endif  // MAASD_REST_API_H_
