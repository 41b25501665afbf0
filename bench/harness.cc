// The benchmark harness: maas beside the limit and the alternatives, on real architectures.
//
//   scripts/bench [--quick] [--device cuda:0]   # scripts the models, builds, runs this, plots
//   build/bench/harness MODELS_DIR OUT_DIR [--quick] [--device cuda:0]
//
// With --device, every system runs the models on that device, taking host inputs and giving
// host outputs as maas does (the limit too: host to device, forward, device to host, on full
// batches; its parallel setting is then one or two forwards at once, each on its own stream).
//
// For each model listed in MODELS_DIR/models.txt (written by bench/models/make_models.py):
//   limit         direct forward on full batches, the best of batch sizes x thread settings,
//                 of the module prepared by optimize_for_inference as maas prepares it;
//   naive         16 client threads calling one shared module's forward on batch 1;
//   simple        a hand-written batcher: one worker, a mutex, a condition variable and a
//                 fixed 2 ms timeout (what a competent engineer writes in an afternoon), with
//                 one intra-op thread (on these machines better than a team of all cores);
//   maas-default  Scheduler, default options everywhere: one Session, Scheduler::Create(),
//                 AddModel with default BatchingOptions (workers and batching chosen by maas);
//   maas-tuned    Scheduler, a fixed hand-tuned policy: one session and one worker per core,
//                 max_batch_size = the limit's best batch, no adaptive batching.
//   exact batcher a batcher written for exactly 16 blocking clients (bench/exact_batcher.h),
//                 beside maas-default's blocking row: what a thread handoff leaves.
// And, where models.txt names the model's AOTInductor package (the same weights through
// torch.export): the package's limit (AOTIModelPackageLoader::run on full batches, measured as
// the TorchScript limit is) and maas-default serving the package, in the closed loop.
// Closed loop: 16 clients, one request of one item each in flight. Server scenario (MLPerf
// style): Poisson arrivals of one-item requests at rising rates; the highest rate whose p99
// latency (from the scheduled arrival) stays within the model's bound.
// Prints markdown; writes OUT_DIR/results.csv and OUT_DIR/server_<model>_<system>.dat.
#include <ATen/Parallel.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "exact_batcher.h"
#include "maas/maas.h"
#include "util/posix_files.h"

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
using Done = std::function<void(bool ok)>;  // ok: answered, not refused

constexpr int kClients = 16;
// The limit's batch sizes on a GPU: doubled at least to the first, at most to the second, and
// between them as long as a doubling raises throughput by 3% or more.
constexpr int64_t kGpuExploreAtLeast = 256, kGpuExploreAtMost = 4096;
constexpr double kStillRising = 1.03;

// Where the models run (--device); the CPU by default.
c10::Device g_device(c10::DeviceType::CPU);

// Runs `module` on a host tensor: to the device (asynchronously when `x` is page-locked),
// forward, back to the host.
at::Tensor ForwardOnDevice(torch::jit::Module& module, const at::Tensor& x) {
  at::Tensor on_device = x.to(g_device, x.scalar_type(), /*non_blocking=*/x.is_pinned());
  return module.forward({on_device}).toTensor().to(c10::Device(c10::DeviceType::CPU));
}

// Runs an AOTInductor package as ForwardOnDevice runs a module (on the calling thread's stream).
at::Tensor RunPackageOnDevice(torch::inductor::AOTIModelPackageLoader& package,
                              const at::Tensor& x) {
  at::Tensor on_device = x.to(g_device, x.scalar_type(), /*non_blocking=*/x.is_pinned());
  void* stream = nullptr;
  if (!g_device.is_cpu()) {
    stream = c10::impl::VirtualGuardImpl(g_device.type()).getStream(g_device).native_handle();
  }
  return package.run({on_device.contiguous()}, stream)[0].to(c10::Device(c10::DeviceType::CPU));
}

