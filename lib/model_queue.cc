#include "model_queue.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <future>

#include "absl_compat.h"
#include "fmt/core.h"
#include "tensor_checks.h"
#include "torch_errors.h"

namespace maas::internal {

void Answer(InferenceCallback& done, InferenceResult result) {
  try {
    std::move(done)(std::move(result));
  } catch (...) {
  }
}

namespace {

std::string Millis(absl::Duration d) {
  return fmt::format("{:.3f} ms", absl::ToDoubleMilliseconds(d));
}

// Concatenates requests' inputs along the batch dimension. For a GPU session, host inputs are
// assembled straight into page-locked memory, from which Session::Run copies them to the
// device asynchronously: one host copy per batch, not two.
at::Tensor Concatenate(const std::vector<at::Tensor>& parts, c10::Device device) {
  const at::Tensor& first = parts.front();
  if (device.is_cpu() || !first.is_cpu()) return at::cat(parts, 0);
  std::vector<int64_t> shape = first.sizes().vec();
  shape[0] = 0;
  for (const at::Tensor& part : parts) shape[0] += part.size(0);
  at::Tensor staged = at::empty(shape, first.options().pinned_memory(true));
  at::cat_out(staged, parts, 0);
  return staged;
}

}  // namespace

absl::Status ValidateBatchingOptions(const BatchingOptions& options) {
  auto invalid = [](std::string why) { return absl::InvalidArgumentError(std::move(why)); };
  if (options.max_batch_size < 1) {
    return invalid(fmt::format("max_batch_size is {}; expected 1 or more", options.max_batch_size));
  }
  constexpr int64_t kMaxBatchSize = int64_t{1} << 20, kMaxQueueSize = int64_t{1} << 40;
  if (options.max_batch_size > kMaxBatchSize) {
    return invalid(fmt::format("max_batch_size is {}; at most {} is supported",
                               options.max_batch_size, kMaxBatchSize));
  }
  if (options.max_queue_size > kMaxQueueSize) {
    return invalid(fmt::format("max_queue_size is {}; at most {} is supported",
                               options.max_queue_size, kMaxQueueSize));
  }
  if (options.max_queue_size < options.max_batch_size) {
    return invalid(fmt::format("max_queue_size {} is below max_batch_size {}",
                               options.max_queue_size, options.max_batch_size));
  }
  if (options.max_queue_delay < absl::ZeroDuration()) return invalid("max_queue_delay is negative");
  if (options.default_timeout <= absl::ZeroDuration()) {
    return invalid("default_timeout must be positive (or infinite)");
  }
  for (int64_t size : options.preferred_batch_sizes) {
    if (size < 1 || size > options.max_batch_size) {
      return invalid(fmt::format("preferred batch size {} is outside 1..max_batch_size ({})", size,
                                 options.max_batch_size));
    }
  }
  return absl::OkStatus();
}

void CoreBudget::Acquire(int n) {
  n = std::min(n, total_);
  MutexLock lock(&mu_);
  while (available_ < n) released_.Wait(&mu_);
  available_ -= n;
}

bool CoreBudget::TryAcquire(int n) {
  n = std::min(n, total_);
  MutexLock lock(&mu_);
  if (available_ < n) return false;
  available_ -= n;
  return true;
}

void CoreBudget::Release(int n) {
  n = std::min(n, total_);
  MutexLock lock(&mu_);
  available_ += n;
  released_.SignalAll();
}

ModelQueue::ModelQueue(std::string label, std::vector<std::shared_ptr<Session>> instances,
                       BatchingOptions options, std::shared_ptr<Clock> clock, CoreBudget* cores)
    : label_(std::move(label)),
      instances_(std::move(instances)),
      signature_(instances_.front()->info().signature),
      options_(std::move(options)),
      clock_(std::move(clock)),
      cores_(cores),
      execution_time_(options_.max_batch_size) {
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
      request->batch_key.push_back(static_cast<int64_t>(input.device().type()));
      request->batch_key.push_back(input.device().index());
      request->batch_key.insert(request->batch_key.end(), input.sizes().begin() + 1,
                                input.sizes().end());
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

absl::Status ModelQueue::Push(std::unique_ptr<Request>* taken) {
  if (!accepting_) {  // Not counted: the caller may route the request elsewhere.
    return absl::UnavailableError(fmt::format("{} is being removed", label_));
  }
  std::unique_ptr<Request> request = std::move(*taken);
  if (queued_items_ + request->items > options_.max_queue_size) {
    ++stats_.failures[absl::StatusCode::kUnavailable];
    return absl::UnavailableError(
        fmt::format("{}: queue full ({} items queued, max_queue_size {}); retry later", label_,
                    queued_items_, options_.max_queue_size));
  }
  ++stats_.requests;
  stats_.items += request->items;
  ++queued_requests_;
  queued_items_ += request->items;
  if (request->deadline != absl::InfiniteFuture()) ++queued_with_deadline_;
  queue_[request->priority].push_back(std::move(request));
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
                                                  const RequestOptions& options,
                                                  InferenceCallback& done) {
  absl::StatusOr<std::unique_ptr<Request>> request = Prepare(std::move(inputs), options);
  if (!request.ok()) return request.status();
  (*request)->done = std::move(done);
  absl::Status queued = Enqueue(&*request);
  if (*request == nullptr) return queued;
  inputs = std::move((*request)->inputs);  // Stopped first: hand the request back.
  done = std::move((*request)->done);
  return std::nullopt;
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

absl::Status ModelQueue::Enqueue(std::unique_ptr<Request>* request) {
  MutexLock lock(&mu_);
  return Push(request);
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
    if (queued_requests_ == 0 && options_.max_queue_delay == absl::ZeroDuration() &&
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
      if (absl::Status late = CheckPredictedDeadline(*request, now); !late.ok()) {
        if (cores > 0) cores_->Release(cores);
        ++stats_.failures[late.code()];
        return late;
      }
      busy_[instance] = true;
      ++stats_.requests;
      ++stats_.run_on_caller;
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
  request->done = [promise](InferenceResult result) { promise->set_value(std::move(result)); };
  {
    MutexLock lock(&mu_);
    if (absl::Status pushed = Push(&request); !pushed.ok()) {
      if (request != nullptr) *taken = std::move(request);  // Stopped meanwhile: hand it back.
      return pushed;
    }
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
      for (auto& [priority, requests] : queue_) {
        for (std::unique_ptr<Request>& request : requests) {
          ++stats_.failures[absl::StatusCode::kCancelled];
          cancelled.push_back(std::move(request));
        }
      }
      queue_.clear();
      queued_requests_ = queued_items_ = queued_with_deadline_ = 0;
    }
    work_available_.SignalAll();
  }
  for (std::unique_ptr<Request>& request : cancelled) {
    Answer(request->done, absl::CancelledError(fmt::format(
                              "{}: the scheduler shut down before the request ran", label_)));
  }
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

bool ModelQueue::Idle() const {
  MutexLock lock(&mu_);
  return queued_requests_ == 0 && std::find(busy_.begin(), busy_.end(), true) == busy_.end();
}

ModelStats ModelQueue::Stats() const {
  MutexLock lock(&mu_);
  ModelStats stats = stats_;
  stats.queue_time = queue_time_.Snapshot();
  stats.compute_time = compute_time_.Snapshot();
  stats.queued_requests = queued_requests_;
  stats.queued_items = queued_items_;
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
    for (auto& [request, status] : work.refused) Answer(request->done, std::move(status));
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
    const absl::Time next_deadline = RefuseLateRequests(now, &work);
    if (!work.refused.empty()) return work;  // Answer them now; the batch can wait a moment.
    absl::Time wake_at = absl::InfiniteFuture();
    if (queued_requests_ > 0) {
      if (FormBatch(now, &work, &wake_at)) {
        busy_[instance] = true;
        // Requests left behind (another shape, or beyond the batch) may suit an idle instance.
        if (queued_requests_ > 0) work_available_.Signal();
        return work;
      }
    } else if (stopping_) {
      work.exit = true;
      return work;
    }
    work_available_.WaitUntil(&mu_, clock_->WakeUpTime(std::min(wake_at, next_deadline)));
  }
}

absl::Time ModelQueue::RefuseLateRequests(absl::Time now, Work* work) {
  absl::Time earliest = absl::InfiniteFuture();
  if (queued_with_deadline_ == 0) return earliest;
  for (auto& [priority, requests] : queue_) {
    for (auto it = requests.begin(); it != requests.end();) {
      Request& request = **it;
      if (request.deadline == absl::InfiniteFuture()) {
        ++it;
        continue;
      }
      absl::Status refusal;
      if (now >= request.deadline) {
        refusal =
            absl::DeadlineExceededError(fmt::format("{}: the deadline passed after {} in the queue",
                                                    label_, Millis(now - request.enqueued)));
      } else {
        refusal = CheckPredictedDeadline(request, now);
      }
      if (refusal.ok()) {
        earliest = std::min(earliest, request.deadline);
        ++it;
        continue;
      }
      ++stats_.failures[refusal.code()];
      --queued_requests_;
      queued_items_ -= request.items;
      --queued_with_deadline_;
      work->refused.emplace_back(std::move(*it), std::move(refusal));
      it = requests.erase(it);
    }
  }
  return earliest;
}

absl::Status ModelQueue::CheckPredictedDeadline(const Request& request, absl::Time now) {
  if (request.deadline == absl::InfiniteFuture()) return absl::OkStatus();
  std::optional<absl::Duration> predicted = execution_time_.Predict(request.items);
  if (!predicted || now + *predicted <= request.deadline) return absl::OkStatus();
  execution_time_.Relax();
  return absl::DeadlineExceededError(fmt::format(
      "{}: not started because it would miss its deadline: a batch of {} item(s) takes about "
      "{}, {} remain",
      label_, request.items, Millis(*predicted), Millis(request.deadline - now)));
}

bool ModelQueue::FormBatch(absl::Time now, Work* work, absl::Time* wake_at) {
  using Position = std::pair<std::list<std::unique_ptr<Request>>*,
                             std::list<std::unique_ptr<Request>>::iterator>;
  const int64_t max_items = signature_.batchable ? options_.max_batch_size : 1;
  std::vector<Position> chosen;
  const std::vector<int64_t>* key = nullptr;
  int64_t items = 0;
  absl::Time earliest_deadline = absl::InfiniteFuture();
  absl::Time oldest = absl::InfiniteFuture();
  bool full = false;  // Nothing more can join: max reached, or the next request cannot.
  for (auto& [priority, requests] : queue_) {
    for (auto it = requests.begin(); it != requests.end() && !full; ++it) {
      const Request& request = **it;
      if (key != nullptr && request.batch_key != *key) continue;  // Another shape: later.
      if (items + request.items > max_items) {
        full = true;
        break;
      }
      // Do not grow a batch so much that its slowest execution makes someone late.
      std::optional<absl::Duration> predicted = execution_time_.Predict(items + request.items);
      if (!chosen.empty() && predicted &&
          now + *predicted > std::min(earliest_deadline, request.deadline)) {
        full = true;
        break;
      }
      chosen.emplace_back(&requests, it);
      key = &request.batch_key;
      items += request.items;
      earliest_deadline = std::min(earliest_deadline, request.deadline);
      oldest = std::min(oldest, request.enqueued);
      full = items == max_items;
    }
    if (full) break;
  }

  // With preferred sizes, the largest prefix that adds up to one of them is the batch.
  size_t take = chosen.size();
  bool preferred = false;
  if (!full && !options_.preferred_batch_sizes.empty()) {
    int64_t running = 0;
    for (size_t i = 0; i < chosen.size(); ++i) {
      running += (*chosen[i].second)->items;
      if (std::find(options_.preferred_batch_sizes.begin(), options_.preferred_batch_sizes.end(),
                    running) != options_.preferred_batch_sizes.end()) {
        take = i + 1;
        preferred = true;
      }
    }
  }
  const absl::Time ready_at = oldest + options_.max_queue_delay;
  if (!(full || preferred || stopping_ || now >= ready_at)) {
    *wake_at = ready_at;
    return false;
  }
  for (size_t i = 0; i < take; ++i) {
    auto [requests, it] = chosen[i];
    Request& request = **it;
    --queued_requests_;
    queued_items_ -= request.items;
    if (request.deadline != absl::InfiniteFuture()) --queued_with_deadline_;
    work->batch.push_back(std::move(*it));
    requests->erase(it);
  }
  for (auto it = queue_.begin(); it != queue_.end();) {
    it = it->second.empty() ? queue_.erase(it) : std::next(it);
  }
  return true;
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
    std::vector<at::Tensor> inputs;
    if (batch.size() == 1) {
      inputs = batch.front()->inputs;
    } else {
      for (size_t i = 0; i < signature_.inputs.size(); ++i) {
        std::vector<at::Tensor> parts;
        parts.reserve(batch.size());
        for (const std::unique_ptr<Request>& request : batch) parts.push_back(request->inputs[i]);
        inputs.push_back(Concatenate(parts, session->device()));
      }
    }
    result = session->Run(inputs);
  } catch (...) {
    result = StatusFromCurrentException(absl::StatusCode::kInternal,
                                        fmt::format("{}: cannot assemble the batch", label_));
  }
  const absl::Time end = clock_->Now();
  if (cores > 0) cores_->Release(cores);

  // Every request gets its own rows: views into the batch's outputs, no copies.
  std::vector<InferenceResult> answers;
  answers.reserve(batch.size());
  if (!result.ok()) {
    answers.assign(batch.size(), result.status());
  } else if (batch.size() == 1) {
    answers.push_back(std::move(result));
  } else {
    int64_t offset = 0;
    for (const std::unique_ptr<Request>& request : batch) {
      std::vector<at::Tensor> rows;
      rows.reserve(result->size());
      for (const at::Tensor& output : *result)
        rows.push_back(output.narrow(0, offset, request->items));
      offset += request->items;
      answers.push_back(std::move(rows));
    }
  }

  {
    MutexLock lock(&mu_);
    for (size_t i = 0; i < batch.size(); ++i) {
      queue_time_.Record(start - batch[i]->enqueued);
      CountAnswer(answers[i].status());
    }
    RecordExecution(instance, items, start, end, result.ok());
  }
  for (size_t i = 0; i < batch.size(); ++i) Answer(batch[i]->done, std::move(answers[i]));
}

void ModelQueue::RecordExecution(size_t instance, int64_t items, absl::Time start, absl::Time end,
                                 bool ok) {
  ++stats_.batches;
  ++stats_.batch_size_histogram[static_cast<size_t>(std::min(items, options_.max_batch_size))];
  compute_time_.Record(end - start);
  if (ok) execution_time_.Record(items, end - start);
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
