// CoreBudget: the CPU cores that the workers of one Scheduler or Server may keep busy at once.
#ifndef MAAS_LIB_CORE_BUDGET_H_
#define MAAS_LIB_CORE_BUDGET_H_

#include "absl/base/thread_annotations.h"
#include "util/mutex.h"

namespace maas::internal {

// A counting semaphore of CPU cores shared by every CPU worker of a Scheduler or Server: a
// worker takes its session's intra-op thread count before it runs a batch, so that workers
// together never oversubscribe the cores given to the library.
// This class is thread-safe.
class CoreBudget {
 public:
  explicit CoreBudget(int cores) : total_(cores), available_(cores) {}
  int total() const { return total_; }
  // Blocks until `n` cores (at most total()) are free and takes them.
  void Acquire(int n);
  // Takes `n` cores if they are free now.
  bool TryAcquire(int n);
  void Release(int n);
  // Whether no core is taken now (a hint: it may change at once).
  bool AllFree();
  // The cores free now (a hint).
  int Available();

 private:
  const int total_;
  Mutex mu_;
  CondVar released_;
  int available_ ABSL_GUARDED_BY(mu_);
};

}  // namespace maas::internal

#endif  // MAAS_LIB_CORE_BUDGET_H_
