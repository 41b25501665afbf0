// How many cores this process may keep busy: what a default "all the cores" means.
#ifndef MAAS_LIB_CPU_CORES_H_
#define MAAS_LIB_CPU_CORES_H_

#include <optional>
#include <string_view>

namespace maas::internal {

// The CPUs in this process's affinity mask (taskset, cpusets), capped by its cgroup's CPU quota
// rounded up (a container's CPU limit: `docker run --cpus`, a Kubernetes pod's limits.cpu), at
// least 1. std::thread::hardware_concurrency() sees neither: in a pod limited to 4 cores on a
// 64-core node it says 64, and default options would oversubscribe the pod 16 times. Computed
// once per process.
int AvailableCores();

// The quota of cgroup v2's cpu.max ("400000 100000" is 4 cores; "150000 100000" rounds up to
// 2), or nullopt for "max ..." (no limit) or text it does not understand.
std::optional<int> CoresOfCpuMax(std::string_view text);

// The same from cgroup v1's cpu.cfs_quota_us and cpu.cfs_period_us (a quota of -1: no limit).
std::optional<int> CoresOfCfsQuota(std::string_view quota, std::string_view period);

}  // namespace maas::internal

#endif  // MAAS_LIB_CPU_CORES_H_