// On a GPU, gives the calling thread a stream of its own from LibTorch's pool.
std::optional<c10::StreamGuard> OwnStream() {
  if (g_device.is_cpu()) return std::nullopt;
  c10::impl::VirtualGuardImpl impl(g_device.type());
  return std::optional<c10::StreamGuard>(std::in_place, impl.getStreamFromGlobalPool(g_device));
}

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

void Check(const absl::Status& status, const std::string& what) {
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), status.ToString().c_str());
    std::exit(1);
  }
}

// Checks that maas serving the package `model` answers `x` as the TorchScript module of the same
// weights, as loaded (eager PyTorch's numbers), within float32 rounding of a reordered
// computation: the largest difference at most 1e-3 of the largest output. Exits otherwise.
void CheckSameAnswers(const maas::ModelStore& store, const std::string& model,
                      torch::jit::Module& module, const at::Tensor& x) {
  maas::SessionOptions options;
  options.device = g_device;
  auto session = maas::Session::Create(store, model, options);
  Check(session.status(), "Session::Create " + model);
  absl::StatusOr<std::vector<at::Tensor>> got = (*session)->Run({x});
  Check(got.status(), "Session::Run " + model);
  at::Tensor want;
  {
    c10::InferenceMode guard;
    want = ForwardOnDevice(module, x);
  }
  const double scale = want.abs().max().item<double>();
  const double difference = ((*got)[0] - want).abs().max().item<double>();
  std::printf("%s answers as the TorchScript module: largest difference %.2g (%.2g of the largest "
              "output)\n\n",
              model.c_str(), difference, difference / std::max(scale, 1e-30));
  if (difference > 1e-3 * scale) {
    std::fprintf(stderr, "%s: answers differ from the TorchScript module's\n", model.c_str());
    std::exit(1);
  }
}

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

struct ModelSpec {
  std::string name, file;
  std::vector<int64_t> input, output, batches;
  double bound_ms = 0;
  std::string package;  // The AOTInductor package of the same weights; empty: none.
};


// A way of serving one-item requests.
class System {
 public:
  virtual ~System() = default;
  // Answers `x` sometime, then calls `done`.
  virtual void Async(const at::Tensor& x, Done done) = 0;
  // Answers `x` before returning.
  virtual void Call(const at::Tensor& x) {
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    Async(x, [&](bool) {
      std::lock_guard<std::mutex> lock(mu);
      finished = true;
      cv.notify_one();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return finished; });
  }
};

// Naive: callers share one module and call forward themselves. Async requests are served by a
// pool of kClients threads doing the same, as a naive server would.
class Naive : public System {
 public:
  explicit Naive(torch::jit::Module module) : module_(std::move(module)) {
    for (int i = 0; i < kClients; ++i) {
      pool_.emplace_back([this] {
        at::set_num_threads(1);  // the naive baseline at its best: no OpenMP team per caller
        while (true) {
          std::pair<at::Tensor, Done> job;
          {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
            if (jobs_.empty()) return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
          }
          Call(job.first);
          job.second(true);
        }
      });
    }
  }
  ~Naive() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      jobs_.clear();  // A backlog left by an overloaded run is dropped, not drained.
    }
    cv_.notify_all();
    for (std::thread& t : pool_) t.join();
  }
  void Call(const at::Tensor& x) override {
    c10::InferenceMode guard;
    ForwardOnDevice(module_, x);
  }
  void Async(const at::Tensor& x, Done done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.emplace_back(x, std::move(done));
    }
    cv_.notify_one();
  }

 private:
  torch::jit::Module module_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<at::Tensor, Done>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> pool_;
};

