#include "serving/lifecycle.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace maas::internal {

Lifecycle::Lifecycle(absl::Duration interval, absl::AnyInvocable<void()> periodic)
    : interval_(interval),
      periodic_(std::move(periodic)),
      thread_([this] { Loop(); }),
      thread_id_(thread_.get_id()) {}

Lifecycle::~Lifecycle() { Stop(); }

void Lifecycle::Stop() {
  MutexLock stop_lock(&stop_mu_);
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  std::deque<Task> left;
  {
    MutexLock lock(&mu_);
    left.swap(tasks_);
  }
  for (Task& task : left) std::move(task)(false);
}

void Lifecycle::Post(Task task) {
  {
    MutexLock lock(&mu_);
    if (!stopping_) {
      tasks_.push_back(std::move(task));
      changed_.Signal();
      return;
    }
  }
  std::move(task)(false);
}

void RunNiced(absl::AnyInvocable<void() &&> work) {
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  const bool known = !(nice == -1 && errno != 0);  // -1 is also a valid nice value.
  std::thread thread([&work, nice, known] {
    // Failing to lower the priority only costs latency elsewhere: not checked.
    if (known) {
      (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)),
                        std::min(nice + kLoadNiceIncrement, 19));
    }
    std::move(work)();
  });
  thread.join();
}

void Lifecycle::Loop() {
  const bool watching = interval_ > absl::ZeroDuration();
  absl::Time next_poll = watching ? absl::Now() + interval_ : absl::InfiniteFuture();
  while (true) {
    Task task;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && tasks_.empty() && absl::Now() < next_poll) {
        changed_.WaitUntil(&mu_, next_poll);
      }
      if (stopping_) return;
      if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
    }
    if (task) {
      std::move(task)(true);
    } else {
      periodic_();
      next_poll = absl::Now() + interval_;
    }
  }
}

}  // namespace maas::internal
