// The Server's lifecycle thread: loads, swaps and unloads run here one at a time, in order, and
// the store watcher runs here between them. Loads themselves run at a lowered CPU priority.
#ifndef MAAS_LIB_LIFECYCLE_H_
#define MAAS_LIB_LIFECYCLE_H_

#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "util/mutex.h"

namespace maas::internal {

// How much nicer than its caller RunNiced runs work: loading and warming a version competes for
// the cores with the serving workers, and should take what they leave. docs/server.md measures
// the effect on another model's p99 during a swap.
inline constexpr int kLoadNiceIncrement = 10;

// Runs `work` on a new thread whose nice value is kLoadNiceIncrement above the caller's, and
// waits for it. A new thread, because Linux applies nice per thread, threads inherit it, and an
// unprivileged thread cannot lower it again: the lifecycle thread itself must keep the
// application's priority, since the workers of the versions it loads are started from it.
void RunNiced(absl::AnyInvocable<void() &&> work);

// One background thread running posted tasks in order. This class is thread-safe.
class Lifecycle {
 public:
  // A task is called once: with true on the thread, or with false when the Lifecycle stops
  // before running it (it should then answer whoever waits for it).
  using Task = absl::AnyInvocable<void(bool run) &&>;

  // Starts the thread. `periodic` runs on it every `interval` while no task is queued; a zero
  // interval never runs it.
  Lifecycle(absl::Duration interval, absl::AnyInvocable<void()> periodic);
  // Stop, then frees.
  ~Lifecycle();

  // Lets the running task finish, calls the queued ones with false and joins the thread; later
  // Posts call their task with false at once. Idempotent.
  void Stop();

  Lifecycle(const Lifecycle&) = delete;
  Lifecycle& operator=(const Lifecycle&) = delete;

  // Queues `task`; after Stop began, calls it with false at once.
  void Post(Task task);

  // Whether the caller is the lifecycle thread.
  bool OnThread() const { return std::this_thread::get_id() == thread_id_; }

 private:
  void Loop();

  const absl::Duration interval_;
  absl::AnyInvocable<void()> periodic_;
  Mutex mu_;
  CondVar changed_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Mutex stop_mu_;                    // Serializes Stop.
  std::thread thread_;               // Started once the members above exist.
  const std::thread::id thread_id_;  // Kept apart: Stop's join resets thread_.
};

}  // namespace maas::internal

#endif  // MAAS_LIB_LIFECYCLE_H_
