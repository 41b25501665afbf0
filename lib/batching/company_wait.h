// The adaptive wait for company: how many items a model usually has in flight, and how long a
// free worker's batch waits for them. BatchQueue's controllers (docs/scheduler.md, "Adaptive
// batching").
#ifndef MAAS_LIB_COMPANY_WAIT_H_
#define MAAS_LIB_COMPANY_WAIT_H_

#include <cstdint>
#include <optional>

#include "absl/time/time.h"

namespace maas::internal {

// The items usually in flight for one model (queued plus running), learned from the load: it
// rises to the count at each arrival, and falls to the count of the moment when a batch waited
// for more in vain. Starts at 1 (a lone caller). It has no states beyond its value.
//
// This class is thread-compatible.
class InFlightEstimate {
 public:
  // A request arrived; `in_flight` items are now queued or running.
  void Arrived(int64_t in_flight);
  // A batch waited for the expected items (or could not wait) and they did not come: expect
  // only the `in_flight` of now (at least 1).
  void WaitedInVain(int64_t in_flight);

  double value() const { return value_; }
  // The value rounded to whole items.
  int64_t items() const { return static_cast<int64_t>(value_ + 0.5); }

 private:
  double value_ = 1;
};

// What CompanyWaitUntil decides from.
struct CompanyWaitInput {
  int64_t batch_items = 0;     // Items in the batch formed now.
  int64_t expected_items = 0;  // Items expected in flight, within what one batch may take.
  bool in_step = false;        // Whether callers are in step with their answers (StepDetector).
  // The predicted execution time of a batch of expected_items; none before anything was learned.
  std::optional<absl::Duration> predicted;
  absl::Time oldest;         // When the batch's oldest request arrived.
  absl::Time last_answer;    // When the model last answered (InfinitePast before).
  absl::Time running_until;  // When the batches running now should end (InfinitePast: none).
  absl::Time earliest_deadline = absl::InfiniteFuture();  // Of the batch's requests.
};

// When a free worker's batch should stop waiting for the requests expected in flight:
// InfinitePast when it should not wait at all (it holds them all already, callers are not in
// step, or nothing was learned yet). Otherwise a quarter of the expected batch's predicted
// execution time after the latest of: its oldest arrival, the last answer, and the end of the
// batches running now (some of the expected requests may be in a running batch: then the wait
// covers their answers' echo too, so that batches split by chance merge again), and never so
// late that the batch would miss its earliest deadline.
absl::Time CompanyWaitUntil(const CompanyWaitInput& input);

}  // namespace maas::internal

#endif  // MAAS_LIB_COMPANY_WAIT_H_
