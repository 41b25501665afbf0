#include "batching/model_executor.h"

#include <algorithm>
#include <future>
#include <numeric>
#include <unordered_set>

#include "util/absl_compat.h"
#include "batching/batch_run.h"
#include "util/cpu_cores.h"
#include "fmt/core.h"
#include "session/torch_errors.h"

namespace maas::internal {

namespace {

// `options` within what one run of the model accepts: a package exported with a batch range (or
// a signature that declares one) caps max_batch_size, whatever the options ask for.
BatchingOptions WithinModelLimits(BatchingOptions options, const ModelSignature& signature) {
  const int64_t limit = signature.max_batch_size;
  if (!signature.batchable || limit == 0 || options.max_batch_size <= limit) return options;
  options.max_batch_size = limit;
  std::vector<int64_t>& preferred = options.preferred_batch_sizes;
  preferred.erase(std::remove_if(preferred.begin(), preferred.end(),
                                 [limit](int64_t size) { return size > limit; }),
                  preferred.end());
  return options;
}

// Each instance's intra-op threads on the CPU, 0 on a GPU.
std::vector<int> ThreadsOf(const std::vector<std::shared_ptr<Session>>& instances) {
  std::vector<int> threads;
  for (const std::shared_ptr<Session>& session : instances) {
    threads.push_back(session->device().is_cpu() ? session->intra_op_threads() : 0);
  }
  return threads;
}

}  // namespace

ModelExecutor::ModelExecutor(std::string label, int64_t version,
                             std::vector<std::shared_ptr<Session>> instances,
                             BatchingOptions options, std::shared_ptr<Clock> clock,
                             CoreBudget* cores)
    : label_(std::move(label)),
      version_(version),
      instances_(std::move(instances)),
      signature_(instances_.front()->info().signature),
      options_(WithinModelLimits(std::move(options), signature_)),
      clock_(std::move(clock)),
      cores_(cores),
      workers_(PlanWorkers(ThreadsOf(instances_), options_.workers_per_session, cores->total(),
                           AvailableCores())),
      has_wide_worker_(std::any_of(workers_.begin(), workers_.end(),
                                   [](const Worker& worker) { return worker.wide; })),
      queue_(label_, options_, signature_.batchable) {
  stats_.batch_size_histogram.assign(static_cast<size_t>(options_.max_batch_size) + 1, 0);
  stats_.compute_by_batch_size.assign(static_cast<size_t>(options_.max_batch_size) + 1, {});
  busy_.assign(workers_.size(), false);
  MutexLock lock(&mu_);
  queue_.SetParallelBatches(static_cast<int>(std::count_if(
      workers_.begin(), workers_.end(), [](const Worker& worker) { return !worker.wide; })));
  if (has_wide_worker_) {
    queue_.ChooseWidthBetween(
        static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [](const Worker& worker) {
          return !worker.wide && worker.threads > 0;
        })));
  }
}

ModelExecutor::~ModelExecutor() { Stop(/*drain=*/false); }

