#include "maas/clock.h"

#include "absl/time/clock.h"

namespace maas {
namespace {

class SystemClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void WaitWithDeadline(absl::Mutex* mu, absl::CondVar* cv, absl::Time deadline) const override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    cv->WaitWithDeadline(mu, deadline);
  }
};

}  // namespace

std::shared_ptr<Clock> RealClock() {
  static const std::shared_ptr<Clock>* clock = new std::shared_ptr<Clock>(new SystemClock());
  return *clock;
}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::WaitWithDeadline(absl::Mutex* mu, absl::CondVar* cv, absl::Time deadline) const {
  // The fake time can only move through Advance; poll briefly in real time so that a waiter
  // notices an advance without the clock having to know every condition variable.
  if (deadline == absl::InfiniteFuture()) {
    cv->Wait(mu);  // Nothing time-dependent to notice.
    return;
  }
  if (Now() >= deadline) return;
  cv->WaitWithTimeout(mu, absl::Milliseconds(1));
}

void FakeClock::Advance(absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  now_ += duration;
}

}  // namespace maas
