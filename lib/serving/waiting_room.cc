#include "serving/waiting_room.h"

#include <algorithm>
#include <utility>

#include "util/absl_compat.h"
#include "fmt/core.h"

namespace maas::internal {

bool WaitingRoom::Enter(WaitingRequest& request, int64_t max_waiting, absl::Time now,
                        bool* ask_reload) {
  *ask_reload = false;
  if (static_cast<int64_t>(waiting_.size()) >= max_waiting) return false;
  request.options.deadline = DeadlineOf(request.options, now);
  request.options.timeout = absl::InfiniteDuration();
  waiting_.push_back(std::move(request));
  *ask_reload = !reload_asked_;
  reload_asked_ = true;
  return true;
}

std::vector<WaitingRequest> WaitingRoom::TakeAll() {
  std::vector<WaitingRequest> all;
  all.swap(waiting_);
  reload_asked_ = false;
  return all;
}

absl::Status WaitingRoomFull(const std::string& label) {
  return absl::UnavailableError(fmt::format(
      "{} is loading again after it was unloaded for memory, and max_queue_size requests already "
      "wait for it; retry later",
      label));
}

InferenceResult AwaitReload(std::future<InferenceResult>& future, absl::Time deadline,
                            const Clock& clock, const std::string& label) {
  if (deadline == absl::InfiniteFuture()) return future.get();
  const absl::Duration left = std::max(deadline - clock.Now(), absl::ZeroDuration());
  if (future.wait_for(absl::ToChronoNanoseconds(left)) == std::future_status::ready) {
    return future.get();
  }
  return absl::DeadlineExceededError(fmt::format(
      "{}: the deadline passed while the model was loading again after it was unloaded for "
      "memory",
      label));
}

}  // namespace maas::internal
