#include "batching/worker_plan.h"

#include <algorithm>
#include <optional>

namespace maas::internal {

std::vector<WorkerSpec> PlanWorkers(const std::vector<int>& instance_threads,
                                    int workers_per_session, int cores, int machine_cores) {
  std::vector<WorkerSpec> workers;
  if (workers_per_session > 0) {
    for (size_t i = 0; i < instance_threads.size(); ++i) {
      for (int k = 0; k < workers_per_session; ++k) {
        workers.push_back({i, instance_threads[i], false});
      }
    }
    return workers;
  }
  const int cpu_instances = static_cast<int>(std::count_if(
      instance_threads.begin(), instance_threads.end(), [](int threads) { return threads > 0; }));
  std::optional<size_t> first_cpu;
  for (size_t i = 0; i < instance_threads.size(); ++i) {
    const int threads = instance_threads[i];
    if (threads == 0) {
      workers.push_back({i, 0, false});
      workers.push_back({i, 0, false});
      continue;
    }
    if (!first_cpu) first_cpu = i;
    const int count = std::max(1, cores / threads / cpu_instances);
    for (int k = 0; k < count; ++k) workers.push_back({i, threads, false});
  }
  if (first_cpu) {
    const int all = std::min(cores, machine_cores);
    if (all > instance_threads[*first_cpu]) workers.push_back({*first_cpu, all, true});
  }
  return workers;
}

}  // namespace maas::internal
