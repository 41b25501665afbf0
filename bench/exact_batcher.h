// The best a batcher can do for N callers that each block on their answer: one worker that is
// told there are exactly N callers, waits for all N (no timer, no policy, nothing to learn),
// runs one forward on all cores and fulfils each caller's std::promise. A reference, not a
// product: it serves only that one load, and stalls if a caller stops. What it leaves below the
// direct forward on batches of N is the cost of handing requests to a thread and waking N
// callers, which no in-process batcher avoids; maas's blocking rows are read against both.
#ifndef MAAS_BENCH_EXACT_BATCHER_H_
#define MAAS_BENCH_EXACT_BATCHER_H_

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace maas::bench {

// Items per second over `seconds` (after a quarter of that to warm up) with `clients` threads,
// each sending `one` (a batch of one item) and blocking on the answer. `forward` runs a batch
// on the worker thread, which has `threads` intra-op threads.
inline double ExactBatcherThroughput(int clients, double seconds, const at::Tensor& one,
                                     int threads,
                                     const std::function<at::Tensor(const at::Tensor&)>& forward) {
  struct Pending {
    at::Tensor input;
    std::promise<at::Tensor> answer;
  };
  std::mutex mu;
  std::condition_variable batch_full;
  std::vector<Pending*> queue;  // guarded by mu
  int exited = 0;               // guarded by mu
  std::atomic<bool> stop{false};
  std::atomic<int64_t> answered{0};

  std::thread worker([&] {
    at::set_num_threads(threads);
    c10::InferenceMode guard;
    while (true) {
      std::vector<Pending*> batch;
      {
        std::unique_lock<std::mutex> lock(mu);
        // Once stopping, partial batches too, until every caller has gone.
        batch_full.wait(lock, [&] {
          return static_cast<int>(queue.size()) == clients ||
                 (stop && (!queue.empty() || exited == clients));
        });
        if (queue.empty()) return;
        batch.swap(queue);
      }
      std::vector<at::Tensor> inputs;
      inputs.reserve(batch.size());
      for (Pending* pending : batch) inputs.push_back(pending->input);
      at::Tensor outputs = forward(at::cat(inputs));
      for (size_t i = 0; i < batch.size(); ++i) {
        batch[i]->answer.set_value(outputs.narrow(0, static_cast<int64_t>(i), 1));
      }
      answered += static_cast<int64_t>(batch.size());
    }
  });
  std::vector<std::thread> callers;
  for (int c = 0; c < clients; ++c) {
    callers.emplace_back([&] {
      while (!stop) {
        Pending pending{one, {}};
        std::future<at::Tensor> answer = pending.answer.get_future();
        {
          std::lock_guard<std::mutex> lock(mu);
          queue.push_back(&pending);
          if (static_cast<int>(queue.size()) == clients || stop) batch_full.notify_one();
        }
        answer.get();
      }
      std::lock_guard<std::mutex> lock(mu);
      ++exited;
      batch_full.notify_one();
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds / 4));
  const int64_t before = answered;
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double items_per_second = static_cast<double>(answered - before) / elapsed;
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    batch_full.notify_one();
  }
  for (std::thread& caller : callers) caller.join();
  worker.join();
  return items_per_second;
}

}  // namespace maas::bench

#endif  // MAAS_BENCH_EXACT_BATCHER_H_
