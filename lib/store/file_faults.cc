#include "store/file_faults.h"

#include <signal.h>

#include <atomic>

namespace maas::internal {
namespace {

std::atomic<bool> armed{false};
std::atomic<int64_t> calls{0};
std::atomic<int64_t> fail_at{0};
std::atomic<int> fault_error{0};

}  // namespace

int InjectedFileFault() {
  if (!armed.load(std::memory_order_relaxed)) return 0;
  const int64_t n = calls.fetch_add(1) + 1;
  if (n != fail_at.load()) return 0;
  if (fault_error.load() == kKillProcess) ::raise(SIGKILL);
  return fault_error.load();
}

void SetFileFaultForTesting(int64_t nth, int error) {
  calls.store(0);
  fail_at.store(nth);
  fault_error.store(error);
  armed.store(true);  // Stays armed (counting) after a disarm, so the count can be read.
}

int64_t FileFaultPointsForTesting() { return calls.load(); }

}  // namespace maas::internal
