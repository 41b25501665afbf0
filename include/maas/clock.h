// Clock: where the Scheduler reads the time, so that tests can drive time by hand.
#ifndef MAAS_CLOCK_H_
#define MAAS_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"

namespace maas {

// A source of time and a way to wait for it. The Scheduler uses one for queue delays, deadlines
// and its statistics. Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  // The current time.
  virtual absl::Time Now() const = 0;

  // When, in real time (absl::Now()), a thread waiting for this clock to reach `deadline`
  // should wake up and look again. The real clock answers `deadline` itself; a fake clock
  // answers a moment from now, so that its waiters notice when it is advanced.
  virtual absl::Time WakeUpTime(absl::Time deadline) const = 0;
};

// The real time (absl::Now()). Shared; never destroyed.
std::shared_ptr<Clock> RealClock();

// A clock that moves only when told to: time-dependent behaviour (queue delays, deadlines)
// becomes deterministic in tests, which never sleep to wait for time. Starts at the Unix epoch
// plus one day. This class is thread-safe.
//
// Waiters notice an Advance within about a millisecond of real time: they poll.
class FakeClock : public Clock {
 public:
  absl::Time Now() const override;
  absl::Time WakeUpTime(absl::Time deadline) const override;

  // Moves the time forward by `duration` (negative durations are ignored).
  void Advance(absl::Duration duration);

 private:
  std::atomic<int64_t> nanos_since_epoch_{absl::ToInt64Nanoseconds(absl::Hours(24))};
};

}  // namespace maas

#endif  // MAAS_CLOCK_H_
