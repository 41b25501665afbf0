// Session::Run against a direct module.forward of the same artifact, in one run, interleaved.
//
//   build/bench/session_bench [--quick]
//
// For each model and batch size, every round times a block of calls of each variant in turn;
// the table reports the median over rounds of the time per call, and the median of the per-round
// differences and ratios against "direct", so that drift on a shared machine cancels out.
// Variants:
//   direct        torch::jit::load + eval + InferenceMode + forward, 1 intra-op thread: what a
//                 careful user writes by hand; the limit for maas to match.
//   session none  Session::Run with GraphOptimization::kNone: the same graph, so the difference
//                 is maas's own cost (validation, output collection, thread and mode guards).
//   session freeze / session for-inference: the graph preparations Session offers.
//   session profiling: for-inference run by LibTorch's profiling executor
//                 (JitExecutor::kProfiling) instead of maas's default kStatic.
// Also: the latency of the first Run after Create, with and without warm-up.
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "maas/maas.h"
#include "mlp.h"
#include "scratch_dir.h"

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

struct Model {
  std::string name;
  std::string description;
  std::function<torch::jit::Module()> build;
  maas::ModelSignature signature;
  std::function<at::Tensor(int64_t batch)> input;
};

std::vector<Model> Models() {
  std::vector<Model> models;
  models.push_back({"tiny",
                    "x + 1 on [batch, 4]: isolates per-call overhead",
                    [] {
                      torch::jit::Module m("Tiny");
                      m.define("def forward(self, x: Tensor) -> Tensor:\n  return x + 1.0\n");
                      return m;
                    },
                    {{{"x", torch::kFloat32, {4}}}, {{"y", torch::kFloat32, {4}}}},
                    [](int64_t b) {
                      return torch::randn({b, 4});
                    }});
  models.push_back({"mlp",
                    "MLP 512-1024-1024-10",
                    [] { return maas::bench::BuildMlp(); },
                    {{{"x", torch::kFloat32, {512}}}, {{"y", torch::kFloat32, {10}}}},
                    [](int64_t b) {
                      return torch::randn({b, 512});
                    }});
  models.push_back(
      {"cnn",
       "CNN on 3x32x32: conv 16, conv 32 /2, conv 64 /2, pool, linear 10",
       [] {
         torch::jit::Module m("Cnn");
         m.register_parameter("c1", torch::randn({16, 3, 3, 3}) * 0.2, false);
         m.register_parameter("c2", torch::randn({32, 16, 3, 3}) * 0.08, false);
         m.register_parameter("c3", torch::randn({64, 32, 3, 3}) * 0.06, false);
         m.register_parameter("fc", torch::randn({10, 64}) * 0.1, false);
         m.define(R"(
def forward(self, x: Tensor) -> Tensor:
  x = torch.relu(torch.conv2d(x, self.c1, None, [1, 1], [1, 1]))
  x = torch.relu(torch.conv2d(x, self.c2, None, [2, 2], [1, 1]))
  x = torch.relu(torch.conv2d(x, self.c3, None, [2, 2], [1, 1]))
  return torch.linear(x.mean([2, 3]), self.fc)
)");
         return m;
       },
       {{{"image", torch::kFloat32, {3, 32, 32}}}, {{"logits", torch::kFloat32, {10}}}},
       [](int64_t b) {
         return torch::randn({b, 3, 32, 32});
       }});
  return models;
}

