// The types of a request: its options and its answer, shared by Scheduler and Server.
#ifndef MAAS_REQUEST_H_
#define MAAS_REQUEST_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace maas {

// Per-request options.
struct RequestOptions {
  // Higher runs first. Within one priority, requests run in arrival order. Strict: a steady
  // stream of higher-priority work can starve lower priorities (bound them with deadlines).
  // Default: 0.
  int priority = 0;

  // The request completes with DeadlineExceeded if it cannot start by then, and is not started
  // when the model's learned execution time says it would finish after it. The earlier of
  // deadline and now + timeout applies. Defaults: infinite (BatchingOptions::default_timeout
  // applies when both are infinite).
  absl::Time deadline = absl::InfiniteFuture();
  absl::Duration timeout = absl::InfiniteDuration();
  // Lets Submit run the request on the calling thread, before it returns, when the model is
  // idle (nothing queued or running, no company expected) and its learned execution time is
  // at most 1 ms, as Infer does: no hand-off to a worker and back (tens of microseconds). The
  // callback then runs on the calling thread before Submit returns. For callers that must
  // not block long but would wait for the answer anyway, such as a network server's I/O
  // threads (maasd sets it). Default: false.
  bool run_on_calling_thread_when_idle = false;
};

// Per-request options of a Server, which may serve several versions of a model: those of every
// request, and which version answers.
struct ServerRequestOptions : RequestOptions {
  // A number ("3"), an alias ("stable") or "latest", among the versions the Server serves.
  // Empty: the model's version policy decides (its newest or first version, or the canary
  // split). Default: empty.
  std::string version;
  // The names of `inputs`, in the order given: the Server then puts the inputs in the
  // signature order of the version that serves the request, which may differ between versions
  // (what a network front end needs, whose clients name their inputs). InvalidArgument when a
  // name is unknown to that version, repeated or missing, naming it and the version's inputs.
  // Empty: `inputs` are in the signature's order. Default: empty.
  std::vector<std::string> input_names;
};

// The outputs of one request (its own rows, in the signature's order), or why there are none.
using InferenceResult = absl::StatusOr<std::vector<at::Tensor>>;

// Called exactly once with a submitted request's answer, on a worker thread.
using InferenceCallback = absl::AnyInvocable<void(InferenceResult) &&>;

// As InferenceCallback, also told which version answered (Server::Submit): the number of the
// version whose session ran the request, or refused it; 0 when no version was reached (the
// model had none ready, or the request was refused before routing).
using ServedCallback = absl::AnyInvocable<void(InferenceResult, int64_t version) &&>;

}  // namespace maas

#endif  // MAAS_REQUEST_H_
