// Statistics of a model served by the Scheduler: counts, batch sizes, queue and compute times.
#ifndef MAAS_STATS_H_
#define MAAS_STATS_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace maas {

// A distribution of durations, kept as a histogram with fixed, exponentially spaced buckets (8
// per power of two, from 1 us to about 2 minutes), so percentiles are accurate to about 9% and
// the buckets map directly onto a Prometheus histogram.
struct DurationDistribution {
  int64_t count = 0;
  absl::Duration sum;
  absl::Duration p50, p90, p99;  // Zero when count is 0.

  struct Bucket {
    absl::Duration upper_bound;  // Inclusive; the last bucket is absl::InfiniteDuration().
    int64_t cumulative_count;    // Observations <= upper_bound, as Prometheus counts them.
  };
  std::vector<Bucket> buckets;  // Only the buckets up to the largest observation.
};

// Why batches were no larger: how many executions ended their growth for each reason. A policy
// at work shows here: many `queue_empty` batches of small size mean the load, not maas, limits
// the batch; `deadline` means deadlines are tight for the model's speed.
struct BatchEndCounts {
  int64_t full = 0;            // max_batch_size reached.
  int64_t next_too_large = 0;  // The next request in order would have exceeded max_batch_size.
  int64_t deadline = 0;        // A larger batch would have finished after a request's deadline.
  int64_t preferred = 0;       // Trimmed to one of preferred_batch_sizes.
  int64_t queue_empty = 0;     // Nothing else of the same shape was queued (when it ran, or
                               // when the request ran at once on the calling thread).
};

// Time spent in executions, split as Triton's statistics split it: assembling the batch
// (concatenating the requests' inputs), running the model (Session::Run, with its device
// copies), splitting its outputs into each request's rows.
struct ComputeTimes {
  int64_t count = 0;
  absl::Duration input;
  absl::Duration infer;
  absl::Duration output;
};

// A snapshot of one model's statistics since it was added to the Scheduler.
struct ModelStats {
  int64_t requests = 0;   // Accepted by Submit.
  int64_t items = 0;      // Items (batch rows) in accepted requests.
  int64_t succeeded = 0;  // Requests answered with outputs.
  // Requests that failed, by code: refused at Submit (InvalidArgument, Unavailable, ...) or
  // answered later with an error (DeadlineExceeded, Internal, Cancelled).
  std::map<absl::StatusCode, int64_t> failures;

  int64_t batches = 0;  // Model executions.
  // Batches of several requests that failed and were run again one request at a time, so that
  // only the requests the model fails on fail (see Scheduler, "Failures").
  int64_t batches_retried_alone = 0;
  // Requests that Scheduler::Infer ran at once on the calling thread (idle instance, empty
  // queue), without a handoff to a worker. Included in requests and batches.
  int64_t run_on_caller = 0;
  // Batches run on all the cores at once by the wide worker (BatchingOptions::
  // workers_per_session), for callers that wait for their answers. Included in batches.
  int64_t wide_batches = 0;
  // LibTorch warnings raised while the model's sessions loaded and ran (Session::
  // torch_warnings, summed). Each warning is logged once per session (maas/log.h), not printed
  // on every batch; a count that keeps rising says the model warns on every batch.
  int64_t torch_warnings = 0;
  // batch_size_histogram[n] = executions with n items; size max_batch_size + 1.
  std::vector<int64_t> batch_size_histogram;
  // Why each execution's batch was no larger.
  BatchEndCounts batch_ends;

  DurationDistribution queue_time;    // Submit to the start of the request's execution.
  DurationDistribution compute_time;  // Per execution: concatenation, Session::Run, split.
  // The execution times charged to each request answered with outputs: a batch's times count
  // once for every request in it (Triton's per-request "compute_*" statistics).
  ComputeTimes request_compute;
  // The execution times by batch size: compute_by_batch_size[n] for executions of n items;
  // size max_batch_size + 1.
  std::vector<ComputeTimes> compute_by_batch_size;
  // When the latest execution ended; absl::InfinitePast() before the first.
  absl::Time last_execution = absl::InfinitePast();

  int64_t queued_requests = 0;  // Waiting now.
  int64_t queued_items = 0;     // Their items.

  // How the model is served now: its worker threads (BatchingOptions::workers_per_session), and
  // what adaptive batching has learned (BatchingOptions::adaptive_batching): the limit on a
  // batch's items and the items it expects in flight (1 when it expects a lone caller).
  int workers = 0;
  int64_t batch_size_limit = 0;
  double expected_in_flight = 0;
};

}  // namespace maas

#endif  // MAAS_STATS_H_