// What a competent engineer writes in an afternoon: one worker, a mutex, a condition variable,
// a fixed timeout for a batch to fill.
class SimpleBatcher : public System {
 public:
  SimpleBatcher(torch::jit::Module module, int64_t max_batch, int threads)
      : module_(std::move(module)), max_batch_(max_batch) {
    worker_ = std::thread([this, threads] {
      at::set_num_threads(threads);
      c10::InferenceMode guard;
      while (true) {
        std::vector<std::pair<at::Tensor, Done>> batch;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
          if (queue_.empty()) return;
          cv_.wait_until(lock, Clock::now() + std::chrono::milliseconds(2), [&] {
            return stop_ || static_cast<int64_t>(queue_.size()) >= max_batch_;
          });
          while (!queue_.empty() && static_cast<int64_t>(batch.size()) < max_batch_) {
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
        }
        std::vector<at::Tensor> inputs;
        for (auto& item : batch) inputs.push_back(item.first);
        at::Tensor out = ForwardOnDevice(module_, at::cat(inputs, 0));
        for (size_t i = 0; i < batch.size(); ++i) {
          at::Tensor row = out.narrow(0, static_cast<int64_t>(i), 1);  // the caller's answer
          (void)row;
          batch[i].second(true);
        }
      }
    });
  }
  ~SimpleBatcher() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      queue_.clear();  // A backlog left by an overloaded run is dropped, not drained.
    }
    cv_.notify_all();
    worker_.join();
  }
  void Async(const at::Tensor& x, Done done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace_back(x, std::move(done));
    }
    cv_.notify_one();
  }

 private:
  torch::jit::Module module_;
  const int64_t max_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<at::Tensor, Done>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

class Maas : public System {
 public:
  Maas(const maas::ModelStore& store, const std::string& model, int instances,
       maas::BatchingOptions options) {
    std::vector<std::shared_ptr<maas::Session>> sessions;
    maas::SessionOptions session_options;
    session_options.device = g_device;
    for (int i = 0; i < instances; ++i) {
      auto session = maas::Session::Create(store, model, session_options);
      Check(session.status(), "Session::Create " + model);
      sessions.push_back(std::move(*session));
    }
    auto scheduler = maas::Scheduler::Create();
    Check(scheduler.status(), "Scheduler::Create");
    scheduler_ = std::move(*scheduler);
    Check(scheduler_->AddModel(model, sessions, options), "AddModel");
    model_ = model;
  }
  void Async(const at::Tensor& x, Done done) override {
    // A full queue refuses at once (Unavailable): the server scenario counts it as a miss.
    auto callback = std::make_shared<Done>(std::move(done));
    absl::Status s = scheduler_->Submit(
        model_, {x}, {}, [callback](maas::InferenceResult result) { (*callback)(result.ok()); });
    if (!s.ok()) (*callback)(false);
  }
  void Call(const at::Tensor& x) override {
    if (!scheduler_->Infer(model_, {x}).ok()) std::abort();
  }

 private:
  std::unique_ptr<maas::Scheduler> scheduler_;
  std::string model_;
};

struct Measure {
  double items_per_second = 0, p50_us = 0, p99_us = 0;
};

