// What the batching policy knows of a request, and why a batch ends.
#ifndef MAAS_LIB_BATCH_TASK_H_
#define MAAS_LIB_BATCH_TASK_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "maas/stats.h"

namespace maas::internal {

// What the policy knows of a request. A queue's task type derives from it.
struct BatchTask {
  int64_t items = 1;  // Rows in dimension 0 (1 for models that are not batchable).
  int priority = 0;
  absl::Time enqueued;
  absl::Time deadline = absl::InfiniteFuture();
  // Tasks share a batch only when their keys match (for tensors: the non-batch dimensions and
  // the device of every input).
  std::vector<int64_t> key;
};

// Why a formed batch is no larger (counted in ModelStats::batch_ends).
enum class BatchEnd { kFull, kNextTooLarge, kDeadline, kPreferred, kQueueEmpty };

// Counts `end` in `counts`.
void CountBatchEnd(BatchEnd end, BatchEndCounts* counts);

}  // namespace maas::internal

#endif  // MAAS_LIB_BATCH_TASK_H_
