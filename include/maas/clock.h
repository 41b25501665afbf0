// Clock: where the Scheduler reads the time, so that tests can drive time by hand.
#ifndef MAAS_CLOCK_H_
#define MAAS_CLOCK_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace maas {

// A source of time and a way to wait for it. The Scheduler uses one for queue delays, deadlines
// and its statistics. Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  // The current time.
  virtual absl::Time Now() const = 0;

  // Waits on `cv` (with `mu` held, as absl::CondVar::Wait does) until it is signalled or Now()
  // reaches `deadline`. May return early (spuriously): callers re-check their condition.
  virtual void WaitWithDeadline(absl::Mutex* mu, absl::CondVar* cv, absl::Time deadline) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// The real time (absl::Now()). Shared; never destroyed.
std::shared_ptr<Clock> RealClock();

// A clock that moves only when told to: time-dependent behaviour (queue delays, deadlines)
// becomes deterministic in tests, which never sleep to wait for time. Starts at the Unix epoch
// plus one day. This class is thread-safe.
//
// Waiters are woken by Advance within about a millisecond of real time: WaitWithDeadline polls.
class FakeClock : public Clock {
 public:
  absl::Time Now() const override;
  void WaitWithDeadline(absl::Mutex* mu, absl::CondVar* cv, absl::Time deadline) const override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // Moves the time forward by `duration` (negative durations are ignored).
  void Advance(absl::Duration duration);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch() + absl::Hours(24);
};

}  // namespace maas

#endif  // MAAS_CLOCK_H_
