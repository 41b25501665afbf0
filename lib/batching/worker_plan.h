// Which worker threads a model's executor runs, from its instances and the cores it may use:
// a pure plan (tests/batching/worker_plan_test.cc).
#ifndef MAAS_LIB_WORKER_PLAN_H_
#define MAAS_LIB_WORKER_PLAN_H_

#include <cstddef>
#include <vector>

namespace maas::internal {

// One worker thread: the instance it runs batches on, and how.
struct WorkerSpec {
  size_t instance;  // Index into the executor's instances.
  int threads;      // Intra-op threads (and cores) of its batches; 0 on a GPU.
  bool wide;        // Takes a batch only when the model has nothing else running, on all cores.
};

// The workers for instances whose sessions run `instance_threads[i]` intra-op threads on the
// CPU (0: on a GPU). `workers_per_session` > 0: that many per instance. 0 (automatic): CPU
// instances share `cores` (the budget's), at least one worker each; each GPU instance gets two,
// so that one batch's copies overlap another's kernels; and one wide worker on the first CPU
// instance runs a batch on all of min(cores, machine_cores), when that is more than its threads
// (at low concurrency one batch on all the cores answers sooner and, for memory-bound models,
// runs faster than several narrow batches: docs/performance.md).
std::vector<WorkerSpec> PlanWorkers(const std::vector<int>& instance_threads,
                                    int workers_per_session, int cores, int machine_cores);

}  // namespace maas::internal

#endif  // MAAS_LIB_WORKER_PLAN_H_
