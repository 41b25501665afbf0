// The Scheduler against the limit and the naive approach, in one run.
//
//   build/bench/scheduler_bench [--quick]
//
// 1. The limit: direct forward of the MLP 512-1024-1024-10 on full batches, the best of several
//    thread settings (one thread, all cores in one forward, one forward per core).
// 2. Naive: C client threads calling one shared module's forward on batch 1, with LibTorch's
//    default thread settings (what a first attempt does) and with one thread per caller.
// 3. maas with default options everywhere (one Session, Scheduler::Create(), AddModel; and
//    Server::Create, Deploy): C clients each blocking in Submit(...).get() against the direct
//    forward on batches of C with all cores (the best that C waiting clients allow), and C
//    clients each keeping 32 requests in flight against the limit. The blocking rows are also
//    read against a batcher written for exactly C blocking callers (bench/exact_batcher.h): what
//    remains once requests go through a worker thread.
// 4. Added cost per request: one client in a closed loop, interleaved blocks of Session::Run,
//    Scheduler::Infer (which runs a lone request on the calling thread) and Submit().get()
//    (always through a worker), on an identity model and on the MLP; and the floor of any
//    design that hands requests to a worker thread: a thread handoff round trip.
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "exact_batcher.h"
#include "maas/maas.h"
#include "mlp.h"
#include "scratch_dir.h"

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
    std::exit(1);
  }
}

struct LoadResult {
  double items_per_second = 0;
  double p50_us = 0, p99_us = 0;
};

// Runs `clients` threads calling `call(thread)` in a closed loop for `seconds`; each call is one
// item. Per-call latencies are recorded.
LoadResult ClosedLoop(int clients, double seconds, const std::function<void(int)>& setup,
                      const std::function<void()>& call) {
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::vector<double>> latencies(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      setup(c);
      while (!go) std::this_thread::yield();
      while (!stop) {
        auto t0 = Clock::now();
        call();
        latencies[c].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    });
  }
  auto start = Clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : threads) t.join();
  double elapsed = Seconds(Clock::now() - start);
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  return {static_cast<double>(all.size()) / elapsed, Percentile(all, 0.5), Percentile(all, 0.99)};
}

// Each of `clients` threads keeps up to `window` batch-1 requests in flight through
// Submit with a callback (of a Scheduler or a Server), for `seconds`, refilling when half of
// them are answered (as an asynchronous front end would; waking a client per answer would cost
// more than the inference on 2 cores). Latency: Submit to callback.
template <typename Target>
LoadResult PipelinedLoad(Target& scheduler, const std::string& model, int clients, int window,
                         double seconds, const at::Tensor& input) {
  struct Client {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    std::vector<double> latencies;
  };
  std::vector<Client> state(clients);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      Client& me = state[c];
      while (!stop) {
        {
          std::unique_lock<std::mutex> lock(me.mu);
          // Refill in bursts: wake up when half the window has been answered, not per answer.
          if (me.in_flight >= window) {
            me.cv.wait(lock, [&] { return me.in_flight <= window / 2; });
          }
          ++me.in_flight;
        }
        auto t0 = Clock::now();
        absl::Status s =
            scheduler.Submit(model, {input}, {}, [&me, t0, window](maas::InferenceResult r) {
              if (!r.ok()) std::abort();
              double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
              std::lock_guard<std::mutex> lock(me.mu);
              me.latencies.push_back(us);
              --me.in_flight;
              if (me.in_flight == window / 2 || me.in_flight == 0) me.cv.notify_one();
            });
        if (!s.ok()) std::abort();
      }
      std::unique_lock<std::mutex> lock(me.mu);
      me.cv.wait(lock, [&] { return me.in_flight == 0; });
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : threads) t.join();
  double elapsed = Seconds(Clock::now() - start);
  std::vector<double> all;
  for (Client& c : state) all.insert(all.end(), c.latencies.begin(), c.latencies.end());
  return {static_cast<double>(all.size()) / elapsed, Percentile(all, 0.5), Percentile(all, 0.99)};
}

