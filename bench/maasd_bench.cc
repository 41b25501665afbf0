// maasd's cost over the network, measured in one run against the same Server in-process:
//   1. one client, sequential requests on one keep-alive connection, on the identity model
//      (batch 1, 4 floats): the median added by REST (JSON and binary) and by gRPC over
//      Server::Infer;
//   2. the MLP 512-1024-1024-10 with N connections (default 64) each sending binary requests
//      of one row back to back for a few seconds, against N in-process threads calling Infer;
//   3. the same load from load generators in their own processes, when installed: wrk (REST,
//      HTTP/1.1), h2load (REST over HTTP/1.1, and gRPC) and Triton's perf_analyzer (REST binary
//      and gRPC; installed by scripts/perf-analyzer).
// maasd runs in this process (its HTTP and gRPC servers, REST and gRPC layers and model
// control, as in the executable); the in-process clients are Boost.Beast's synchronous HTTP
// client and gRPC's synchronous stub, on loopback.
//
// Usage: maasd_bench [--quick] [--connections N]
#include <grpcpp/grpcpp.h>
#include <torch/script.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "absl/synchronization/mutex.h"
#include "fmt/core.h"
#include "grpc_api.h"
#include "grpc_server.h"
#include "http_server.h"
#include "maas/maas.h"
#include "mlp.h"
#include "model_control.h"
#include "request_metrics.h"
#include "rest_api.h"
#include "scratch_dir.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// One keep-alive connection.
class Client {
 public:
  explicit Client(int port) : stream_(context_) {
    stream_.connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    stream_.socket().set_option(tcp::no_delay(true));
  }
  // GETs `target` and returns the response's status.
  int Get(const std::string& target) {
    http::request<http::empty_body> request(http::verb::get, target, 11);
    request.set(http::field::host, "127.0.0.1");
    http::write(stream_, request);
    http::response<http::string_body> response;
    buffer_.clear();
    http::read(stream_, buffer_, response);
    return static_cast<int>(response.result_int());
  }
  // Posts `body` and returns the response's status.
  int Post(const std::string& target, const std::string& body, const std::string& json_size) {
    http::request<http::string_body> request(http::verb::post, target, 11);
    request.set(http::field::host, "127.0.0.1");
    if (!json_size.empty()) request.set("Inference-Header-Content-Length", json_size);
    request.body() = body;
    request.prepare_payload();
    http::write(stream_, request);
    http::response<http::string_body> response;
    buffer_.clear();
    http::read(stream_, buffer_, response);
    return static_cast<int>(response.result_int());
  }

 private:
  net::io_context context_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string BinaryBody(const std::string& name, int64_t columns, std::string* json_size) {
  const std::string header = fmt::format(
      "{{\"inputs\":[{{\"name\":\"{}\",\"datatype\":\"FP32\",\"shape\":[1,{}],"
      "\"parameters\":{{\"binary_data_size\":{}}}}}],\"parameters\":{{\"binary_data_output\":"
      "true}}}}",
      name, columns, columns * 4);
  *json_size = std::to_string(header.size());
  std::string body = header;
  std::vector<float> values(static_cast<size_t>(columns), 0.5f);
  body.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return body;
}

// One gRPC channel: its own HTTP/2 connection (not shared with the process's other channels).
class GrpcClient {
 public:
  explicit GrpcClient(int port) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(
        fmt::format("127.0.0.1:{}", port), grpc::InsecureChannelCredentials(), args));
  }
  bool Infer(const inference::ModelInferRequest& request) {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    return stub_->ModelInfer(&context, request, &response).ok();
  }
  bool Live() {
    grpc::ClientContext context;
    inference::ServerLiveResponse response;
    return stub_->ServerLive(&context, {}, &response).ok() && response.live();
  }

 private:
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

// A request of one row of `columns` floats, in raw_input_contents.
inference::ModelInferRequest GrpcRequest(const std::string& model, int64_t columns) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(columns);
  std::vector<float> values(columns, 0.5f);
  request.add_raw_input_contents(reinterpret_cast<const char*>(values.data()),
                                 values.size() * sizeof(float));
  return request;
}

