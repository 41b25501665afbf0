// Soak: a Server under mixed load for a long time, checking that nothing leaks and nothing is
// lost.
//
//   build/bench/soak [SECONDS]          (default 600; scripts/soak; scripts/test runs 30)
//
// Three models (small tagged models: every answer says which version gave it) are deployed
// from one store. For SECONDS:
// - 8 client threads submit requests to random models: batches of 1-4 rows, random priorities,
//   a quarter with deadlines so tight that some are refused or expire, a few malformed (refused
//   at Submit), a few naming a version alias;
// - a publisher publishes a new version of a random model every 200 ms and moves its "stable"
//   alias, removes old versions, and calls Refresh: versions swap under load;
// - every 2 s one model is undeployed and deployed again while clients keep sending to it.
// Checks, each failing the run (exit status 1):
// - every request Submit accepted is answered exactly once, and no refused one ever is;
// - every answer that has outputs carries a version the model had, and the right rows;
// - resident memory at the end is within 64 MiB of what it was after the first quarter of the
//   run, and open file descriptors within 16 (leaks grow without bound; allocator caches do
//   not);
// Prints the counts, RSS and descriptors over time.
#include <torch/script.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "maas/maas.h"
#include "util/posix_files.h"
#include "scratch_dir.h"

namespace fs = std::filesystem;

