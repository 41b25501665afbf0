// Instructions per item of the same requests served three ways, counted by callgrind (immune to
// the machine's noise, unlike time): a direct forward of the MLP on batches of 16, the Scheduler,
// and the Server. The queued ways get 1-row requests, all submitted before any is awaited,
// batched at most 16 by one worker on one thread (adaptive batching off), so that their batches
// match the direct forward's and the difference is what maas adds per item: validation, queueing,
// joining, splitting, handoffs, routing.
//
//   scripts/request-cost              # builds, runs the three under callgrind, prints the table
//   request_cost MODE [ITEMS]         # MODE: direct, scheduler or server; ITEMS: 1024
//
// Only the measured part is instrumented (CALLGRIND_START/STOP_INSTRUMENTATION); under
// callgrind, run with --instr-atstart=no. Without callgrind it runs the same work uninstrumented.
#include <ATen/Parallel.h>
#include <torch/script.h>
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include "maas/maas.h"
#include "mlp.h"
#include "scratch_dir.h"

namespace {

namespace fs = std::filesystem;
constexpr int64_t kBatch = 16;

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "request_cost: %s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

maas::BatchingOptions FixedBatches() {
  maas::BatchingOptions options;
  options.max_batch_size = kBatch;
  options.adaptive_batching = false;
  options.workers_per_session = 1;
  return options;
}

// Submits every request, then waits for all: the worker forms full batches of kBatch.
template <typename SubmitFn>
int64_t SubmitAllThenWait(int64_t items, SubmitFn submit) {
  std::vector<std::future<maas::InferenceResult>> answers;
  answers.reserve(static_cast<size_t>(items));
  for (int64_t i = 0; i < items; ++i) answers.push_back(submit());
  int64_t ok = 0;
  for (auto& answer : answers) ok += answer.get().ok() ? 1 : 0;
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s direct|scheduler|server [ITEMS]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const int64_t items = argc > 2 ? std::atoll(argv[2]) : 1024;
  at::set_num_threads(1);
  const maas::bench::ScratchDir scratch("maas-request-cost");
  auto store = maas::ModelStore::Open(scratch.path() / "store");
  Check(store.status(), "ModelStore::Open");
  const fs::path file = scratch.path() / "mlp.pt";
  maas::bench::BuildMlp().save(file.string());
  Check((*store)
            ->Publish("mlp", file,
                      maas::ModelSignature{{{"x", torch::kFloat32, {512}}},
                                           {{"y", torch::kFloat32, {10}}}})
            .status(),
        "Publish");
  const at::Tensor row = torch::rand({1, 512});

  int64_t answered = 0;
  if (mode == "direct") {
    torch::jit::Module module = torch::jit::load(file.string());
    module.eval();
    const at::Tensor batch = torch::rand({kBatch, 512});
    for (int i = 0; i < 8; ++i) module.forward({batch});  // Warm up.
    torch::NoGradGuard no_grad;
    CALLGRIND_START_INSTRUMENTATION;
    for (int64_t done = 0; done < items; done += kBatch) {
      answered += module.forward({batch}).toTensor().size(0);
    }
    CALLGRIND_STOP_INSTRUMENTATION;
  } else if (mode == "scheduler") {
    auto session = maas::Session::Create(**store, "mlp");
    Check(session.status(), "Session::Create");
    auto scheduler = maas::Scheduler::Create();
    Check(scheduler.status(), "Scheduler::Create");
    Check((*scheduler)->AddModel("mlp", {std::move(*session)}, FixedBatches()), "AddModel");
    auto submit = [&] { return (*scheduler)->Submit("mlp", {row}); };
    SubmitAllThenWait(8 * kBatch, submit);  // Warm up.
    CALLGRIND_START_INSTRUMENTATION;
    answered = SubmitAllThenWait(items, submit);
    CALLGRIND_STOP_INSTRUMENTATION;
  } else if (mode == "server") {
    auto server = maas::Server::Create(scratch.path() / "store");
    Check(server.status(), "Server::Create");
    maas::DeployOptions options;
    options.batching = FixedBatches();
    Check((*server)->Deploy("mlp", options), "Deploy");
    auto submit = [&] { return (*server)->Submit("mlp", {row}); };
    SubmitAllThenWait(8 * kBatch, submit);  // Warm up.
    CALLGRIND_START_INSTRUMENTATION;
    answered = SubmitAllThenWait(items, submit);
    CALLGRIND_STOP_INSTRUMENTATION;
  } else {
    std::fprintf(stderr, "unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  std::printf("%s: %lld items answered\n", mode.c_str(), static_cast<long long>(answered));
  return answered == items ? 0 : 1;
}