// The floor of any design that hands a request to a worker thread and the answer back: a
// round trip between two threads through a mutex and condition variables.
double HandoffRoundTripMicros(int rounds) {
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;  // 0: ping's turn, 1: pong's
  std::thread pong([&] {
    for (int i = 0; i < rounds; ++i) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return turn == 1; });
      turn = 0;
      cv.notify_all();
    }
  });
  std::vector<double> us;
  for (int i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    std::unique_lock<std::mutex> lock(mu);
    turn = 1;
    cv.notify_all();
    cv.wait(lock, [&] { return turn == 0; });
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  pong.join();
  return Percentile(us, 0.5);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const double seconds = quick ? 0.3 : 3.0;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int clients = 16;

  const maas::bench::ScratchDir scratch("maas-scheduler-bench");
  const fs::path& dir = scratch.path();
  auto store = maas::ModelStore::Open(dir / "store");
  Check(store.status(), "ModelStore::Open");
  fs::path mlp_file = dir / "mlp.pt";
  maas::bench::BuildMlp().save(mlp_file.string());
  maas::ModelSignature mlp_signature{{{"x", torch::kFloat32, {512}}},
                                     {{"y", torch::kFloat32, {10}}}};
  Check((*store)->Publish("mlp", mlp_file, mlp_signature).status(), "Publish");
  fs::path identity_file = dir / "identity.pt";
  {
    torch::jit::Module identity("Identity");
    identity.define("def forward(self, x: Tensor) -> Tensor:\n  return x\n");
    identity.save(identity_file.string());
  }
  maas::ModelSignature identity_signature{{{"x", torch::kFloat32, {4}}},
                                          {{"y", torch::kFloat32, {4}}}};
  Check((*store)->Publish("identity", identity_file, identity_signature).status(), "Publish");

  std::printf(
      "maas %s scheduler benchmark: MLP 512-1024-1024-10, %d cores, %d clients, %.1f s "
      "per measurement\n\n",
      maas::Version(), cores, clients, seconds);

  // 1. The limit.
  torch::jit::Module direct = torch::jit::load(mlp_file.string());
  direct.eval();
  double limit = 0;
  std::string limit_setting;
  std::printf("| limit: direct forward on full batches | items/s |\n|---|---|\n");
  for (int64_t batch : {32, 64, 128, 256}) {
    at::Tensor x = torch::randn({batch, 512});
    struct Setting {
      const char* name;
      int threads_per_forward;
      int forwards_at_once;
    };
    for (Setting setting :
         {Setting{"1 thread", 1, 1}, Setting{"all cores in one forward", cores, 1},
          Setting{"one forward per core", 1, cores}}) {
      LoadResult r = ClosedLoop(
          setting.forwards_at_once, seconds / 2,
          [&](int) { at::set_num_threads(setting.threads_per_forward); },
          [&] {
            c10::InferenceMode guard;
            direct.forward({x});
          });
      double items = r.items_per_second * static_cast<double>(batch);
      std::printf("| batch %lld, %s | %.0f |\n", static_cast<long long>(batch), setting.name,
                  items);
      if (items > limit) {
        limit = items;
        limit_setting = std::string("batch ") + std::to_string(batch) + ", " + setting.name;
      }
    }
  }
  std::printf("\nlimit = %.0f items/s (%s)\n\n", limit, limit_setting.c_str());

  // 2. Naive: clients share one module and call forward on batch 1.
  at::Tensor one = torch::randn({1, 512});
  auto naive_call = [&] {
    c10::InferenceMode guard;
    direct.forward({one});
  };
  LoadResult naive_default = ClosedLoop(
      clients, seconds, [](int) {}, naive_call);
  LoadResult naive_sane = ClosedLoop(
      clients, seconds, [](int) { at::set_num_threads(1); }, naive_call);

  // The best that `clients` blocking clients allow: the direct forward on batches of that many,
  // with all cores.
  at::Tensor as_many = torch::randn({clients, 512});
  const double blocking_limit = ClosedLoop(
                                    1, seconds / 2, [&](int) { at::set_num_threads(cores); },
                                    [&] {
                                      c10::InferenceMode guard;
                                      direct.forward({as_many});
                                    })
                                    .items_per_second *
                                clients;
  // What they allow once requests go through a thread: a batcher written for exactly this load.
  const double exact = maas::bench::ExactBatcherThroughput(
      clients, seconds, one, cores,
      [&](const at::Tensor& x) { return direct.forward({x}).toTensor(); });

  // 3. maas, default options everywhere.
  std::shared_ptr<maas::Session> session = std::move(*maas::Session::Create(**store, "mlp"));
  auto scheduler = maas::Scheduler::Create();
  Check(scheduler.status(), "Scheduler::Create");
  Check((*scheduler)->AddModel("mlp", {session}), "AddModel");
  auto blocking = [&](auto& target) {
    return ClosedLoop(
        clients, seconds, [](int) {},
        [&] {
          if (!target.Submit("mlp", {one}).get().ok()) std::abort();
        });
  };
  LoadResult maas_closed = blocking(**scheduler);
  maas::ModelStats stats = *(*scheduler)->Stats("mlp");
  constexpr int kWindow = 32;
  LoadResult maas_pipelined = PipelinedLoad(**scheduler, "mlp", clients, kWindow, seconds, one);
  maas::ModelStats pipelined_stats = *(*scheduler)->Stats("mlp");
  auto server = maas::Server::Create(dir / "store");
  Check(server.status(), "Server::Create");
  Check((*server)->Deploy("mlp"), "Deploy");
  LoadResult server_closed = blocking(**server);
  LoadResult server_pipelined = PipelinedLoad(**server, "mlp", clients, kWindow, seconds, one);
  auto mean_batch = [](const maas::ModelStats& s, const maas::ModelStats& before) {
    const int64_t batches = s.batches - before.batches;
    return batches ? static_cast<double>(s.items - before.items) / batches : 0.0;
  };

  const double best_naive = std::max(naive_default.items_per_second, naive_sane.items_per_second);
  std::printf(
      "direct forward on batches of %d with all cores (the best for %d blocking clients): %.0f "
      "items/s\n\n",
      clients, clients, blocking_limit);
  std::printf(
      "| %d clients, batch 1, default options | items/s | p50 us | p99 us | vs limit | vs "
      "batches of %d | vs best naive |\n",
      clients, clients);
  std::printf("|---|---|---|---|---|---|---|\n");
  auto row = [&](const std::string& name, const LoadResult& r) {
    std::printf("| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", name.c_str(),
                r.items_per_second, r.p50_us, r.p99_us, r.items_per_second / limit,
                r.items_per_second / blocking_limit, r.items_per_second / best_naive);
  };
  row("naive: shared module, default threads", naive_default);
  row("naive: shared module, 1 thread per caller", naive_sane);
  std::printf(
      "| exact batcher: told there are %d callers, waits for all %d | %.0f | | | %.2f | %.2f "
      "| %.2f |\n",
      clients, clients, exact, exact / limit, exact / blocking_limit, exact / best_naive);
  row("Scheduler, each client blocking in Submit().get()", maas_closed);
  row("Server, each client blocking", server_closed);
  row("Scheduler, each client " + std::to_string(kWindow) + " in flight", maas_pipelined);
  row("Server, each client " + std::to_string(kWindow) + " in flight", server_pipelined);
  std::printf(
      "\nblocking, against the exact batcher (bench/exact_batcher.h): Scheduler %.2f, Server "
      "%.2f\n",
      maas_closed.items_per_second / exact, server_closed.items_per_second / exact);
  std::printf(
      "\nScheduler defaults: %d workers; mean batch %.1f items blocking (expected in flight %.1f),"
      " %.1f pipelined (batch size limit learned: %lld)\n\n",
      stats.workers, mean_batch(stats, {}), stats.expected_in_flight,
      mean_batch(pipelined_stats, stats), static_cast<long long>(pipelined_stats.batch_size_limit));

  // 4 and 5: one client, closed loop, interleaved blocks of Session::Run, Scheduler::Infer,
  // Scheduler::Submit().get() and Server::Infer (the same path behind a version routing table).
  struct Lone {
    double run_us, infer_us, submit_us, server_us;
  };
  auto lone_requests = [&](const std::string& model, const at::Tensor& x, int block) {
    auto session = maas::Session::Create(**store, model);
    Check(session.status(), "Session::Create");
    std::shared_ptr<maas::Session> shared = std::move(*session);
    Check((*scheduler)->AddModel(model + "-single", {shared}), "AddModel");
    if (model != "mlp") Check((*server)->Deploy(model), "Deploy");
    std::vector<double> run_us, infer_us, submit_us, server_us;
    auto time = [](std::vector<double>& out, const std::function<void()>& call) {
      auto t0 = Clock::now();
      call();
      out.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    };
    const int rounds = quick ? 5 : 40;
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < block; ++i) time(run_us, [&] { (void)shared->Run({x}); });
      for (int i = 0; i < block; ++i) {
        time(infer_us, [&] { (void)(*scheduler)->Infer(model + "-single", {x}); });
      }
      for (int i = 0; i < block; ++i) {
        time(submit_us, [&] { (void)(*scheduler)->Submit(model + "-single", {x}).get(); });
      }
      for (int i = 0; i < block; ++i) time(server_us, [&] { (void)(*server)->Infer(model, {x}); });
    }
    return Lone{Percentile(run_us, 0.5), Percentile(infer_us, 0.5), Percentile(submit_us, 0.5),
                Percentile(server_us, 0.5)};
  };
  Lone identity = lone_requests("identity", torch::randn({1, 4}), 500);
  Lone mlp = lone_requests("mlp", one, 50);
  std::printf(
      "| one client, closed loop, median us | Session::Run | Scheduler::Infer | added | "
      "Submit(...).get() | added | Server::Infer | added |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (auto [name, lone] :
       {std::make_pair("identity model", identity), std::make_pair("MLP, batch 1", mlp)}) {
    std::printf(
        "| %s | %.1f | %.1f | %+.1f us (%+.1f%%) | %.1f | %+.1f us (%+.1f%%) | %.1f | %+.1f us |\n",
        name, lone.run_us, lone.infer_us, lone.infer_us - lone.run_us,
        100 * (lone.infer_us - lone.run_us) / lone.run_us, lone.submit_us,
        lone.submit_us - lone.run_us, 100 * (lone.submit_us - lone.run_us) / lone.run_us,
        lone.server_us, lone.server_us - lone.run_us);
  }
  const bool lone_ok =
      mlp.infer_us <= mlp.run_us * 1.05 + 20 && mlp.server_us <= mlp.run_us * 1.05 + 20;
  std::printf(
      "\none MLP client on default options within 5%% + 20 us of Session::Run (Scheduler::Infer "
      "and Server::Infer): %s\n",
      lone_ok ? "yes" : "NO");
  std::printf(
      "\nfloor of the Submit path: a thread handoff round trip (condvar ping-pong) takes "
      "%.1f us here\n",
      HandoffRoundTripMicros(quick ? 2000 : 20000));

  server->reset();
  scheduler->reset();
  return 0;
}