// The best throughput of `forward` (which runs a whole batch) on full batches: the best of
// spec's batch sizes x thread settings (one forward on all cores, or one per core; on a GPU one
// or two at once). On a GPU the best batch is far larger than the listed sizes (chosen for a
// CPU): keep doubling, at least to kGpuExploreAtLeast, then as long as throughput still rises,
// up to `max_batch`. Listed sizes below `min_batch` are skipped (a package's smallest batch).
struct Limit {
  double items_per_second = 0;
  int64_t batch = 1;
  std::string setting;
  std::vector<int64_t> batches;  // The sizes tried.
};
Limit MeasureLimit(const ModelSpec& spec, const std::function<void(const at::Tensor&)>& forward,
                   const std::function<at::Tensor(int64_t)>& example, int cores, int parallelism,
                   double limit_seconds, int64_t min_batch, int64_t max_batch) {
  Limit best;
  double& limit = best.items_per_second;
  std::vector<int64_t>& batches = best.batches;
  for (int64_t batch : spec.batches) {
    if (batch >= min_batch && batch <= max_batch) batches.push_back(batch);
  }
  double previous_best = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    const int64_t batch = batches[b];
    double best_here = 0;
    at::Tensor x = example(batch);
    if (!g_device.is_cpu()) x = x.pin_memory();  // as maas stages its batches
    for (int parallel : {1, parallelism}) {
      const int threads = parallel == 1 ? cores : 1;  // one forward on all cores, or one per core
      std::atomic<bool> stop{false};
      std::atomic<int64_t> calls{0};
      std::vector<std::thread> runners;
      for (int p = 0; p < parallel; ++p) {
        runners.emplace_back([&] {
          at::set_num_threads(threads);
          c10::InferenceMode guard;
          std::optional<c10::StreamGuard> stream = OwnStream();
          for (int i = 0; i < 3; ++i) forward(x);  // warm up the executor
          while (!stop) {
            forward(x);
            ++calls;
          }
        });
      }
      // Count only after every runner has warmed up.
      std::this_thread::sleep_for(std::chrono::duration<double>(limit_seconds / 4));
      const int64_t calls_before = calls;
      auto t0 = Clock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(limit_seconds));
      const int64_t counted = calls - calls_before;
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      stop = true;
      for (std::thread& r : runners) r.join();
      double items = static_cast<double>(counted * batch) / elapsed;
      best_here = std::max(best_here, items);
      if (items > limit) {
        limit = items;
        best.batch = batch;
        best.setting =
            "batch " + std::to_string(batch) + ", " +
            (!g_device.is_cpu() ? (parallel == 1 ? "one forward at a time" : "two streams")
             : parallel == 1    ? "one forward on all cores"
                                : "one forward per core");
      }
    }
    const bool rising = best_here > previous_best * kStillRising;
    previous_best = best_here;
    if (b + 1 == batches.size() && !g_device.is_cpu() && batch * 2 <= max_batch &&
        (batch < kGpuExploreAtLeast || rising)) {
      batches.push_back(batch * 2);
    }
  }
  return best;
}

Measure ClosedLoop(System& system, const at::Tensor& x, double seconds) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(kClients);
  std::vector<std::thread> clients;
  auto start = Clock::now();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      at::set_num_threads(1);
      while (!stop) {
        auto t0 = Clock::now();
        system.Call(x);
        latencies[c].push_back(Micros(Clock::now() - t0));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : clients) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  return {static_cast<double>(all.size()) / elapsed, Percentile(all, 0.5), Percentile(all, 0.99)};
}

// kClients threads each keep up to `window` requests in flight through Async, refilling when
// half of them are answered (as an asynchronous front end would), for `seconds`.
double Pipelined(System& system, const at::Tensor& x, double seconds, int window) {
  struct Client {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
  };
  std::vector<Client> state(kClients);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> answered{0};
  std::vector<std::thread> clients;
  const auto start = Clock::now();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      at::set_num_threads(1);
      Client& me = state[c];
      while (!stop) {
        {
          std::unique_lock<std::mutex> lock(me.mu);
          if (me.in_flight >= window) me.cv.wait(lock, [&] { return me.in_flight <= window / 2; });
          ++me.in_flight;
        }
        system.Async(x, [&me, &answered, window](bool ok) {
          if (!ok) std::abort();
          ++answered;
          std::lock_guard<std::mutex> lock(me.mu);
          if (--me.in_flight == window / 2 || me.in_flight == 0) me.cv.notify_one();
        });
      }
      std::unique_lock<std::mutex> lock(me.mu);
      me.cv.wait(lock, [&] { return me.in_flight == 0; });
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : clients) t.join();
  return static_cast<double>(answered) /
         std::chrono::duration<double>(Clock::now() - start).count();
}

