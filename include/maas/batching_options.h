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
  // split. With adaptive_batching, batches grow toward it only while larger ones measurably run
  // faster per item. Default: 256.
  int64_t max_batch_size = 256;

  // Let the load and the model's measured speed shape the batches, so that the defaults batch
  // well without tuning:
  // - Size: the largest batch grows toward max_batch_size only while larger batches measurably
  //   run faster per item and the load fills them, and shrinks while smaller ones lose nothing
  //   (a smaller batch answers sooner); a batch that fails although each of its requests
  //   succeeds alone (out of memory) lowers it.
  // - Callers that each wait for their answer before sending the next: when max_queue_delay is
  //   zero, a free worker's batch waits briefly for the requests expected back (never past a
  //   deadline; a lone caller never waits), and the Scheduler or Server runs their batch on all
  //   its cores at once or splits it over several workers, whichever it measures faster.
  //   Requests that arrive independently are not waited for.
  // ModelStats (batch_size_limit, expected_in_flight, wide_batches) shows what it learned;
  // docs/scheduler.md explains each rule. false: batches are limited by max_batch_size alone
  // and run as soon as a worker is free (or after max_queue_delay); choose it to control batch
  // sizes yourself. Default: true.
  bool adaptive_batching = true;

  // Worker threads per session: how many batches of the model run at once on each session
  // (sharing its weights). 0 chooses from the machine: on the CPU, the cores the Scheduler or
  // Server may use divided by the session's intra_op_threads, spread over the model's CPU
  // sessions, plus one worker that runs a batch on all those cores when the model has nothing
  // else to run (low concurrency: few requests, each answered sooner); with CUDA, 2 per session,
  // so that one batch's copies overlap another's kernels. Several models share the cores
  // through the core budget and never oversubscribe them. A model whose forward mutates its own
  // state needs 1. Default: 0.
  int workers_per_session = 0;

  // How long a partial batch may wait for more requests when an instance is free to run it.
  // Zero: no fixed delay (with adaptive_batching, a batch may still wait briefly for requests
  // that are expected; without, whatever is queued runs at once). Under load, batches grow by
  // themselves while instances are busy. A fixed delay (e.g. 1-5 ms) trades a bounded latency
  // for fuller batches at moderate load, and replaces the adaptive wait. Must be finite.
  // Default: zero.
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
           a.max_queue_size == b.max_queue_size && a.default_timeout == b.default_timeout &&
           a.adaptive_batching == b.adaptive_batching &&
           a.workers_per_session == b.workers_per_session;
  }
  friend bool operator!=(const BatchingOptions& a, const BatchingOptions& b) { return !(a == b); }
};

}  // namespace maas

#endif  // MAAS_BATCHING_OPTIONS_H_
