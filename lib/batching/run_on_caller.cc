// ModelExecutor's run-on-caller path: a request to an idle model runs on the calling thread,
// borrowing an idle worker's slot and cores, with no handoff to a worker and back
// (docs/scheduler.md, "Threads and callbacks").
#include "fmt/core.h"
#include "batching/model_executor.h"
#include "session/torch_errors.h"

namespace maas::internal {

std::optional<InferenceResult> ModelExecutor::RunHere(std::unique_ptr<Request>* taken,
                                                      bool only_if_quick, bool* refused) {
  // Run on this thread when the model is idle: nothing queued, no instance running. (Not when
  // some instance is busy: then load is building up, and a lone batch-1 run would take an
  // instance away from the batches that serve it better.)
  // Nor when more requests are expected soon (adaptive batching): they should share a batch.
  *refused = false;
  size_t slot = workers_.size();
  int cores = 0;
  std::unique_ptr<Request> request;
  {
    MutexLock lock(&mu_);
    if (!accepting_) return std::nullopt;  // The caller hands the request back.
    if (queue_.empty() && queue_.running_batches() == 0 &&
        options_.max_queue_delay == absl::ZeroDuration() && !queue_.ExpectsCompany()) {
      // Only a time measured for this size counts: the caller may be a network thread that
      // other clients' health checks wait for.
      const std::optional<absl::Duration> predicted = queue_.MeasuredExecution((*taken)->items);
      const bool quick = predicted && *predicted <= kRunHereAtMost;
      for (size_t i = 0;
           i < workers_.size() && slot == workers_.size() && (quick || !only_if_quick); ++i) {
        if (busy_[i] || workers_[i].wide) continue;
        const Session& session = *instances_[workers_[i].instance];
        cores = session.device().is_cpu() ? session.intra_op_threads() : 0;
        if (cores == 0 || cores_->TryAcquire(cores)) slot = i;
      }
    }
    if (slot == workers_.size()) return std::nullopt;
    request = std::move(*taken);
    const absl::Time now = clock_->Now();
    if (absl::Status late = queue_.Admit(*request, now); !late.ok()) {
      if (cores > 0) cores_->Release(cores);
      ++stats_.failures[late.code()];
      *refused = true;
      return late;
    }
    busy_[slot] = true;
    ++borrowed_;
    queue_.StartAlone(request->items, now);
    ++stats_.requests;
    ++stats_.run_on_caller;
    CountBatchEnd(BatchEnd::kQueueEmpty, &stats_.batch_ends);
    stats_.items += request->items;
  }
  const absl::Time start = clock_->Now();
  InferenceResult result;
  try {
    // With the session's own threads: a caller's thread keeps its width.
    result = instances_[workers_[slot].instance]->Run(request->inputs);
  } catch (...) {
    result =
        StatusFromCurrentException(absl::StatusCode::kInternal, fmt::format("{} failed", label_));
  }
  const absl::Time end = clock_->Now();
  if (cores > 0) cores_->Release(cores);
  MutexLock lock(&mu_);
  queue_time_.Record(start - request->enqueued);
  CountAnswer(result.status());
  --borrowed_;
  RecordExecution(slot, request->items, start, end, result.ok(), /*too_large=*/false);
  RecordComputeTimes(request->items, result.ok() ? 1 : 0,
                     {0, absl::ZeroDuration(), end - start, absl::ZeroDuration()});
  if (!queue_.empty() || stopping_) {
    // Requests queued meanwhile, or a Stop waiting for the workers to exit: the slot's worker
    // may be waiting to have it back.
    work_available_.SignalAll();
    wide_work_.Signal();
  }
  return result;
}

}  // namespace maas::internal