// Poisson arrivals at `rate` for `seconds`; latency from each request's scheduled arrival.
// Requests still unanswered 2 s after the last arrival count as infinitely late.
Measure Server(System& system, const at::Tensor& x, double rate, double seconds) {
  std::mt19937_64 rng(42);
  std::exponential_distribution<double> gap(rate);
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<double> latencies;
    int64_t outstanding = 0;
  };
  auto shared = std::make_shared<Shared>();
  const auto start = Clock::now();
  double t = 0;
  int64_t sent = 0;
  while (t < seconds) {
    t += gap(rng);
    const auto due =
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(t));
    std::this_thread::sleep_until(due);
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      ++shared->outstanding;
    }
    ++sent;
    system.Async(x, [shared, due](bool ok) {
      double us = ok ? Micros(Clock::now() - due) : 1e12;  // a refusal misses any bound
      std::lock_guard<std::mutex> lock(shared->mu);
      shared->latencies.push_back(us);
      if (--shared->outstanding == 0) shared->cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait_until(lock, Clock::now() + std::chrono::seconds(2),
                        [&] { return shared->outstanding == 0; });
  std::vector<double> latencies = shared->latencies;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  while (static_cast<int64_t>(latencies.size()) < sent) latencies.push_back(1e12);
  lock.unlock();
  int64_t answered = 0;
  for (double us : shared->latencies) answered += us < 1e12;
  return {static_cast<double>(answered) / elapsed, Percentile(latencies, 0.5),
          Percentile(latencies, 0.99)};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODELS_DIR OUT_DIR [--quick]\n", argv[0]);
    return 2;
  }
  const fs::path models_dir = argv[1], out_dir = argv[2];
  bool quick = false;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      try {
        g_device = c10::Device(argv[++i]);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bad --device %s: %s\n", argv[i], e.what());
        return 2;
      }
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  const double closed_seconds = quick ? 0.3 : 3.0;
  const double limit_seconds = quick ? 0.2 : 1.0;
  const double server_seconds = quick ? 0.3 : 2.0;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::error_code made;
  maas::internal::posix::CreateDirectories(out_dir, made);
  if (made) {
    std::fprintf(stderr, "cannot create %s: %s\n", out_dir.c_str(), made.message().c_str());
    return 1;
  }

  std::vector<ModelSpec> specs;
  std::ifstream index(models_dir / "models.txt");
  for (std::string line; std::getline(index, line);) {
    std::istringstream fields(line);
    std::string name, file, in, out, batches;
    if (!(fields >> name >> file >> in >> out >> batches)) continue;
    ModelSpec spec{name, file, ParseList(in), ParseList(out), ParseList(batches), 0, ""};
    fields >> spec.bound_ms >> spec.package;
    specs.push_back(spec);
  }
  if (specs.empty()) {
    std::fprintf(stderr, "no models in %s/models.txt\n", models_dir.c_str());
    return 1;
  }

  auto store = maas::ModelStore::Open(out_dir / "store");
  Check(store.status(), "ModelStore::Open");
  std::ofstream csv(out_dir / "results.csv");
  csv << "scenario,model,system,offered_per_s,items_per_s,p50_us,p99_us,ratio_to_limit\n";

  // On a GPU, instances and parallel forwards are per device, not per core.
  const int parallelism = g_device.is_cpu() ? cores : 2;
  std::printf("# maas %s benchmark harness%s: %d cores, %d clients, device %s\n\n", maas::Version(),
              quick ? " (quick mode)" : "", cores, kClients, g_device.str().c_str());
  for (const ModelSpec& spec : specs) {
    maas::ModelSignature signature{{{"input", torch::kFloat32, spec.input}},
                                   {{"output", torch::kFloat32, spec.output}}};
    Check((*store)->Publish(spec.name, spec.file, signature).status(), "Publish " + spec.name);
    torch::jit::Module module = torch::jit::load(spec.file, g_device);
    module.eval();
    // The limit runs the graph as maas prepares it (optimize_for_inference), so that it stays
    // the best LibTorch can do; naive and simple use the module as loaded, as users would.
    torch::jit::Module prepared = torch::jit::optimize_for_inference(module);
    if (!g_device.is_cpu()) {
      // The limit's runners use streams of their own, which do not wait for this one.
      c10::impl::VirtualGuardImpl impl(g_device.type());
      impl.synchronizeStream(impl.getStream(g_device));
    }
    auto example = [&](int64_t batch) {
      std::vector<int64_t> shape{batch};
      shape.insert(shape.end(), spec.input.begin(), spec.input.end());
      return torch::randn(shape);
    };
    const at::Tensor one = example(1);

    // The limit: full batches, best of batch sizes x thread settings.
    const Limit direct = MeasureLimit(
        spec, [&](const at::Tensor& x) { ForwardOnDevice(prepared, x); }, example, cores,
        parallelism, limit_seconds, 1, kGpuExploreAtMost);
    const double limit = direct.items_per_second;
    const int64_t limit_batch = direct.batch;
    const std::string& limit_setting = direct.setting;
    const std::vector<int64_t>& batches = direct.batches;

    // The same weights as an AOTInductor package, measured the same way.
    std::optional<Limit> package_limit;
    if (!spec.package.empty()) {
      absl::StatusOr<maas::ModelInfo> published =
          (*store)->Publish(spec.name + "-pt2", spec.package, signature);
      Check(published.status(), "Publish " + spec.package);
      const maas::ModelSignature& accepted = published->signature;  // the package's batch range
      CheckSameAnswers(**store, spec.name + "-pt2", module, example(3));
      torch::inductor::AOTIModelPackageLoader package(
          spec.package, "model", /*run_single_threaded=*/false, parallelism + 1,
          g_device.is_cuda() ? g_device.index() : c10::DeviceIndex(-1));
      package_limit = MeasureLimit(
          spec, [&](const at::Tensor& x) { RunPackageOnDevice(package, x); }, example, cores,
          parallelism, limit_seconds, accepted.min_batch_size,
          accepted.max_batch_size > 0 ? accepted.max_batch_size : kGpuExploreAtMost);
    }

    csv << "limit," << spec.name << ",direct," << 0 << "," << limit << ",0,0,1\n";

    maas::BatchingOptions tuned;
    tuned.max_batch_size = std::max<int64_t>(limit_batch, 1);
    tuned.adaptive_batching = false;
    tuned.workers_per_session = 1;
    struct Entry {
      std::string name;
      std::function<std::unique_ptr<System>()> make;
    };
    std::vector<Entry> systems = {
        {"naive", [&] { return std::make_unique<Naive>(module); }},
        {"simple",
         [&] { return std::make_unique<SimpleBatcher>(module, tuned.max_batch_size, 1); }},
        {"maas-default",
         [&] { return std::make_unique<Maas>(**store, spec.name, 1, maas::BatchingOptions()); }},
        {"maas-tuned",
         [&] { return std::make_unique<Maas>(**store, spec.name, parallelism, tuned); }},
    };

    std::printf(
        "## %s (per item: input [%s])\n\nlimit: %.0f items/s (%s; batch sizes tried: %s)\n\n",
        spec.name.c_str(), absl::StrJoin(spec.input, ", ").c_str(), limit, limit_setting.c_str(),
        absl::StrJoin(batches, ", ").c_str());
    double default_closed = 0;
    std::printf("| %d clients, batch 1, closed loop | items/s | p50 ms | p99 ms | vs limit |\n",
                kClients);
    std::printf("|---|---|---|---|---|\n");
    std::printf("| limit (direct forward, full batches) | %.0f | | | 1.00 |\n", limit);
    for (const Entry& entry : systems) {
      std::unique_ptr<System> system = entry.make();
      Measure m = ClosedLoop(*system, one, closed_seconds);
      std::printf("| %s | %.0f | %.2f | %.2f | %.2f |\n", entry.name.c_str(), m.items_per_second,
                  m.p50_us / 1000, m.p99_us / 1000, m.items_per_second / limit);
      std::fflush(stdout);
      csv << "closed," << spec.name << "," << entry.name << ",0," << m.items_per_second << ","
          << m.p50_us << "," << m.p99_us << "," << m.items_per_second / limit << "\n";
      if (entry.name == "maas-default") default_closed = m.items_per_second;
    }
    if (package_limit) {
      // The package: its own limit, and maas-default serving it, in the same run.
      const double package = package_limit->items_per_second;
      std::printf("| limit, AOTInductor package (direct run, full batches; %s) | %.0f | | | %.2f |\n",
                  package_limit->setting.c_str(), package, package / limit);
      Maas served(**store, spec.name + "-pt2", 1, maas::BatchingOptions());
      const Measure m = ClosedLoop(served, one, closed_seconds);
      std::printf("| maas-default, AOTInductor package | %.0f | %.2f | %.2f | %.2f (%.2f of the "
                  "package's limit) |\n",
                  m.items_per_second, m.p50_us / 1000, m.p99_us / 1000, m.items_per_second / limit,
                  m.items_per_second / package);
      std::fflush(stdout);
      csv << "limit," << spec.name << ",direct-pt2,0," << package << ",0,0," << package / limit
          << "\n";
      csv << "closed," << spec.name << ",maas-default-pt2,0," << m.items_per_second << ","
          << m.p50_us << "," << m.p99_us << "," << m.items_per_second / limit << "\n";
    }

    // Default options against what the load allows: 16 blocking clients against the direct
    // forward on batches of 16 with all cores; 16 x 32 in flight against the limit; one client
    // against Session::Run.
    {
      at::Tensor sixteen = example(kClients);
      if (!g_device.is_cpu()) sixteen = sixteen.pin_memory();
      std::atomic<bool> stop{false};
      std::atomic<int64_t> calls{0};
      std::thread runner([&] {
        at::set_num_threads(cores);
        c10::InferenceMode guard;
        std::optional<c10::StreamGuard> stream = OwnStream();
        for (int i = 0; i < 3; ++i) ForwardOnDevice(prepared, sixteen);
        while (!stop) {
          ForwardOnDevice(prepared, sixteen);
          ++calls;
        }
      });
      std::this_thread::sleep_for(std::chrono::duration<double>(limit_seconds / 4));
      const int64_t before = calls;
      const auto t0 = Clock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(limit_seconds));
      const double batch16 = static_cast<double>((calls - before) * kClients) /
                             std::chrono::duration<double>(Clock::now() - t0).count();
      stop = true;
      runner.join();
      // What 16 blocking clients allow once requests go through a thread.
      const double exact = maas::bench::ExactBatcherThroughput(
          kClients, closed_seconds, one, cores,
          [&](const at::Tensor& x) { return ForwardOnDevice(prepared, x); });
      constexpr int kWindow = 32;
      double pipelined = 0;
      {
        Maas system(**store, spec.name, 1, maas::BatchingOptions());
        pipelined = Pipelined(system, one, closed_seconds, kWindow);
      }
      // One client, interleaved blocks of Session::Run and Scheduler::Infer, medians.
      maas::SessionOptions session_options;
      session_options.device = g_device;
      std::shared_ptr<maas::Session> session =
          std::move(*maas::Session::Create(**store, spec.name, session_options));
      auto scheduler = std::move(*maas::Scheduler::Create());
      Check(scheduler->AddModel(spec.name, {session}), "AddModel");
      std::vector<double> run_us, infer_us;
      const int rounds = quick ? 3 : 10, block = 20;
      for (int r = 0; r < rounds; ++r) {
        for (int i = 0; i < block; ++i) {
          auto t = Clock::now();
          (void)session->Run({one});
          run_us.push_back(Micros(Clock::now() - t));
        }
        for (int i = 0; i < block; ++i) {
          auto t = Clock::now();
          (void)scheduler->Infer(spec.name, {one});
          infer_us.push_back(Micros(Clock::now() - t));
        }
      }
      const double run = Percentile(run_us, 0.5), infer = Percentile(infer_us, 0.5);
      std::printf(
          "\n| default options | items/s or median us | against | ratio or added | target |\n");
      std::printf("|---|---|---|---|---|\n");
      std::printf(
          "| %d clients blocking (maas-default above) | %.0f | forward on batches of %d, all "
          "cores: %.0f | %.2f | 0.8 |\n",
          kClients, default_closed, kClients, batch16, default_closed / batch16);
      std::printf(
          "| the same, against a batcher written for exactly %d blocking clients | %.0f | exact "
          "batcher: %.0f (%.2f of batches of %d) | %.2f | |\n",
          kClients, default_closed, exact, exact / batch16, kClients, default_closed / exact);
      std::printf("| %d clients x %d in flight | %.0f | limit: %.0f | %.2f | 0.9 |\n", kClients,
                  kWindow, pipelined, limit, pipelined / limit);
      std::printf(
          "| one client, Scheduler::Infer | %.0f us | Session::Run: %.0f us | %+.0f us (%+.1f%%) | "
          "5%% + 20 us |\n",
          infer, run, infer - run, 100 * (infer - run) / run);
      csv << "defaults," << spec.name << ",blocking,0," << default_closed << ",0,0,"
          << default_closed / batch16 << "\n";
      csv << "defaults," << spec.name << ",exact-batcher,0," << exact << ",0,0," << exact / batch16
          << "\n";
      csv << "defaults," << spec.name << ",pipelined,0," << pipelined << ",0,0,"
          << pipelined / limit << "\n";
      csv << "defaults," << spec.name << ",one-client,0,0," << infer << "," << run << ","
          << infer / run << "\n";
    }

    // Server scenario: rising Poisson rates, as fractions of the limit.
    std::vector<double> fractions = quick
                                        ? std::vector<double>{0.1, 0.5}
                                        : std::vector<double>{0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4,
                                                              0.5,  0.6,  0.7,  0.8, 0.9, 1.0};
    std::printf("\nserver scenario: Poisson arrivals, p99 bound %.0f ms\n\n", spec.bound_ms);
    std::printf("| system | highest rate within the bound (items/s) | its p99 ms | vs limit |\n");
    std::printf("|---|---|---|---|\n");
    for (const Entry& entry : systems) {
      std::unique_ptr<System> system = entry.make();
      std::ofstream dat(out_dir / ("server_" + spec.name + "_" + entry.name + ".dat"));
      dat << "# offered_per_s achieved_per_s p99_ms\n";
      double best = 0, best_p99 = 0;
      int misses = 0;
      for (double fraction : fractions) {
        const double rate = fraction * limit;
        Measure m = Server(*system, one, rate, server_seconds);
        dat << rate << " " << m.items_per_second << " " << m.p99_us / 1000 << "\n";
        csv << "server," << spec.name << "," << entry.name << "," << rate << ","
            << m.items_per_second << "," << m.p50_us << "," << m.p99_us << ","
            << m.items_per_second / limit << "\n";
        if (m.p99_us <= spec.bound_ms * 1000) {
          best = rate;
          best_p99 = m.p99_us / 1000;
          misses = 0;
        } else if (++misses == 2) {
          break;  // Past its capacity; higher rates only take longer to drain.
        }
      }
      std::printf("| %s | %.0f | %.2f | %.2f |\n", entry.name.c_str(), best, best_p99,
                  best / limit);
      std::fflush(stdout);
    }
    std::printf("\n");
  }
  std::printf("results: %s\n", (out_dir / "results.csv").c_str());
  return 0;
}
