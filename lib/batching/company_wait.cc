#include "batching/company_wait.h"

#include <algorithm>

namespace maas::internal {

void InFlightEstimate::Arrived(int64_t in_flight) {
  value_ = std::max(value_, static_cast<double>(in_flight));
}

void InFlightEstimate::WaitedInVain(int64_t in_flight) {
  value_ = static_cast<double>(std::max<int64_t>(1, in_flight));
}

absl::Time CompanyWaitUntil(const CompanyWaitInput& input) {
  if (input.batch_items >= input.expected_items || !input.in_step || !input.predicted) {
    return absl::InfinitePast();
  }
  absl::Time until =
      std::max({input.oldest, input.last_answer, input.running_until}) + *input.predicted / 4;
  if (input.earliest_deadline != absl::InfiniteFuture()) {
    until = std::min(until, input.earliest_deadline - *input.predicted);
  }
  return until;
}

}  // namespace maas::internal
