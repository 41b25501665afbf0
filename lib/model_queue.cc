#include "model_queue.h"

#include <algorithm>
#include <future>

#include "absl_compat.h"
#include "batch_tensors.h"
#include "fmt/core.h"
#include "tensor_checks.h"
#include "torch_errors.h"

namespace maas::internal {

void Reply::Answer(InferenceResult result, int64_t version) {
  try {
    if (served_) {
      std::move(served_)(std::move(result), version);
    } else {
      std::move(done_)(std::move(result));
    }
  } catch (...) {
  }
}

ModelQueue::ModelQueue(std::string label, int64_t version,
                       std::vector<std::shared_ptr<Session>> instances, BatchingOptions options,
                       std::shared_ptr<Clock> clock, CoreBudget* cores)
    : label_(std::move(label)),
      version_(version),
      instances_(std::move(instances)),
      signature_(instances_.front()->info().signature),
      options_(std::move(options)),
      clock_(std::move(clock)),
      cores_(cores),
      queue_(label_, options_, signature_.batchable) {
  stats_.batch_size_histogram.assign(static_cast<size_t>(options_.max_batch_size) + 1, 0);
  busy_.assign(instances_.size(), false);
}

ModelQueue::~ModelQueue() { Stop(/*drain=*/false); }

void ModelQueue::Start() {
  for (size_t i = 0; i < instances_.size(); ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

absl::StatusOr<std::unique_ptr<Request>> ModelQueue::Prepare(std::vector<at::Tensor> inputs,
                                                             const RequestOptions& options) {
  auto refuse = [this](absl::Status status) {
    MutexLock lock(&mu_);
    ++stats_.failures[status.code()];
    return status;
  };
  absl::StatusOr<int64_t> batch = CheckInputs(signature_, inputs, label_);
  if (!batch.ok()) return refuse(batch.status());

  auto request = std::make_unique<Request>();
  if (signature_.batchable) {
    request->items = *batch;
    if (request->items > options_.max_batch_size) {
      return refuse(absl::InvalidArgumentError(
          fmt::format("{}: the request holds {} items, more than max_batch_size {}; split it",
                      label_, request->items, options_.max_batch_size)));
    }
    for (const at::Tensor& input : inputs) {
      request->key.push_back(static_cast<int64_t>(input.device().type()));
      request->key.push_back(input.device().index());
      request->key.insert(request->key.end(), input.sizes().begin() + 1, input.sizes().end());
    }
  }
  request->inputs = std::move(inputs);
  request->priority = options.priority;
  const absl::Time now = clock_->Now();
  request->enqueued = now;
  request->deadline = options.deadline;
  if (options.timeout != absl::InfiniteDuration()) {
    request->deadline = std::min(request->deadline, now + options.timeout);
  }
  if (request->deadline == absl::InfiniteFuture() &&
      options_.default_timeout != absl::InfiniteDuration()) {
    request->deadline = now + options_.default_timeout;
  }
  if (request->deadline <= now) {
    return refuse(absl::DeadlineExceededError(
        fmt::format("{}: the request's deadline has already passed", label_)));
  }
  return request;
}

absl::Status ModelQueue::Push(std::unique_ptr<Request>* request) {
  const int64_t items = (*request)->items;
  if (absl::Status queued = queue_.Push(request); !queued.ok()) {
    ++stats_.failures[queued.code()];
    return queued;
  }
  ++stats_.requests;
  stats_.items += items;
  // A worker whose instance a caller has borrowed (Infer) cannot take the request; wake them
  // all then, so that one that can does.
  if (std::find(busy_.begin(), busy_.end(), true) != busy_.end()) {
    work_available_.SignalAll();
  } else {
    work_available_.Signal();
  }
  return absl::OkStatus();
}

std::optional<absl::Status> ModelQueue::TrySubmit(std::vector<at::Tensor>& inputs,
                                                  const RequestOptions& options, Reply& reply) {
  absl::StatusOr<std::unique_ptr<Request>> request = Prepare(std::move(inputs), options);
  if (!request.ok()) return request.status();
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

std::optional<InferenceResult> ModelQueue::TryInfer(std::vector<at::Tensor>& inputs,
                                                    const RequestOptions& options) {
  absl::StatusOr<std::unique_ptr<Request>> request = Prepare(std::move(inputs), options);
  if (!request.ok()) return request.status();
  InferenceResult result = Infer(&*request);
  if (*request == nullptr) return result;
  inputs = std::move((*request)->inputs);  // Stopped first: hand the request back.
  return std::nullopt;
}

InferenceResult ModelQueue::Infer(std::unique_ptr<Request>* taken) {
  // Run on this thread when the model is idle: nothing queued, no instance running. (Not when
  // some instance is busy: then load is building up, and a lone batch-1 run would take an
  // instance away from the batches that serve it better.)
  size_t instance = instances_.size();
  int cores = 0;
  std::unique_ptr<Request> request;
  {
    MutexLock lock(&mu_);
    if (!accepting_) return absl::UnavailableError(fmt::format("{} is being removed", label_));
    request = std::move(*taken);
    if (queue_.empty() && options_.max_queue_delay == absl::ZeroDuration() &&
        std::find(busy_.begin(), busy_.end(), true) == busy_.end()) {
      for (size_t i = 0; i < instances_.size() && instance == instances_.size(); ++i) {
        if (busy_[i]) continue;
        const Session& session = *instances_[i];
        cores = session.device().is_cpu() ? session.intra_op_threads() : 0;
        if (cores == 0 || cores_->TryAcquire(cores)) instance = i;
      }
    }
    if (instance < instances_.size()) {
      const absl::Time now = clock_->Now();
      if (absl::Status late = queue_.Admit(*request, now); !late.ok()) {
        if (cores > 0) cores_->Release(cores);
        ++stats_.failures[late.code()];
        return late;
      }
      busy_[instance] = true;
      ++stats_.requests;
      ++stats_.run_on_caller;
      CountBatchEnd(BatchEnd::kQueueEmpty, &stats_.batch_ends);
      stats_.items += request->items;
    }
  }
  if (instance < instances_.size()) {
    const absl::Time start = clock_->Now();
    InferenceResult result;
    try {
      result = instances_[instance]->Run(request->inputs);
    } catch (...) {
      result =
          StatusFromCurrentException(absl::StatusCode::kInternal, fmt::format("{} failed", label_));
    }
    const absl::Time end = clock_->Now();
    if (cores > 0) cores_->Release(cores);
    MutexLock lock(&mu_);
    queue_time_.Record(start - request->enqueued);
    CountAnswer(result.status());
    RecordExecution(instance, request->items, start, end, result.ok());
    work_available_.SignalAll();  // The instance's worker may be waiting to have it back.
    return result;
  }

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

void ModelQueue::Stop(bool drain) {
  if (workers_.empty()) return;  // Never started, or already stopped.
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
  }
  for (std::unique_ptr<Request>& request : cancelled) {
    request->reply.Answer(absl::CancelledError(fmt::format(
                              "{}: the scheduler shut down before the request ran", label_)),
                          version_);
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

bool ModelQueue::Idle() const {
  MutexLock lock(&mu_);
  return queue_.empty() && std::find(busy_.begin(), busy_.end(), true) == busy_.end();
}

ModelStats ModelQueue::Stats() const {
  MutexLock lock(&mu_);
  ModelStats stats = stats_;
  stats.queue_time = queue_time_.Snapshot();
  stats.compute_time = compute_time_.Snapshot();
  stats.queued_requests = queue_.requests();
  stats.queued_items = queue_.items();
  return stats;
}

namespace {
thread_local bool in_worker = false;
}  // namespace

bool InSchedulerWorker() { return in_worker; }

void ModelQueue::WorkerLoop(size_t instance) {
  in_worker = true;
  while (true) {
    Work work = NextWork(instance);
    for (auto& [request, status] : work.refused) request->reply.Answer(std::move(status), version_);
    if (!work.batch.empty()) Execute(instance, std::move(work.batch));
    if (work.exit) return;
  }
}

ModelQueue::Work ModelQueue::NextWork(size_t instance) {
  Work work;
  MutexLock lock(&mu_);
  while (true) {
    if (busy_[instance]) {  // A caller's Infer is running on this instance.
      work_available_.Wait(&mu_);
      continue;
    }
    const absl::Time now = clock_->Now();
    const absl::Time next_deadline = queue_.RefuseLate(now, &work.refused);
    if (!work.refused.empty()) {
      for (const auto& refused : work.refused) ++stats_.failures[refused.status.code()];
      return work;  // Answer them now; the batch can wait a moment.
    }
    absl::Time wake_at = absl::InfiniteFuture();
    if (!queue_.empty()) {
      BatchEnd end;
      work.batch = queue_.Form(now, /*flush=*/stopping_, &wake_at, &end);
      if (!work.batch.empty()) {
        CountBatchEnd(end, &stats_.batch_ends);
        busy_[instance] = true;
        // Requests left behind (another shape, or beyond the batch) may suit an idle instance.
        if (!queue_.empty()) work_available_.Signal();
        return work;
      }
    } else if (stopping_) {
      work.exit = true;
      return work;
    }
    work_available_.WaitUntil(&mu_, clock_->WakeUpTime(std::min(wake_at, next_deadline)));
  }
}

void ModelQueue::Execute(size_t instance, std::vector<std::unique_ptr<Request>> batch) {
  Session* session = instances_[instance].get();
  int64_t items = 0;
  for (const std::unique_ptr<Request>& request : batch) items += request->items;
  const int cores = session->device().is_cpu() ? session->intra_op_threads() : 0;

  if (cores > 0) cores_->Acquire(cores);
  const absl::Time start = clock_->Now();
  InferenceResult result;
  try {
    // One request runs on its own tensors; several are concatenated along the batch dimension.
    if (batch.size() == 1) {
      result = session->Run(batch.front()->inputs);
    } else {
      std::vector<const std::vector<at::Tensor>*> inputs;
      inputs.reserve(batch.size());
      for (const std::unique_ptr<Request>& request : batch) inputs.push_back(&request->inputs);
      result = session->Run(Concatenate(inputs, session->device()));
    }
  } catch (...) {
    result = StatusFromCurrentException(absl::StatusCode::kInternal,
                                        fmt::format("{}: cannot assemble the batch", label_));
  }
  std::vector<InferenceResult> answers;
  answers.reserve(batch.size());
  // A failed batch of several may have failed on one request's data (or on its size, as a GPU
  // out of memory): each request runs again alone, so that one bad request does not fail its
  // neighbours. This costs a run per request, and only when a batch fails.
  const bool retried_alone = !result.ok() && batch.size() > 1;
  if (retried_alone) {
    for (const std::unique_ptr<Request>& request : batch) {
      try {
        answers.push_back(session->Run(request->inputs));
      } catch (...) {
        answers.push_back(StatusFromCurrentException(absl::StatusCode::kInternal,
                                                     fmt::format("{} failed", label_)));
      }
    }
  }
  const absl::Time end = clock_->Now();
  if (cores > 0) cores_->Release(cores);

  // Every request gets its own rows: views into the batch's outputs, no copies.
  if (retried_alone) {
    // Answered above.
  } else if (!result.ok()) {
    answers.assign(batch.size(), result.status());
  } else if (batch.size() == 1) {
    answers.push_back(std::move(result));
  } else {
    std::vector<int64_t> rows;
    rows.reserve(batch.size());
    for (const std::unique_ptr<Request>& request : batch) rows.push_back(request->items);
    for (std::vector<at::Tensor>& mine : SplitRows(*result, rows))
      answers.push_back(std::move(mine));
  }

  {
    MutexLock lock(&mu_);
    for (size_t i = 0; i < batch.size(); ++i) {
      queue_time_.Record(start - batch[i]->enqueued);
      CountAnswer(answers[i].status());
    }
    RecordExecution(instance, items, start, end, result.ok());
    if (retried_alone) ++stats_.batches_retried_alone;
  }
  for (size_t i = 0; i < batch.size(); ++i) batch[i]->reply.Answer(std::move(answers[i]), version_);
}

void ModelQueue::RecordExecution(size_t instance, int64_t items, absl::Time start, absl::Time end,
                                 bool ok) {
  ++stats_.batches;
  ++stats_.batch_size_histogram[static_cast<size_t>(std::min(items, options_.max_batch_size))];
  compute_time_.Record(end - start);
  if (ok) queue_.RecordExecution(items, end - start);
  busy_[instance] = false;
}

void ModelQueue::CountAnswer(const absl::Status& status) {
  if (status.ok()) {
    ++stats_.succeeded;
  } else {
    ++stats_.failures[status.code()];
  }
}

}  // namespace maas::internal