void ModelExecutor::Start() {
  for (size_t i = 0; i < workers_.size(); ++i) {
    threads_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

absl::StatusOr<std::unique_ptr<Request>> ModelExecutor::Prepare(std::vector<at::Tensor> inputs,
                                                                const RequestOptions& options) {
  absl::StatusOr<std::unique_ptr<Request>> request =
      PrepareRequest(signature_, options_, std::move(inputs), options, clock_->Now(), label_);
  if (!request.ok()) {
    MutexLock lock(&mu_);
    ++stats_.failures[request.status().code()];
  }
  return request;
}

absl::Status ModelExecutor::Push(std::unique_ptr<Request>* request) {
  const int64_t items = (*request)->items;
  const bool has_deadline = (*request)->deadline != absl::InfiniteFuture();
  if (absl::Status queued = queue_.Push(request); !queued.ok()) {
    ++stats_.failures[queued.code()];
    return queued;
  }
  ++stats_.requests;
  stats_.items += items;
  // A worker waiting for the batch to fill wakes when it has (or at its timer); a deadline may
  // need it sooner.
  if (queue_.items() >= awaited_items_ || has_deadline) SignalWorker();
  return absl::OkStatus();
}

TurnSnapshot ModelExecutor::Snapshot(absl::Time now) const {
  TurnSnapshot snapshot;
  snapshot.now = now;
  snapshot.has_wide_worker = has_wide_worker_;
  snapshot.draining = stopping_;
  snapshot.running_batches = queue_.running_batches();
  snapshot.in_step = queue_.Synchronized();
  snapshot.prefer_wide = queue_.PreferWide();
  snapshot.cores_available = cores_->Available();  // One look at the budget's lock.
  snapshot.all_cores_free = snapshot.cores_available == cores_->total();
  snapshot.wide_waiting = wide_waiting_;
  snapshot.wide_answering_since = wide_answering_since_;
  snapshot.narrow_standing_by = narrow_standing_by_;
  snapshot.borrowed_slots = borrowed_;
  return snapshot;
}

void ModelExecutor::SignalWorker() {
  const WakeUp wake = WhomToWake(Snapshot(/*now=*/absl::InfinitePast()));  // Not read.
  if (wake.wide) wide_work_.Signal();
  if (wake.narrow == WakeUp::kAllNarrow) {
    work_available_.SignalAll();
  } else if (wake.narrow == 1) {
    work_available_.Signal();
  }
}

std::optional<absl::Status> ModelExecutor::TrySubmit(std::vector<at::Tensor>& inputs,
                                                     const RequestOptions& options, Reply& reply) {
  absl::StatusOr<std::unique_ptr<Request>> request = Prepare(std::move(inputs), options);
  if (!request.ok()) return request.status();
  if (options.run_on_calling_thread_when_idle) {
    bool refused = false;
    if (std::optional<InferenceResult> here =
            RunHere(&*request, /*only_if_quick=*/true, &refused)) {
      if (refused) return here->status();  // As Submit refuses (the callback is not called).
      reply.Answer(*std::move(here), version_);
      return absl::OkStatus();
    }
  }
  (*request)->reply = std::move(reply);
  MutexLock lock(&mu_);
  if (!accepting_) {  // Stopped first: hand the request back (not counted).
    inputs = std::move((*request)->inputs);
    reply = std::move((*request)->reply);
    return std::nullopt;
  }
  absl::Status queued = Push(&*request);
  if (!queued.ok()) reply = std::move((*request)->reply);  // Refused: the caller keeps it.
  return queued;
}

std::optional<InferenceResult> ModelExecutor::TryInfer(std::vector<at::Tensor>& inputs,
                                                       const RequestOptions& options) {
  absl::StatusOr<std::unique_ptr<Request>> request = Prepare(std::move(inputs), options);
  if (!request.ok()) return request.status();
  InferenceResult result = Infer(&*request);
  if (*request == nullptr) return result;
  inputs = std::move((*request)->inputs);  // Stopped first: hand the request back.
  return std::nullopt;
}

InferenceResult ModelExecutor::Infer(std::unique_ptr<Request>* taken) {
  bool refused = false;
  if (std::optional<InferenceResult> here = RunHere(taken, /*only_if_quick=*/false, &refused)) {
    return *std::move(here);
  }
  std::unique_ptr<Request> request = std::move(*taken);

  // Otherwise queue it and wait, as Submit would.
  auto promise = std::make_shared<std::promise<InferenceResult>>();
  std::future<InferenceResult> future = promise->get_future();
  request->reply = InferenceCallback(
      [promise](InferenceResult result) { promise->set_value(std::move(result)); });
  {
    MutexLock lock(&mu_);
    if (!accepting_) {  // Stopped meanwhile: hand it back.
      *taken = std::move(request);
      return absl::UnavailableError(fmt::format("{} is being removed", label_));
    }
    if (absl::Status pushed = Push(&request); !pushed.ok()) return pushed;
  }
  return future.get();
}

void ModelExecutor::Stop(bool drain) {
  if (threads_.empty()) return;  // Never started, or already stopped.
  std::vector<std::unique_ptr<Request>> cancelled;
  {
    MutexLock lock(&mu_);
    accepting_ = false;
    stopping_ = true;
    if (!drain) {
      cancelled = queue_.TakeAll();
      stats_.failures[absl::StatusCode::kCancelled] += static_cast<int64_t>(cancelled.size());
    }
    work_available_.SignalAll();
    wide_work_.SignalAll();
  }
  for (std::unique_ptr<Request>& request : cancelled) {
    request->reply.Answer(absl::CancelledError(fmt::format(
                              "{}: the scheduler shut down before the request ran", label_)),
                          version_);
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

bool ModelExecutor::Idle() const {
  MutexLock lock(&mu_);
  return queue_.empty() && queue_.running_batches() == 0;
}

ModelStats ModelExecutor::Stats() const {
  MutexLock lock(&mu_);
  ModelStats stats = stats_;
  stats.queue_time = queue_time_.Snapshot();
  stats.compute_time = compute_time_.Snapshot();
  stats.queued_requests = queue_.requests();
  stats.queued_items = queue_.items();
  stats.workers = static_cast<int>(workers_.size());
  stats.batch_size_limit = queue_.batch_size_limit();
  stats.expected_in_flight = queue_.expected_in_flight();
  std::unordered_set<const Session*> counted;  // Instances may share a session.
  for (const std::shared_ptr<Session>& session : instances_) {
    if (counted.insert(session.get()).second) stats.torch_warnings += session->torch_warnings();
  }
  return stats;
}

namespace {
thread_local bool in_worker = false;
}  // namespace

bool InSchedulerWorker() { return in_worker; }

void ModelExecutor::WorkerLoop(size_t worker) {
  in_worker = true;
  while (true) {
    Work work = NextWork(worker);
    for (auto& [request, status] : work.refused) request->reply.Answer(std::move(status), version_);
    if (!work.batch.empty()) Execute(worker, std::move(work.batch));
    if (work.exit) return;
  }
}

ModelExecutor::Work ModelExecutor::NextWork(size_t worker) {
  Work work;
  MutexLock lock(&mu_);
  CondVar& wake_up = WakeUpOf(worker);
  // The wide worker is waiting from here until it returns (with a batch, refusals or exit).
  if (workers_[worker].wide) wide_waiting_ = true;
  bool standing_by = false;  // This worker is the narrow one standing by for the wide one.
  while (true) {
    if (standing_by) {
      standing_by = narrow_standing_by_ = false;
    }
    if (busy_[worker]) {  // A caller's Infer is running in this worker's slot.
      wake_up.Wait(&mu_);
      continue;
    }
    const absl::Time now = clock_->Now();
    const absl::Time next_deadline = queue_.RefuseLate(now, &work.refused);
    if (!work.refused.empty()) {
      for (const auto& refused : work.refused) ++stats_.failures[refused.status.code()];
      if (workers_[worker].wide) {
        wide_waiting_ = false;
        wide_answering_since_ = now;
      }
      return work;  // Answer them now; the batch can wait a moment.
    }
    absl::Time wake_at = absl::InfiniteFuture();
    const Turn turn = queue_.empty()
                          ? Turn{Turn::kTake}
                          : TurnOf(Snapshot(now), workers_[worker].wide, workers_[worker].threads);
    if (turn.action != Turn::kTake) {
      // Pass the wake-up on to the other kind of worker if it should take the batch (not to
      // one of the same kind: those would pass it around while a batch runs).
      if (turn.action == Turn::kPassToNarrow) {
        work_available_.Signal();
      } else if (turn.action == Turn::kStandBy) {
        wake_at = turn.until;
        standing_by = narrow_standing_by_ = true;
      } else if (turn.action == Turn::kPassToWide) {
        wide_work_.Signal();
      }
    } else if (!queue_.empty()) {
      auto formed = queue_.Form(now, /*flush=*/stopping_);
      wake_at = formed.wake_at;
      awaited_items_ = formed.awaited_items;
      work.batch = std::move(formed.tasks);
      if (!work.batch.empty()) {
        CountBatchEnd(formed.end, &stats_.batch_ends);
        busy_[worker] = true;
        // Requests left behind (another shape, or beyond the batch) may suit an idle worker.
        if (!queue_.empty()) SignalWorker();
        if (workers_[worker].wide) wide_waiting_ = false;
        return work;
      }
    } else if (stopping_) {
      work.exit = true;
      if (workers_[worker].wide) wide_waiting_ = false;
      return work;
    }
    wake_up.WaitUntil(&mu_, clock_->WakeUpTime(std::min(wake_at, next_deadline)));
  }
}

void ModelExecutor::Execute(size_t worker, std::vector<std::unique_ptr<Request>> batch) {
  Session* session = instances_[workers_[worker].instance].get();
  const int cores = workers_[worker].threads;
  std::vector<const std::vector<at::Tensor>*> inputs;
  std::vector<int64_t> rows;
  inputs.reserve(batch.size());
  rows.reserve(batch.size());
  for (const std::unique_ptr<Request>& request : batch) {
    inputs.push_back(&request->inputs);
    rows.push_back(request->items);
  }
  const int64_t items = std::accumulate(rows.begin(), rows.end(), int64_t{0});
  const Forward forward = [session, cores](const std::vector<at::Tensor>& joined) {
    return cores > 0 ? session->Run(joined, cores) : session->Run(joined);
  };

  if (cores > 0) cores_->Acquire(cores);
  const absl::Time start = clock_->Now();
  BatchRun run = RunBatch(inputs, rows, session->device(), forward, *clock_, label_);
  if (cores > 0) cores_->Release(cores);

  {
    MutexLock lock(&mu_);
    int64_t answered = 0;
    for (const InferenceResult& answer : run.answers) answered += answer.ok() ? 1 : 0;
    RecordComputeTimes(items, answered,
                       {0, run.assembled - start, run.ran - run.assembled, run.split - run.ran});
    for (size_t i = 0; i < batch.size(); ++i) {
      queue_time_.Record(start - batch[i]->enqueued);
      CountAnswer(run.answers[i].status());
    }
    RecordExecution(worker, items, start, run.ran, run.batch_ok, run.too_large);
    if (run.retried_alone) ++stats_.batches_retried_alone;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i]->reply.Answer(std::move(run.answers[i]), version_);
  }
}

void ModelExecutor::RecordExecution(size_t worker, int64_t items, absl::Time start, absl::Time end,
                                    bool ok, bool too_large) {
  ++stats_.batches;
  if (workers_[worker].wide) {
    ++stats_.wide_batches;
    wide_answering_since_ = end;
  }
  ++stats_.batch_size_histogram[static_cast<size_t>(std::min(items, options_.max_batch_size))];
  compute_time_.Record(end - start);
  queue_.Finished(items, end, ok ? std::optional<absl::Duration>(end - start) : std::nullopt,
                  workers_[worker].wide);
  if (too_large) queue_.TooLarge(items);
  busy_[worker] = false;
}

void ModelExecutor::RecordComputeTimes(int64_t items, int64_t answered, const ComputeTimes& times) {
  const auto add = [&times](ComputeTimes& to, int64_t count) {
    to.count += count;
    to.input += times.input * count;
    to.infer += times.infer * count;
    to.output += times.output * count;
  };
  add(stats_.request_compute, answered);
  add(stats_.compute_by_batch_size[static_cast<size_t>(std::min(items, options_.max_batch_size))],
      1);
  stats_.last_execution = absl::Now();  // Wall time, for reports (clock_ may be a test's).
}

void ModelExecutor::CountAnswer(const absl::Status& status) {
  if (status.ok()) {
    ++stats_.succeeded;
  } else {
    ++stats_.failures[status.code()];
  }
}

}  // namespace maas::internal
