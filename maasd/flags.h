// maasd's command line.
#ifndef MAASD_FLAGS_H_
#define MAASD_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpc_server.h"
#include "http_server.h"
#include "model_control.h"
#include "rest_api.h"

namespace maasd {

struct Flags {
  ModelControlOptions control;
  HttpServerOptions http;
  GrpcServerOptions grpc;  // Its address and message limit follow --http-address and
                           // --max-body-bytes unless --grpc-address is given.
  ApiOptions api;
  std::string log_level = "warning";  // error, warning or info
  absl::Duration shutdown_grace = absl::Seconds(30);
  std::string port_file;  // Where to write the bound ports, once listening.
  bool help = false;
};

// The usage text, every flag with its default.
std::string Usage();

// Parses `args` (without the program name). InvalidArgument naming the flag and what it takes.
absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args);

}  // namespace maasd

#endif  // MAASD_FLAGS_H_
