// A test seam for fault injection: every file operation that changes the store (create, write,
// fsync, rename, mkdir, unlink) asks InjectedFileFault first, so that tests can make the Nth of
// them fail as the disk would (ENOSPC, EIO) and check what the store is left with
// (tests/store/model_store_test.cc, "FaultInjection"). Disarmed, it costs one relaxed atomic load.
#ifndef MAAS_LIB_FILE_FAULTS_H_
#define MAAS_LIB_FILE_FAULTS_H_

#include <cstdint>

namespace maas::internal {

// 0, or the errno that the calling operation must fail with (it then sets errno and fails).
int InjectedFileFault();

// As an `error` below: the process dies by SIGKILL at that point instead, as it would in a power
// loss or an OOM kill, before the operation happens.
inline constexpr int kKillProcess = -1;

// Arms the seam: the `nth` call from now (1-based) fails with `error` (or kKillProcess); nth 0
// disarms. Either way the count of calls starts again from zero. Tests only; not thread-safe
// with respect to other tests' faults.
void SetFileFaultForTesting(int64_t nth, int error);

// Calls since the last SetFileFaultForTesting: how many fault points an operation passes.
int64_t FileFaultPointsForTesting();

}  // namespace maas::internal

#endif  // MAAS_LIB_FILE_FAULTS_H_
