// WaitingRoom: requests for a model that was unloaded to make room under the memory budget,
// held until it is loaded again.
#ifndef MAAS_LIB_WAITING_ROOM_H_
#define MAAS_LIB_WAITING_ROOM_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "batching/executor_request.h"
#include "maas/clock.h"
#include "maas/request.h"

namespace maas::internal {

// A request waiting for a reload, with what it was submitted with.
struct WaitingRequest {
  std::vector<at::Tensor> inputs;
  ServerRequestOptions options;
  Reply reply;
};

// At most a bounded number of requests wait; the first one to enter after a release asks for
// the reload. This class is thread-compatible: the Deployment's lock guards it, because
// entering must be atomic with seeing that the model is still unloaded.
class WaitingRoom {
 public:
  // Takes `request` unless `max_waiting` requests already wait (false: it is left as it was).
  // Its timeout becomes a deadline counted from `now`: the wait for the reload counts. Sets
  // *ask_reload when no reload was asked for since the last TakeAll.
  bool Enter(WaitingRequest& request, int64_t max_waiting, absl::Time now, bool* ask_reload);

  // Every waiting request, in arrival order; the next Enter asks for a reload again.
  std::vector<WaitingRequest> TakeAll();

  bool empty() const { return waiting_.empty(); }

 private:
  std::vector<WaitingRequest> waiting_;
  bool reload_asked_ = false;
};

// Unavailable: the room of the model `label` is full.
absl::Status WaitingRoomFull(const std::string& label);

// The answer of a request that waits in the room with its result promised to `future`, waited
// for until `deadline` (then DeadlineExceeded; the request itself is answered, to nobody, once
// the model is loaded).
InferenceResult AwaitReload(std::future<InferenceResult>& future, absl::Time deadline,
                            const Clock& clock, const std::string& label);

}  // namespace maas::internal

#endif  // MAAS_LIB_WAITING_ROOM_H_
