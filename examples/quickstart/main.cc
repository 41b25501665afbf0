// maas quickstart: a model store, a model in it, and a Server serving it to many threads while
// a new version is published and swapped in.
//
//   scripts/demo                          # builds everything, then runs this in ./maas-demo-store
//   build/examples/quickstart [store-folder] [seconds]
//
// It publishes an MLP (512-1024-1024-10) into the store, deploys it on a Server (one instance
// per core, following the alias "stable"), serves it to 16 client threads for a few seconds
// with a live progress line, publishes a new version halfway and moves "stable" to it (the
// Server swaps it in under load), and ends with throughput, failed requests (none), latency
// percentiles, the batch sizes the Server formed, and how much faster that is than the same
// threads calling the model directly.
#include <torch/script.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "maas/maas.h"

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr int64_t kIn = 512, kHidden = 1024, kOut = 10;
constexpr int kClients = 16;
constexpr int kInFlightPerClient = 32;

// Builds the MLP as a TorchScript module, in C++, with random weights.
torch::jit::Module BuildMlp() {
  torch::jit::Module mlp("Mlp");
  auto layer = [&](const std::string& name, int64_t in, int64_t out) {
    mlp.register_parameter(name + "_w", torch::randn({out, in}) / std::sqrt(double(in)), false);
    mlp.register_parameter(name + "_b", torch::zeros({out}), false);
  };
  layer("fc1", kIn, kHidden);
  layer("fc2", kHidden, kHidden);
  layer("fc3", kHidden, kOut);
  mlp.define(R"(
    def forward(self, x: Tensor) -> Tensor:
      x = torch.relu(torch.linear(x, self.fc1_w, self.fc1_b))
      x = torch.relu(torch.linear(x, self.fc2_w, self.fc2_b))
      return torch.linear(x, self.fc3_w, self.fc3_b)
  )");
  return mlp;
}

// Publishes a new MLP as the next version of "mlp" and points "stable" at it.
absl::StatusOr<maas::ModelInfo> PublishStable(maas::ModelStore& store) {
  // Next to the store's folder; removed once published (the store keeps its own copy).
  const fs::path artifact = store.root().parent_path() / "maas-quickstart-mlp.pt";
  BuildMlp().save(artifact.string());
  maas::ModelSignature signature{{{"features", torch::kFloat32, {kIn}}},
                                 {{"scores", torch::kFloat32, {kOut}}}};
  maas::PublishOptions publish_options;
  publish_options.description = "MLP 512-1024-1024-10 with random weights, from the quickstart";
  absl::StatusOr<maas::ModelInfo> published =
      store.Publish("mlp", artifact, signature, publish_options);
  std::remove(artifact.c_str());
  if (!published.ok()) return published.status();
  if (absl::Status s = store.SetAlias("mlp", "stable", published->version); !s.ok()) return s;
  return published;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
  return 1;
}

// Latencies (microseconds) recorded by the client threads' callbacks.
class Latencies {
 public:
  void Add(double us) {
    std::lock_guard<std::mutex> lock(mu_);
    all_.push_back(us);
  }
  // Percentile over the samples since `from`; also returns the current count.
  double Percentile(double q, size_t from = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    if (all_.size() <= from) return 0;
    std::vector<double> v(all_.begin() + static_cast<long>(from), all_.end());
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }

 private:
  std::mutex mu_;
  std::vector<double> all_;
};

