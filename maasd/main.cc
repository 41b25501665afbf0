// maasd: the models of a maas store, served over the Open Inference Protocol (KServe v2).
#include <google/protobuf/stubs/logging.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "util/absl_compat.h"
#include "flags.h"
#include "fmt/core.h"
#include "grpc_api.h"
#include "grpc_server.h"
#include "http_server.h"
#include "maas/log.h"
#include "maas/version.h"
#include "memory_trim.h"
#include "model_control.h"
#include "request_metrics.h"
#include "rest_api.h"

namespace {

void Say(std::string_view message) {
  std::string line = fmt::format("maasd: {}\n", message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

int Run(int argc, char** argv) {
  absl::StatusOr<maasd::Flags> flags =
      maasd::ParseFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (!flags.ok()) {
    Say(maas::internal::FromAbsl(flags.status().message()));
    return 2;
  }
  if (flags->help) {
    std::fputs(maasd::Usage().c_str(), stdout);
    return 0;
  }
  // Debian's Abseil is built without NDEBUG, so absl::Mutex (which gRPC uses) checks for
  // deadlock cycles on every lock: a debugging aid that costs every RPC, and whose bookkeeping
  // ThreadSanitizer sees as races. maas's own mutexes are std::mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // protobuf writes a line to stderr for every malformed message it parses (invalid UTF-8 in a
  // string field, say): a client could flood the log. gRPC answers such a request with an error
  // status itself; maasd's handlers never see it.
  google::protobuf::SetLogHandler(nullptr);
  const int level = flags->log_level == "error" ? 2 : flags->log_level == "warning" ? 1 : 0;
  maas::SetLogSink([level](maas::LogSeverity severity, std::string_view message) {
    if (static_cast<int>(severity) < level) return;
    Say(message);
  });

  // The signals that stop maasd are taken by sigwait below, not by a handler: every thread
  // started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Returns freed memory that bursts (large bodies, floods of cancelled gRPC streams) leave
  // resident: checked every second, trimmed once 64 MiB more are free.
  const maasd::MemoryTrimmer trimmer(absl::Seconds(1), int64_t{64} << 20);

  absl::StatusOr<std::unique_ptr<maasd::ModelControl>> control =
      maasd::ModelControl::Start(flags->control);
  if (!control.ok()) {
    Say(control.status().ToString());
    return 1;
  }
  maasd::RequestMetrics metrics;
  maasd::RestApi api(control->get(), &metrics, flags->api);
  absl::StatusOr<std::unique_ptr<maasd::HttpServer>> http = maasd::HttpServer::Start(
      flags->http, [&api](maasd::HttpRequest request, maasd::Responder responder) {
        api.Handle(std::move(request), std::move(responder));
      });
  if (!http.ok()) {
    Say(http.status().ToString());
    return 1;
  }
  api.set_open_connections([server = http->get()] { return server->connections(); });
  maasd::GrpcApi grpc_api(control->get(), &metrics, flags->api);
  std::unique_ptr<maasd::GrpcServer> grpc;
  if (flags->grpc.port >= 0) {
    absl::StatusOr<std::unique_ptr<maasd::GrpcServer>> started =
        maasd::GrpcServer::Start(flags->grpc, &grpc_api);
    if (!started.ok()) {
      Say(started.status().ToString());
      return 1;
    }
    grpc = *std::move(started);
  }
  if (!flags->port_file.empty()) {
    const std::string temporary = flags->port_file + ".tmp";
    {
      std::ofstream file(temporary);
      file << "http " << (*http)->port() << "\n";
      if (grpc) file << "grpc " << grpc->port() << "\n";
    }
    std::rename(temporary.c_str(), flags->port_file.c_str());  // Readers see it whole.
  }
  if (level <= 1) {
    Say(fmt::format(
        "maas {} serving {} model(s) on http://{}:{}{}", MAAS_VERSION_STRING,
        (*control)->server().Models().size(), flags->http.address, (*http)->port(),
        grpc ? fmt::format(" and grpc://{}:{}", flags->grpc.address, grpc->port()) : ""));
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (level <= 1) Say(fmt::format("signal {}: finishing accepted requests", signal_number));
  // Stop accepting and let the accepted requests finish (both protocols at once); then the
  // models stop, answering anything left if the grace ran out, which lets gRPC's shutdown end;
  // then the network threads go.
  std::thread grpc_stopping;
  if (grpc) {
    grpc_stopping = std::thread([&] { grpc->Shutdown(flags->shutdown_grace); });
  }
  const absl::Time give_up = absl::Now() + flags->shutdown_grace;
  (*http)->Shutdown(flags->shutdown_grace);
  while (grpc_api.in_flight() > 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(2));
  grpc_api.Stop();
  control->reset();
  if (grpc_stopping.joinable()) grpc_stopping.join();
  grpc.reset();
  http->reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    Say(fmt::format("fatal: {}", e.what()));
    return 1;
  }
}