std::unique_ptr<maas::Session> MakeSession(
    const maas::ModelStore& store, const std::string& name, maas::GraphOptimization optimization,
    bool warm_up, maas::JitExecutor executor = maas::JitExecutor::kStatic) {
  maas::SessionOptions options;
  options.optimization = optimization;
  options.warm_up = warm_up;
  options.jit_executor = executor;
  absl::StatusOr<std::unique_ptr<maas::Session>> session =
      maas::Session::Create(store, name, options);
  Check(session.status(), "Session::Create");
  return std::move(*session);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int rounds = quick ? 3 : 15;
  const double block_seconds = quick ? 0.005 : 0.025;

  const maas::bench::ScratchDir scratch("maas-session-bench");
  const fs::path& dir = scratch.path();
  auto store = maas::ModelStore::Open(dir / "store");
  Check(store.status(), "ModelStore::Open");

  // Direct calls run on this thread with the same setting a session uses.
  at::set_num_threads(1);
  std::printf("maas %s session benchmark: %d rounds, medians; 1 intra-op thread everywhere\n\n",
              maas::Version(), rounds);
  std::printf(
      "| model | batch | direct us/call | session none | session freeze | session "
      "for-inference | session profiling | maas overhead (none - direct) | freeze / direct | "
      "profiling / for-inference |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");

  std::vector<std::string> first_call_rows;
  for (const Model& model : Models()) {
    fs::path file = dir / (model.name + ".pt");
    model.build().save(file.string());
    Check((*store)->Publish(model.name, file, model.signature).status(), "Publish");

    torch::jit::Module direct = torch::jit::load(file.string());
    direct.eval();
    std::map<std::string, std::unique_ptr<maas::Session>> sessions;
    sessions["none"] = MakeSession(**store, model.name, maas::GraphOptimization::kNone, true);
    sessions["freeze"] = MakeSession(**store, model.name, maas::GraphOptimization::kFreeze, true);
    sessions["for-inference"] =
        MakeSession(**store, model.name, maas::GraphOptimization::kForInference, true);
    sessions["profiling"] = MakeSession(**store, model.name,
                                        maas::GraphOptimization::kForInference, true,
                                        maas::JitExecutor::kProfiling);

    for (int64_t batch : {1, 32}) {
      at::Tensor x = model.input(batch);
      std::vector<at::Tensor> inputs{x};
      auto run_direct = [&] {
        c10::InferenceMode guard;
        return direct.forward({x}).toTensor();
      };
      std::map<std::string, std::function<void()>> variants = {
          {"direct", [&] { (void)run_direct(); }},
          {"none", [&] { (void)sessions["none"]->Run(inputs); }},
          {"freeze", [&] { (void)sessions["freeze"]->Run(inputs); }},
          {"for-inference", [&] { (void)sessions["for-inference"]->Run(inputs); }},
          {"profiling", [&] { (void)sessions["profiling"]->Run(inputs); }},
      };
      // Calibrate a block size from the direct call, and warm every variant.
      for (auto& [name, fn] : variants) {
        for (int i = 0; i < 3; ++i) fn();
      }
      auto start = Clock::now();
      int probe = 0;
      while (std::chrono::duration<double>(Clock::now() - start).count() < block_seconds / 5) {
        variants["direct"]();
        ++probe;
      }
      double per_call = std::chrono::duration<double>(Clock::now() - start).count() / probe;
      const int block = std::max(1, static_cast<int>(block_seconds / per_call));

      std::map<std::string, std::vector<double>> us;
      std::vector<double> overhead, freeze_ratio, profiling_ratio;
      for (int r = 0; r < rounds; ++r) {
        std::map<std::string, double> round;
        for (auto& [name, fn] : variants) {
          auto t0 = Clock::now();
          for (int i = 0; i < block; ++i) fn();
          round[name] =
              std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / block;
          us[name].push_back(round[name]);
        }
        overhead.push_back(round["none"] - round["direct"]);
        freeze_ratio.push_back(round["freeze"] / round["direct"]);
        profiling_ratio.push_back(round["profiling"] / round["for-inference"]);
      }
      std::printf(
          "| %s | %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %+.2f us (%+.1f%%) | %.3f | %.3f |\n",
          model.name.c_str(), static_cast<long long>(batch), Median(us["direct"]),
          Median(us["none"]), Median(us["freeze"]), Median(us["for-inference"]),
          Median(us["profiling"]), Median(overhead), 100 * Median(overhead) / Median(us["direct"]),
          Median(freeze_ratio), Median(profiling_ratio));
      std::fflush(stdout);
    }

    // The first Run after Create: what the first user request pays.
    for (bool warm_up : {false, true}) {
      std::vector<double> first;
      for (int i = 0; i < (quick ? 2 : 5); ++i) {
        auto session = MakeSession(**store, model.name, maas::GraphOptimization::kFreeze, warm_up);
        std::vector<at::Tensor> inputs{model.input(8)};
        auto t0 = Clock::now();
        (void)session->Run(inputs);
        first.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
      first_call_rows.push_back("| " + model.name + " | " + (warm_up ? "yes" : "no") + " | " +
                                std::to_string(static_cast<int>(Median(first))) + " |");
    }
  }

  std::printf("\nFirst Run after Create (batch 8, freeze), median us:\n\n");
  std::printf("| model | warm-up | first call us |\n|---|---|---|\n");
  for (const std::string& row : first_call_rows) std::printf("%s\n", row.c_str());

  return 0;
}