// One client thread: keeps kInFlightPerClient requests of one item in flight through
// Server::Submit, refilling when half of them are answered.
void Client(maas::Server& server, std::atomic<bool>& stop, Latencies& latencies,
            std::atomic<int64_t>& failed) {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  torch::Tensor features = torch::randn({1, kIn});
  while (!stop) {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (in_flight >= kInFlightPerClient) {
        cv.wait(lock, [&] { return in_flight <= kInFlightPerClient / 2; });
      }
      ++in_flight;
    }
    auto sent = SteadyClock::now();
    absl::Status accepted =
        server.Submit("mlp", {features}, {}, [&, sent](maas::InferenceResult result) {
          if (result.ok()) {
            latencies.Add(
                std::chrono::duration<double, std::micro>(SteadyClock::now() - sent).count());
          } else {
            ++failed;
          }
          std::lock_guard<std::mutex> lock(mu);
          --in_flight;
          if (in_flight == kInFlightPerClient / 2 || in_flight == 0) cv.notify_one();
        });
    if (!accepted.ok()) {  // Unavailable: the queue is full; back off a little.
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? fs::path(argv[1]) : fs::path("maas-demo-store");
  const double seconds = argc > 2 ? std::atof(argv[2]) : 4.0;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("maas %s quickstart\n\n", maas::Version());

  // 1. A model store in a folder: publish a new version of the MLP and point "stable" at it.
  absl::StatusOr<std::unique_ptr<maas::ModelStore>> store = maas::ModelStore::Open(root);
  if (!store.ok()) return Fail(store.status());
  absl::StatusOr<maas::ModelInfo> published = PublishStable(**store);
  if (!published.ok()) return Fail(published.status());
  // Keep the three newest versions.
  absl::StatusOr<std::vector<int64_t>> versions = (*store)->Versions("mlp");
  if (!versions.ok()) return Fail(versions.status());
  for (size_t i = 0; i + 3 < versions->size(); ++i) (void)(*store)->Remove("mlp", (*versions)[i]);
  std::printf("store     %s\n", (*store)->root().c_str());
  std::printf("publish   mlp version %lld (%.1f MB, sha256 %.12s...), alias stable -> %lld\n",
              static_cast<long long>(published->version), published->size_bytes / 1e6,
              published->sha256.c_str(), static_cast<long long>(published->version));

  // 2. A Server deploys mlp@stable with default options (verified against its SHA-256,
  //    prepared and warmed up; a worker per core, adaptive batching).
  absl::StatusOr<std::unique_ptr<maas::Server>> server = maas::Server::Create(root);
  if (!server.ok()) return Fail(server.status());
  maas::DeployOptions deploy;
  deploy.policy = maas::VersionPolicy::Specific({"stable"});
  if (absl::Status s = (*server)->Deploy("mlp", deploy); !s.ok()) return Fail(s);
  std::printf("deploy    mlp@stable on the CPU, default options (%d cores)\n", cores);

  // 3. A malformed request is refused at once, with a clear message.
  absl::StatusOr<std::vector<torch::Tensor>> bad =
      (*server)->Infer("mlp", {torch::randn({1, 100})});
  std::printf("bad call  %s\n", bad.status().ToString().c_str());

  // 4. The baseline: the same client threads calling one session directly, one item each.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> direct_calls{0};
  {
    maas::SessionOptions session_options;
    session_options.version = "stable";
    absl::StatusOr<std::unique_ptr<maas::Session>> session =
        maas::Session::Create(**store, "mlp", session_options);
    if (!session.ok()) return Fail(session.status());
    std::vector<std::thread> threads;
    torch::Tensor one = torch::randn({1, kIn});
    for (int c = 0; c < kClients; ++c) {
      threads.emplace_back([&] {
        while (!stop) {
          if ((*session)->Run({one}).ok()) ++direct_calls;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    stop = true;
    for (std::thread& t : threads) t.join();
  }
  const double direct_rate = static_cast<double>(direct_calls) / 1.0;
  std::printf("baseline  %d threads calling Session::Run directly, 1 item each: %.0f items/s\n\n",
              kClients, direct_rate);

  // 5. The same threads through the Server, with a live progress line; halfway, a new version
  //    is published, "stable" moves to it, and the Server swaps it in under load.
  std::printf("serving   %d client threads x %d requests in flight, 1 item each, %.0f s\n",
              kClients, kInFlightPerClient, seconds);
  Latencies latencies;
  std::atomic<int64_t> failed{0};
  stop = false;
  std::vector<std::thread> clients;
  const auto start = SteadyClock::now();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] { Client(**server, stop, latencies, failed); });
  }
  std::thread swapper([&] {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds / 2));
    absl::StatusOr<maas::ModelInfo> next = PublishStable(**store);
    if (!next.ok()) return (void)Fail(next.status());
    const auto swap_start = SteadyClock::now();
    if (absl::Status s = (*server)->Refresh(); !s.ok()) return (void)Fail(s);
    std::printf(
        "%s  swap      stable -> version %lld: loaded, warmed up and switched under load "
        "in %.0f ms\n",
        ::isatty(STDOUT_FILENO) ? "\n" : "", static_cast<long long>(next->version),
        std::chrono::duration<double, std::milli>(SteadyClock::now() - swap_start).count());
  });
  const bool interactive = ::isatty(STDOUT_FILENO);
  size_t last_count = 0;
  auto last_time = start;
  while (std::chrono::duration<double>(SteadyClock::now() - start).count() < seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto now = SteadyClock::now();
    const size_t count = latencies.Count();
    const double rate = static_cast<double>(count - last_count) /
                        std::chrono::duration<double>(now - last_time).count();
    // On a terminal the line updates in place; in a log, one line per update.
    std::printf(interactive ? "\r  t=%4.1fs  %8.0f req/s   p50 %6.2f ms   p99 %6.2f ms   "
                            : "  t=%4.1fs  %8.0f req/s   p50 %6.2f ms   p99 %6.2f ms\n",
                std::chrono::duration<double>(now - start).count(), rate,
                latencies.Percentile(0.50, last_count) / 1000,
                latencies.Percentile(0.99, last_count) / 1000);
    std::fflush(stdout);
    last_count = count;
    last_time = now;
  }
  swapper.join();
  stop = true;
  for (std::thread& client : clients) client.join();
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
  std::printf(interactive ? "\n\n" : "\n");

  // 6. The summary, from the clients and from the Server's own statistics of the new version.
  absl::StatusOr<maas::ModelStatus> status = (*server)->Describe("mlp");
  if (!status.ok()) return Fail(status.status());
  const maas::VersionStatus& serving = status->versions.back();
  const maas::ModelStats* stats = &serving.stats;
  const double rate = static_cast<double>(latencies.Count()) / elapsed;
  std::printf("throughput   %.0f requests/s  (%.1fx the direct calls)\n", rate, rate / direct_rate);
  std::printf("failed       %lld requests (across the swap)\n",
              static_cast<long long>(failed.load()));
  std::printf("latency      p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   (submit to answer)\n",
              latencies.Percentile(0.50) / 1000, latencies.Percentile(0.90) / 1000,
              latencies.Percentile(0.99) / 1000);
  std::printf(
      "version %lld   %s, %.1f MB of weights; since the swap: %lld requests in %lld batches; "
      "queue p50 %.2f ms, compute p50 %.2f ms per batch\n",
      static_cast<long long>(serving.version),
      std::string(maas::ModelStateName(serving.state)).c_str(), serving.memory_bytes / 1e6,
      static_cast<long long>(stats->requests), static_cast<long long>(stats->batches),
      absl::ToDoubleMilliseconds(stats->queue_time.p50),
      absl::ToDoubleMilliseconds(stats->compute_time.p50));
  std::printf("\nbatch sizes since the swap (items per execution)\n");
  // Buckets of powers of two: 1, 2-3, 4-7, ...
  const std::vector<int64_t>& histogram = stats->batch_size_histogram;
  std::vector<std::pair<std::string, int64_t>> buckets;
  for (size_t low = 1; low < histogram.size(); low *= 2) {
    const size_t high = std::min(histogram.size() - 1, low * 2 - 1);
    int64_t count = 0;
    for (size_t size = low; size <= high; ++size) count += histogram[size];
    buckets.emplace_back(std::to_string(low) + "-" + std::to_string(high), count);
  }
  int64_t most = 1;
  for (const auto& [range, count] : buckets) most = std::max(most, count);
  for (const auto& [range, count] : buckets) {
    std::printf("  %9s %8lld  %s\n", range.c_str(), static_cast<long long>(count),
                std::string(static_cast<size_t>(40 * count / most), '#').c_str());
  }

  std::printf(
      "\nTry next:\n"
      "  - run it again: two more versions are published and served; old ones are removed\n"
      "  - look inside %s/mlp/%lld/manifest.json\n"
      "  - read docs/server.md (policies, swaps, the watcher, memory), docs/scheduler.md\n"
      "    (batching, deadlines, priorities) and docs/performance.md\n"
      "  - scripts/build builds the rest; build/bench/scheduler_bench compares maas with the\n"
      "    limit and the naive approach;\n"
      "    build/bench/swap_bench measures what a swap costs another model\n",
      (*store)->root().c_str(), static_cast<long long>(serving.version));
  return 0;
}