// Runs `command` (a load generator) and returns the number that `format` (for sscanf, one
// %lf) reads from the first line it matches; 0 when none does. Lines about failures are shown.
double RunAndRead(const std::string& command, const char* format) {
  double value = 0;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, pipe) != nullptr) {
      if (value == 0 && std::sscanf(line, format, &value) != 1) value = 0;
      if (std::strstr(line, "Non-2xx") != nullptr ||
          (std::strstr(line, "failed") != nullptr && std::strstr(line, " 0 failed") == nullptr)) {
        std::fprintf(stderr, "load generator: %s", line);
      }
    }
    pclose(pipe);
  }
  return value;
}

void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
}

// The median round trip of 100 bytes between two threads over a loopback TCP connection
// (blocking sockets, no HTTP): what the machine charges for any request and answer between
// two threads, before a server does anything.
double LoopbackRoundTripMicros(int rounds) {
  net::io_context context;
  tcp::acceptor acceptor(context, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  std::thread echo([&] {
    tcp::socket peer = acceptor.accept();
    peer.set_option(tcp::no_delay(true));
    char buffer[100];
    boost::system::error_code ec;
    while (net::read(peer, net::buffer(buffer), ec) == sizeof buffer && !ec) {
      net::write(peer, net::buffer(buffer), ec);
    }
  });
  tcp::socket socket(context);
  socket.connect(acceptor.local_endpoint());
  socket.set_option(tcp::no_delay(true));
  char buffer[100] = {};
  std::vector<double> times;
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    net::write(socket, net::buffer(buffer));
    net::read(socket, net::buffer(buffer));
    times.push_back(Micros(Clock::now() - t0));
  }
  socket.close();
  echo.join();
  return Median(times);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int connections = 64;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--connections") == 0 && i + 1 < argc) {
      connections = std::atoi(argv[++i]);
    }
  }
  const int requests = quick ? 200 : 3000;
  // As maasd does (main.cc): no deadlock-cycle bookkeeping on gRPC's absl::Mutex locks.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const double seconds = quick ? 0.5 : 4.0;

  maas::bench::ScratchDir scratch("maasd-bench");
  const std::filesystem::path root = scratch.path() / "store";
  {
    auto store = maas::ModelStore::Open(root);
    torch::jit::Module identity("Identity");
    identity.define("def forward(self, x: Tensor) -> Tensor:\n  return x\n");
    identity.save((scratch.path() / "identity.pt").string());
    maas::bench::BuildMlp().save((scratch.path() / "mlp.pt").string());
    if (!store.ok() ||
        !(*store)
             ->Publish("identity", scratch.path() / "identity.pt",
                       {{{"x", torch::kFloat32, {4}}}, {{"y", torch::kFloat32, {4}}}})
             .ok() ||
        !(*store)
             ->Publish("mlp", scratch.path() / "mlp.pt",
                       {{{"x", torch::kFloat32, {512}}}, {{"y", torch::kFloat32, {10}}}})
             .ok()) {
      std::fprintf(stderr, "cannot make the store\n");
      return 1;
    }
  }
  maasd::ModelControlOptions control_options;
  control_options.store_root = root;
  auto control = maasd::ModelControl::Start(control_options);
  if (!control.ok()) {
    std::fprintf(stderr, "%s\n", control.status().ToString().c_str());
    return 1;
  }
  maasd::RequestMetrics metrics;
  maasd::RestApi api(control->get(), &metrics, {});
  maasd::HttpServerOptions http_options;
  http_options.port = 0;
  auto server = maasd::HttpServer::Start(
      http_options, [&api](maasd::HttpRequest request, maasd::Responder responder) {
        api.Handle(std::move(request), std::move(responder));
      });
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  const int port = (*server)->port();
  maasd::GrpcApi grpc_api(control->get(), &metrics, {});
  maasd::GrpcServerOptions grpc_options;
  grpc_options.port = 0;
  auto grpc_server = maasd::GrpcServer::Start(grpc_options, &grpc_api);
  if (!grpc_server.ok()) {
    std::fprintf(stderr, "%s\n", grpc_server.status().ToString().c_str());
    return 1;
  }
  const int grpc_port = (*grpc_server)->port();
  maas::Server& in_process = (*control)->server();

  // 1. One client, identity model: in-process and over REST, interleaved in rounds so that
  // the machine's noise falls on all three alike.
  const std::string json_body =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]})";
  std::string binary_size;
  const std::string binary_body = BinaryBody("x", 4, &binary_size);
  Client client(port);
  GrpcClient grpc_client(grpc_port);
  const inference::ModelInferRequest grpc_identity = GrpcRequest("identity", 4);
  std::vector<double> local, rest_json, rest_binary, transport, grpc_raw, grpc_live;
  const at::Tensor x = torch::ones({1, 4});
  for (int i = 0; i < requests + 50; ++i) {
    auto t0 = Clock::now();
    bool ok = in_process.Infer("identity", {x}).ok();
    auto t1 = Clock::now();
    ok &= client.Post("/v2/models/identity/infer", json_body, "") == 200;
    auto t2 = Clock::now();
    ok &= client.Post("/v2/models/identity/infer", binary_body, binary_size) == 200;
    auto t3 = Clock::now();
    ok &= client.Get("/v2/health/live") == 200;
    auto t4 = Clock::now();
    ok &= grpc_client.Infer(grpc_identity);
    auto t5 = Clock::now();
    ok &= grpc_client.Live();
    auto t6 = Clock::now();
    if (!ok) {
      std::fprintf(stderr, "a request failed\n");
      return 1;
    }
    if (i < 50) continue;  // warm-up
    local.push_back(Micros(t1 - t0));
    rest_json.push_back(Micros(t2 - t1));
    rest_binary.push_back(Micros(t3 - t2));
    transport.push_back(Micros(t4 - t3));
    grpc_raw.push_back(Micros(t5 - t4));
    grpc_live.push_back(Micros(t6 - t5));
  }
  const double base = Median(local);
  std::printf("maasd_bench: one client, identity model, %d sequential requests, medians\n",
              requests);
  std::printf("  %-34s %9.1f us\n", "Server::Infer in-process", base);
  std::printf("  %-34s %9.1f us   added %6.1f us\n", "REST, JSON, keep-alive", Median(rest_json),
              Median(rest_json) - base);
  std::printf("  %-34s %9.1f us   added %6.1f us\n", "REST, binary extension, keep-alive",
              Median(rest_binary), Median(rest_binary) - base);
  std::printf(
      "  %-34s %9.1f us   (the round trip of a request that runs nothing: the\n"
      "  %-34s              floor of any HTTP front end on this machine)\n",
      "GET /v2/health/live", Median(transport), "");
  std::printf("  %-34s %9.1f us   added %6.1f us\n", "gRPC ModelInfer, raw contents",
              Median(grpc_raw), Median(grpc_raw) - base);
  std::printf("  %-34s %9.1f us   (gRPC's floor: an RPC that runs nothing)\n", "gRPC ServerLive",
              Median(grpc_live));
  std::printf("  %-34s %9.1f us   (100 bytes to a thread and back, no HTTP)\n",
              "loopback TCP round trip", LoopbackRoundTripMicros(requests));
  std::printf("  target: added < 50 us at the median: REST %s, gRPC %s\n",
              Median(rest_json) - base < 50 ? "met" : "NOT met",
              Median(grpc_raw) - base < 50 ? "met" : "NOT met");

  // 2. The MLP under N concurrent clients, one row per request.
  std::string mlp_size;
  const std::string mlp_body = BinaryBody("x", 512, &mlp_size);
  const inference::ModelInferRequest grpc_mlp = GrpcRequest("mlp", 512);
  enum class Via { kInProcess, kRest, kGrpc };
  const auto run = [&](Via via) {
    std::atomic<int64_t> done{0}, failed{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int c = 0; c < connections; ++c) {
      threads.emplace_back([&, via] {
        std::unique_ptr<Client> rest = via == Via::kRest ? std::make_unique<Client>(port) : nullptr;
        std::unique_ptr<GrpcClient> grpc =
            via == Via::kGrpc ? std::make_unique<GrpcClient>(grpc_port) : nullptr;
        const at::Tensor row = torch::full({1, 512}, 0.5f);
        while (!stop.load(std::memory_order_relaxed)) {
          bool ok = false;
          switch (via) {
            case Via::kInProcess:
              ok = in_process.Infer("mlp", {row}).ok();
              break;
            case Via::kRest:
              ok = rest->Post("/v2/models/mlp/infer", mlp_body, mlp_size) == 200;
              break;
            case Via::kGrpc:
              ok = grpc->Infer(grpc_mlp);
              break;
          }
          ++(ok ? done : failed);
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (std::thread& t : threads) t.join();
    if (failed > 0) std::fprintf(stderr, "%lld requests failed\n", (long long)failed.load());
    return static_cast<double>(done.load()) / seconds;
  };
  run(Via::kInProcess);  // warm-up: adaptive batching learns the load
  const double local_rate = run(Via::kInProcess);
  const double network_rate = run(Via::kRest);
  const double grpc_rate = run(Via::kGrpc);
  std::printf("maasd_bench: MLP 512-1024-1024-10, %d clients, 1 row per request, %.1f s each\n",
              connections, seconds);
  std::printf("  %-34s %9.0f requests/s\n", "in-process Server::Infer threads", local_rate);
  std::printf("  %-34s %9.0f requests/s   %.2f of in-process\n", "REST binary, keep-alive",
              network_rate, network_rate / local_rate);
  std::printf("  %-34s %9.0f requests/s   %.2f of in-process\n", "gRPC, a channel per client",
              grpc_rate, grpc_rate / local_rate);
  // 3. The same with wrk, a load generator of its own process (Debian's package), when it is
  // installed: 2 threads, `connections` connections, binary requests of one row.
  const int duration = static_cast<int>(std::max(1.0, seconds));
  if (std::system("command -v wrk >/dev/null 2>&1") == 0) {
    const std::filesystem::path script = scratch.path() / "post.lua";
    std::string lua =
        "wrk.method = \"POST\"\nwrk.headers[\"Inference-Header-Content-Length\"] = \"" + mlp_size +
        "\"\nwrk.body = \"";
    for (unsigned char c : mlp_body) lua += fmt::format("\\{}", static_cast<int>(c));
    lua += "\"\n";
    if (FILE* f = std::fopen(script.c_str(), "w")) {
      std::fputs(lua.c_str(), f);
      std::fclose(f);
    }
    const double wrk_rate = RunAndRead(
        fmt::format("wrk -t2 -c{} -d{}s -s {} http://127.0.0.1:{}/v2/models/mlp/infer 2>&1",
                    connections, duration, script.string(), port),
        "Requests/sec: %lf");
    std::printf("  %-34s %9.0f requests/s   %.2f of in-process\n", "wrk (2 threads), REST binary",
                wrk_rate, wrk_rate / local_rate);
  }
  // h2load (Debian's nghttp2-client): REST over HTTP/1.1, and gRPC (HTTP/2, one stream in
  // flight per connection, as a blocking client has). h2load counts HTTP statuses, not gRPC's:
  // the request it sends was checked above to be answered OK.
  if (std::system("command -v h2load >/dev/null 2>&1") == 0) {
    const std::filesystem::path rest_file = scratch.path() / "rest.bin";
    WriteFile(rest_file, mlp_body);
    const double h1_rate = RunAndRead(
        fmt::format("h2load --h1 -t2 -c{} -D{} -d {} -H 'Inference-Header-Content-Length: {}' "
                    "http://127.0.0.1:{}/v2/models/mlp/infer 2>&1",
                    connections, duration, rest_file.string(), mlp_size, port),
        "finished in %*fs, %lf req/s");
    std::printf("  %-34s %9.0f requests/s   %.2f of in-process\n", "h2load (2 threads), REST h1",
                h1_rate, h1_rate / local_rate);
    std::string frame = grpc_mlp.SerializeAsString();
    const uint32_t size = static_cast<uint32_t>(frame.size());
    const char prefix[5] = {0, static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                            static_cast<char>(size >> 8), static_cast<char>(size)};
    frame.insert(0, prefix, 5);  // gRPC's message framing: not compressed, big-endian length
    const std::filesystem::path grpc_file = scratch.path() / "grpc.bin";
    WriteFile(grpc_file, frame);
    const double h2_rate =
        RunAndRead(fmt::format("h2load -t2 -c{} -m1 -D{} -d {} -H 'content-type: application/grpc' "
                               "-H 'te: trailers' "
                               "http://127.0.0.1:{}/inference.GRPCInferenceService/ModelInfer 2>&1",
                               connections, duration, grpc_file.string(), grpc_port),
                   "finished in %*fs, %lf req/s");
    std::printf("  %-34s %9.0f requests/s   %.2f of in-process\n", "h2load (2 threads), gRPC",
                h2_rate, h2_rate / local_rate);
    // gRPC's latency with an efficient client in its own process (gRPC's C++ synchronous stub,
    // above, costs tens of microseconds itself): h2load on one connection, the identity model.
    std::string identity_frame = grpc_identity.SerializeAsString();
    const uint32_t identity_size = static_cast<uint32_t>(identity_frame.size());
    const char identity_prefix[5] = {
        0, static_cast<char>(identity_size >> 24), static_cast<char>(identity_size >> 16),
        static_cast<char>(identity_size >> 8), static_cast<char>(identity_size)};
    identity_frame.insert(0, identity_prefix, 5);
    const std::filesystem::path identity_file = scratch.path() / "identity.bin";
    WriteFile(identity_file, identity_frame);
    const std::filesystem::path live_file = scratch.path() / "live.bin";
    WriteFile(live_file, std::string(5, '\0'));  // an empty ServerLiveRequest
    const auto h2load_mean = [&](const std::filesystem::path& body, const char* rpc) {
      return RunAndRead(fmt::format("h2load -c1 -m1 -n{} -d {} -H 'content-type: application/grpc' "
                                    "-H 'te: trailers' "
                                    "http://127.0.0.1:{}/inference.GRPCInferenceService/{} 2>&1",
                                    requests, body.string(), grpc_port, rpc),
                        "time for request: %*s %*s %lfus");
    };
    const double infer_mean = h2load_mean(identity_file, "ModelInfer");
    const double live_mean = h2load_mean(live_file, "ServerLive");
    std::printf("maasd_bench: gRPC from h2load, one connection, %d sequential requests, means\n",
                requests);
    std::printf("  %-34s %9.1f us   added %6.1f us over in-process\n", "ModelInfer, identity",
                infer_mean, infer_mean - base);
    std::printf("  %-34s %9.1f us\n", "ServerLive", live_mean);
  }
  // perf_analyzer, Triton's own load generator, when scripts/perf-analyzer has installed it
  // and names its environment in MAAS_PERF_ANALYZER_ENV (the script knows the version):
  // `connections` requests in flight over HTTP (binary tensors) and over gRPC.
  const char* named_env = std::getenv("MAAS_PERF_ANALYZER_ENV");
  const std::string analyzer_env = named_env != nullptr ? named_env : "";
  if (!analyzer_env.empty() && access((analyzer_env + "/.maas-complete").c_str(), F_OK) == 0) {
    std::printf("maasd_bench: perf_analyzer, MLP, concurrency %d, %d s windows\n", connections,
                duration);
    for (const auto& [protocol, at] : {std::pair{"http", port}, std::pair{"grpc", grpc_port}}) {
      const double rate = RunAndRead(
          fmt::format("LD_LIBRARY_PATH=$(echo {0}/lib/python3*/site-packages/nvidia/cuda_runtime/"
                      "lib) {0}/bin/perf_analyzer -m mlp -u 127.0.0.1:{1} -i {2} "
                      "--concurrency-range {3} -p {4} 2>&1",
                      analyzer_env, at, protocol, connections, duration * 1000),
          "Concurrency: %*d, throughput: %lf infer/sec");
      std::printf("  %-34s %9.0f requests/s   %.2f of in-process\n",
                  fmt::format("perf_analyzer, {}", protocol).c_str(), rate, rate / local_rate);
    }
  }
  (*grpc_server)->Shutdown(absl::Seconds(5));
  (*server)->Shutdown(absl::Seconds(5));
  control->reset();
  return 0;
}
