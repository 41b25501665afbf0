// `maas infer`: one inference request to a running maasd over REST, JSON in, JSON out.
#ifndef MAAS_CLI_INFER_COMMAND_H_
#define MAAS_CLI_INFER_COMMAND_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace maas::cli {

struct InferRequest {
  std::string url = "http://127.0.0.1:8000";  // maasd's REST address
  std::string model;
  std::string version;  // empty: the model's policy decides
  std::string body;     // the request's JSON (KServe v2)
  absl::Duration timeout = absl::Seconds(30);
};

// Posts the request and prints maasd's JSON answer on stdout. An error answer is returned as a
// Status carrying maasd's message, with the code of its HTTP status (400 InvalidArgument, 404
// NotFound, 503 Unavailable, 500 Internal); Unavailable when maasd cannot be reached.
absl::Status Infer(const InferRequest& request);

}  // namespace maas::cli

#endif  // MAAS_CLI_INFER_COMMAND_H_
