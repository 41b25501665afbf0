#include "maas/clock.h"

#include "absl/time/clock.h"

namespace maas {
namespace {

class SystemClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Time WakeUpTime(absl::Time deadline) const override { return deadline; }
};

}  // namespace

std::shared_ptr<Clock> RealClock() {
  static const std::shared_ptr<Clock>* clock = new std::shared_ptr<Clock>(new SystemClock());
  return *clock;
}

absl::Time FakeClock::Now() const {
  return absl::UnixEpoch() + absl::Nanoseconds(nanos_since_epoch_.load());
}

absl::Time FakeClock::WakeUpTime(absl::Time deadline) const {
  // Nothing time-dependent to notice: wait for a signal only.
  if (deadline == absl::InfiniteFuture()) return deadline;
  // The fake time moves only through Advance; poll briefly in real time to notice it.
  return absl::Now() + absl::Milliseconds(1);
}

void FakeClock::Advance(absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) return;
  nanos_since_epoch_ += absl::ToInt64Nanoseconds(duration);
}

}  // namespace maas
