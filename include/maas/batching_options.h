// BatchingOptions: how one model's requests are batched, by a Scheduler or a Server.
#ifndef MAAS_BATCHING_OPTIONS_H_
#define MAAS_BATCHING_OPTIONS_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace maas {

// How one model's requests are batched. Set per model (Scheduler::AddModel,
// DeployOptions::batching).
struct BatchingOptions {
  // Most items in one execution. A request may hold 1 to max_batch_size items; it is never
  // split. Default: 32.
  int64_t max_batch_size = 32;

  // How long a partial batch may wait for more requests when an instance is free to run it.
  // Zero runs whatever is queued at once: under load, batches still grow by themselves while
  // instances are busy. Raise it (e.g. 1-5 ms) to trade a bounded latency for fuller batches at
  // moderate load. Must be finite. Default: zero.
  absl::Duration max_queue_delay = absl::ZeroDuration();

  // Batch sizes (items) at which a waiting batch runs without using up max_queue_delay, and to
  // which a formed batch is trimmed when a prefix of its requests adds up to one of them. Empty:
  // only max_batch_size counts. Default: empty.
  std::vector<int64_t> preferred_batch_sizes;

  // Most items waiting for this model; a Submit beyond it fails at once with Unavailable, so
  // that overload turns into fast, retryable refusals instead of unbounded latency.
  // Default: 4096.
  int64_t max_queue_size = 4096;

  // Deadline for requests that set none: a request not started within it completes with
  // DeadlineExceeded. Default: infinite.
  absl::Duration default_timeout = absl::InfiniteDuration();

  friend bool operator==(const BatchingOptions& a, const BatchingOptions& b) {
    return a.max_batch_size == b.max_batch_size && a.max_queue_delay == b.max_queue_delay &&
           a.preferred_batch_sizes == b.preferred_batch_sizes &&
           a.max_queue_size == b.max_queue_size && a.default_timeout == b.default_timeout;
  }
  friend bool operator!=(const BatchingOptions& a, const BatchingOptions& b) { return !(a == b); }
};

}  // namespace maas

#endif  // MAAS_BATCHING_OPTIONS_H_
