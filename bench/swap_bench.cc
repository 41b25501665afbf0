// Swapping versions under load: what loading a model costs the latency of another, in one run.
//
//   build/bench/swap_bench [--quick]
//
// A Server serves model A (the MLP 512-1024-1024-10, one instance per core) to 4 client threads
// calling Infer on batch 1 in a closed loop, and model B (an MLP of 4 x 2048 x 2048, 64 MB of
// weights, following the alias "stable") to one more client. Phases, interleaved over rounds:
//   quiet  nothing else happens;
//   swap   B is swapped back and forth between two versions through the Server (the alias
//          moves, Refresh loads, warms and switches), as fast as it can;
//   plain  an application thread of normal priority loads B with Session::Create (the same
//          work: read, verify, load, prepare, warm up), as fast as it can, outside the Server.
// Reports A's throughput and latency percentiles per phase, the loads completed, and the
// requests of A and B that failed (the swaps must fail none).
#include <torch/script.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "maas/maas.h"
#include "mlp.h"
#include "scratch_dir.h"

namespace fs = std::filesystem;

namespace {

using SteadyClock = std::chrono::steady_clock;

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

torch::jit::Module BuildWideMlp(int seed) {
  torch::manual_seed(seed);
  torch::jit::Module m("Wide");
  for (int i = 0; i < 4; ++i) {
    m.register_parameter("w" + std::to_string(i), torch::randn({2048, 2048}) * 0.02, false);
  }
  m.define(R"(
def forward(self, x: Tensor) -> Tensor:
  x = torch.relu(torch.matmul(x, self.w0))
  x = torch.relu(torch.matmul(x, self.w1))
  x = torch.relu(torch.matmul(x, self.w2))
  return torch.matmul(x, self.w3)
)");
  return m;
}

enum Phase { kQuiet, kSwap, kPlain, kPhases };
const char* const kPhaseNames[] = {"quiet", "swap (Server)", "plain load (own thread)"};

struct PhaseResult {
  std::vector<double> latencies_us;  // of A
  double seconds = 0;
  int loads = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const double phase_seconds = quick ? 1.0 : 5.0;
  const int rounds = quick ? 1 : 3;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const maas::bench::ScratchDir scratch("maas-swap-bench");
  const fs::path& dir = scratch.path();
  const fs::path root = dir / "store";
  auto store = maas::ModelStore::Open(root);
  Check(store.status(), "open store");
  maas::bench::BuildMlp().save((dir / "a.pt").string());
  maas::ModelSignature a_signature{{{"x", torch::kFloat32, {512}}}, {{"y", torch::kFloat32, {10}}}};
  Check((*store)->Publish("a", dir / "a.pt", a_signature).status(), "publish a");
  maas::ModelSignature b_signature{{{"x", torch::kFloat32, {2048}}},
                                   {{"y", torch::kFloat32, {2048}}}};
  for (int v = 1; v <= 2; ++v) {
    BuildWideMlp(v).save((dir / "b.pt").string());
    Check((*store)->Publish("b", dir / "b.pt", b_signature).status(), "publish b");
  }
  Check((*store)->SetAlias("b", "stable", 1), "alias");

  auto server = maas::Server::Create(root);
  Check(server.status(), "server");
  maas::DeployOptions a_options;
  a_options.instances_per_device = cores;
  Check((*server)->Deploy("a", a_options), "deploy a");
  Check((*server)->Deploy("b", {maas::VersionPolicy::Specific({"stable"})}), "deploy b");

  std::atomic<int> phase{kQuiet};
  std::atomic<bool> stop{false};
  std::atomic<int> failures_a{0}, failures_b{0};
  std::mutex mu;
  PhaseResult results[kPhases];

  constexpr int kClientsA = 4;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClientsA; ++c) {
    clients.emplace_back([&] {
      at::Tensor x = torch::randn({1, 512});
      std::vector<std::pair<int, double>> mine;
      while (!stop) {
        const int p = phase.load();
        auto t0 = SteadyClock::now();
        maas::InferenceResult y = (*server)->Infer("a", {x});
        const double us =
            std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count();
        if (!y.ok()) ++failures_a;
        if (p == phase.load()) mine.emplace_back(p, us);  // Requests spanning phases: dropped.
      }
      std::lock_guard<std::mutex> lock(mu);
      for (auto [p, us] : mine) results[p].latencies_us.push_back(us);
    });
  }
  clients.emplace_back([&] {
    at::Tensor x = torch::randn({1, 2048});
    while (!stop) {
      if (!(*server)->Infer("b", {x}).ok()) ++failures_b;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });

  // The phase driver: quiet, swap, plain, for each round.
  int stable = 1;
  maas::SessionOptions plain_options;
  for (int round = 0; round < rounds; ++round) {
    for (int p = 0; p < kPhases; ++p) {
      phase = p;
      const auto start = SteadyClock::now();
      const auto end = start + std::chrono::duration<double>(phase_seconds);
      while (SteadyClock::now() < end) {
        if (p == kQuiet) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        } else if (p == kSwap) {
          stable = 3 - stable;
          Check((*store)->SetAlias("b", "stable", stable), "move alias");
          Check((*server)->Refresh(), "refresh");
          ++results[p].loads;
        } else {
          auto session = maas::Session::Create(**store, "b", plain_options);
          Check(session.status(), "plain load");
          ++results[p].loads;
        }
      }
      results[p].seconds += std::chrono::duration<double>(SteadyClock::now() - start).count();
    }
  }
  stop = true;
  for (std::thread& t : clients) t.join();

  std::printf(
      "## Swapping under load: model A's latency while model B loads (%d cores, %d "
      "rounds of %.0f s per phase)\n\n",
      cores, rounds, phase_seconds);
  std::printf(
      "| phase | A items/s | A p50 us | A p99 us | A p99.9 us | loads of B | s per load |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (int p = 0; p < kPhases; ++p) {
    const PhaseResult& r = results[p];
    std::printf("| %s | %.0f | %.0f | %.0f | %.0f | %d | %s |\n", kPhaseNames[p],
                static_cast<double>(r.latencies_us.size()) / r.seconds,
                Percentile(r.latencies_us, 0.5), Percentile(r.latencies_us, 0.99),
                Percentile(r.latencies_us, 0.999), r.loads,
                r.loads > 0 ? std::to_string(r.seconds / r.loads).substr(0, 5).c_str() : "-");
  }
  const double quiet_p99 = Percentile(results[kQuiet].latencies_us, 0.99);
  std::printf("\nA's p99 against quiet: swap %.2fx, plain load %.2fx\n",
              Percentile(results[kSwap].latencies_us, 0.99) / quiet_p99,
              Percentile(results[kPlain].latencies_us, 0.99) / quiet_p99);
  std::printf("failed requests: A %d, B %d (B was swapped %d times under its own traffic)\n",
              failures_a.load(), failures_b.load(), results[kSwap].loads);
  server->reset();
  return failures_a.load() + failures_b.load() == 0 ? 0 : 1;
}
