// An annotated mutex and condition variable over the standard ones, for the library's internals.
//
// Why not absl::Mutex: Debian's Abseil is built without ThreadSanitizer, so TSan cannot see the
// ordering absl::Mutex provides and reports false races. std::mutex goes through pthreads, which
// TSan intercepts; these wrappers add the annotations that clang's -Wthread-safety checks
// (ABSL_GUARDED_BY and friends).
#ifndef MAAS_LIB_MUTEX_H_
#define MAAS_LIB_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace maas::internal {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  // Waits until signalled (or spuriously woken); `mu` is held again on return.
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // As Wait, also returning once the real time reaches `deadline`.
  void WaitUntil(Mutex* mu, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (deadline == absl::InfiniteFuture()) return Wait(mu);
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    absl::Duration left = deadline - absl::Now();
    if (left > absl::ZeroDuration()) cv_.wait_for(lock, absl::ToChronoNanoseconds(left));
    lock.release();
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace maas::internal

#endif  // MAAS_LIB_MUTEX_H_