namespace {

constexpr int kModels = 3;
constexpr int kClients = 8;
const char* const kNames[kModels] = {"alpha", "beta", "gamma"};

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "soak: %s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

// A model answering every row of x (float32 [2]) with [tag, tag].
void SaveTagged(const fs::path& file, float tag) {
  torch::jit::Module module("Tagged");
  module.register_buffer("tag", torch::full({1}, tag));
  module.define(R"(
    def forward(self, x: Tensor) -> Tensor:
      return x * 0.0 + self.tag
  )");
  module.save(file.string());
}

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

int64_t OpenDescriptors() {
  std::error_code ec;
  return static_cast<int64_t>(maas::internal::posix::ListFolder("/proc/self/fd", ec).size());
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 600;
  const maas::bench::ScratchDir scratch("maas-soak");
  const fs::path root = scratch.path() / "store";
  auto store = maas::ModelStore::Open(root);
  Check(store.status(), "open the store");
  const maas::ModelSignature signature{{{"x", torch::kFloat32, {2}}},
                                       {{"y", torch::kFloat32, {2}}}};
  std::atomic<int> tag{0};
  auto publish = [&](const std::string& name) -> absl::StatusOr<maas::ModelInfo> {
    const fs::path file = scratch.path() / (name + ".pt");
    SaveTagged(file, static_cast<float>(++tag));
    return (*store)->Publish(name, file, signature);
  };
  for (const char* name : kNames) {
    absl::StatusOr<maas::ModelInfo> v = publish(name);
    Check(v.status(), "publish");
    Check((*store)->SetAlias(name, "stable", v->version), "alias");
  }

  auto server = maas::Server::Create(root);
  Check(server.status(), "create the server");
  maas::DeployOptions options;
  options.policy = maas::VersionPolicy::Latest(2);  // the newest serves; "stable" also named
  options.batching.max_batch_size = 16;
  for (const char* name : kNames) Check((*server)->Deploy(name, options), "deploy");

  // Exactly once, in constant memory: every callback call is counted, a second call of the same
  // callback too (its flag is already set), and a refused Submit must never call back.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> accepted{0}, refused{0}, answers{0}, twice{0}, ok{0}, failed{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 random(static_cast<unsigned>(c) + 1);
      while (!stop.load()) {
        const char* name = kNames[random() % kModels];
        const int64_t rows = 1 + static_cast<int64_t>(random() % 4);
        maas::ServerRequestOptions request;
        request.priority = static_cast<int>(random() % 3);
        if (random() % 4 == 0) request.timeout = absl::Microseconds(random() % 2000);
        if (random() % 10 == 0) request.version = "stable";
        const bool malformed = random() % 50 == 0;
        at::Tensor x = malformed ? torch::ones({rows, 3}) : torch::ones({rows, 2});
        auto called = std::make_shared<std::atomic<bool>>(false);
        absl::Status submitted = (*server)->Submit(
            name, {x}, request, [&, called, rows](maas::InferenceResult result, int64_t version) {
              ++answers;
              if (called->exchange(true)) ++twice;
              if (!result.ok()) {
                ++failed;
                return;
              }
              const at::Tensor& y = result->front();
              if (y.size(0) != rows || version < 1 ||
                  !y.eq(y.flatten()[0]).all().item<bool>()) {
                ++wrong;
              }
              ++ok;
            });
        if (submitted.ok()) {
          ++accepted;
        } else {
          ++refused;  // malformed, queue full, model being redeployed (NotFound), ...
        }
        if (random() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  std::atomic<int> swaps{0}, redeploys{0};
  threads.emplace_back([&] {  // publisher
    std::mt19937 random(99);
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const std::string name = kNames[random() % kModels];
      absl::StatusOr<maas::ModelInfo> v = publish(name);
      Check(v.status(), "publish under load");
      Check((*store)->SetAlias(name, "stable", v->version), "move the alias");
      absl::StatusOr<std::vector<int64_t>> versions = (*store)->Versions(name);
      Check(versions.status(), "versions");
      for (size_t i = 0; i + 3 < versions->size(); ++i) {  // keep the newest three
        (void)(*store)->Remove(name, (*versions)[i]);
      }
      (void)(*server)->Refresh();  // A removed version a deployment still names fails softly.
      ++swaps;
    }
  });
  threads.emplace_back([&] {  // undeploy and deploy again
    std::mt19937 random(7);
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      const char* name = kNames[random() % kModels];
      Check((*server)->Undeploy(name), "undeploy");
      Check((*server)->Deploy(name, options), "deploy again");
      ++redeploys;
    }
  });

  std::printf("soak: %.0f s, %d clients, %d models\n", seconds, kClients, kModels);
  std::printf("| t s | accepted | answered ok | failed | refused | swaps | RSS MiB | fds |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  const auto start = std::chrono::steady_clock::now();
  int64_t rss_baseline = 0, fds_baseline = 0;
  const double report_every = std::max(1.0, seconds / 10);
  for (double t = report_every; t <= seconds + 1e-9; t += report_every) {
    std::this_thread::sleep_until(start + std::chrono::duration<double>(t));
    if (rss_baseline == 0 && t >= seconds / 4) {
      rss_baseline = ResidentBytes();
      fds_baseline = OpenDescriptors();
    }
    std::printf("| %.0f | %lld | %lld | %lld | %lld | %d | %.1f | %lld |\n", t,
                static_cast<long long>(accepted.load()), static_cast<long long>(ok.load()),
                static_cast<long long>(failed.load()), static_cast<long long>(refused.load()),
                swaps.load(), static_cast<double>(ResidentBytes()) / (1 << 20),
                static_cast<long long>(OpenDescriptors()));
    std::fflush(stdout);
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();
  const int64_t rss_end = ResidentBytes(), fds_end = OpenDescriptors();
  server->reset();  // Answers what is still queued (Cancelled) and joins every thread.

  const int64_t unanswered = accepted.load() - (answers.load() - twice.load());
  std::printf("requests: %lld accepted, %lld answered with outputs, %lld with errors, %lld refused "
              "at Submit; %d swaps, %d redeploys\n",
              static_cast<long long>(accepted.load()), static_cast<long long>(ok.load()),
              static_cast<long long>(failed.load()), static_cast<long long>(refused.load()),
              swaps.load(), redeploys.load());
  std::printf("unanswered %lld, answered twice %lld, wrong rows or version %lld\n",
              static_cast<long long>(unanswered), static_cast<long long>(twice.load()),
              static_cast<long long>(wrong.load()));
  std::printf("RSS %.1f -> %.1f MiB, fds %lld -> %lld (from a quarter of the run to the end)\n",
              static_cast<double>(rss_baseline) / (1 << 20),
              static_cast<double>(rss_end) / (1 << 20), static_cast<long long>(fds_baseline),
              static_cast<long long>(fds_end));
  bool pass = answers.load() == accepted.load() && twice.load() == 0 && wrong.load() == 0 &&
              ok.load() > 0;
  if (rss_baseline > 0 && rss_end - rss_baseline > (int64_t{64} << 20)) pass = false;
  if (fds_baseline > 0 && fds_end - fds_baseline > 16) pass = false;
  std::printf("soak: %s\n", pass ? "passed" : "FAILED");
  return pass ? 0 : 1;
}
