// What the ModelStore's calls cost: reads (which serving processes and store watchers make
// often) and writes (publish, verify) on an MLP 512-1024-1024-10 artifact of about 6 MB.
//
//   build/bench/store_bench [--benchmark_filter=Get]
#include <benchmark/benchmark.h>
#include <torch/script.h>

#include <cstdlib>
#include <filesystem>

#include "maas/maas.h"
#include "scratch_dir.h"
#include "store/sha256.h"

namespace fs = std::filesystem;

namespace {

// A store in a fresh temporary folder holding "mlp" versions 1..3 with alias "stable" -> 2.
class BenchStore {
 public:
  BenchStore() : dir_("maas-store-bench"), artifact_(dir_.path() / "mlp.pt") {
    torch::jit::Module mlp("Mlp");
    mlp.register_parameter("w1", torch::randn({1024, 512}), false);
    mlp.register_parameter("w2", torch::randn({1024, 1024}), false);
    mlp.register_parameter("w3", torch::randn({10, 1024}), false);
    mlp.define(R"(
      def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(torch.matmul(x, self.w1.t()))
        x = torch.relu(torch.matmul(x, self.w2.t()))
        return torch.matmul(x, self.w3.t())
    )");
    mlp.save(artifact_.string());
    store_ = std::move(*maas::ModelStore::Open(dir_.path() / "store"));
    for (int i = 0; i < 3; ++i) Publish();
    (void)store_->SetAlias("mlp", "stable", 2);
  }
  maas::ModelStore& store() { return *store_; }
  void Publish() {
    maas::ModelSignature signature{{{"x", torch::kFloat32, {512}}}, {{"y", torch::kFloat32, {10}}}};
    if (!store_->Publish("mlp", artifact_, signature).ok()) std::abort();
  }

 private:
  const maas::bench::ScratchDir dir_;
  const fs::path artifact_;
  std::unique_ptr<maas::ModelStore> store_;
};

BenchStore& Shared() {
  static BenchStore* store = new BenchStore();
  return *store;
}

void BM_GetLatest(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Shared().store().Get("mlp"));
}
BENCHMARK(BM_GetLatest);

void BM_GetByAlias(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Shared().store().Get("mlp", "stable"));
}
BENCHMARK(BM_GetByAlias);

void BM_Versions(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Shared().store().Versions("mlp"));
}
BENCHMARK(BM_Versions);

void BM_Verify(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(Shared().store().Verify("mlp", "1"));
}
BENCHMARK(BM_Verify)->Unit(benchmark::kMillisecond);

// SHA-256 throughput: every Publish, Verify and Session load hashes the whole artifact.
void BM_Sha256(benchmark::State& state) {
  const std::string data(16 << 20, 'x');
  for (auto _ : state) {
    maas::internal::Sha256 hash;
    hash.Update(data);
    benchmark::DoNotOptimize(hash.HexDigest());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_Sha256)->Unit(benchmark::kMillisecond);

// Copy, hash, load-check and commit; includes fsyncs, so it depends on the disk.
void BM_Publish(benchmark::State& state) {
  for (auto _ : state) Shared().Publish();
}
BENCHMARK(BM_Publish)->Unit(benchmark::kMillisecond)->Iterations(10);

}  // namespace

BENCHMARK_MAIN();
