// Running one formed batch: its requests' inputs joined, one forward, the outputs split into
// each request's rows; and when a batch of several fails, each request run again alone, so that
// one bad request does not fail its neighbours.
#ifndef MAAS_LIB_BATCH_RUN_H_
#define MAAS_LIB_BATCH_RUN_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "maas/clock.h"
#include "maas/request.h"

namespace maas::internal {

// What a batch's run gave.
struct BatchRun {
  std::vector<InferenceResult> answers;  // One per request, in order.
  bool batch_ok = false;                 // The batch's own forward succeeded.
  bool retried_alone = false;            // It failed with several requests; each ran again alone.
  // It failed although each of its requests succeeded alone: too large for the model or the
  // device (out of memory, say).
  bool too_large = false;
  // When the inputs were ready for the model, when the forwards (the batch's, and any retries)
  // ended, and when the answers were split.
  absl::Time assembled, ran, split;
};

// One forward of the model over `inputs`. May throw; the caller's exceptions are caught.
using Forward = std::function<InferenceResult(const std::vector<at::Tensor>&)>;

// Runs the batch of requests whose inputs are `inputs` (inputs[r]: request r's, holding rows[r]
// rows) with `forward`, on a session on `device`. A single request runs on its own tensors;
// several are concatenated along the batch dimension, and each gets views of its rows of the
// outputs (no copies). Never throws: an exception becomes an Internal answer naming `label`.
// This costs a forward per request only when a batch fails.
BatchRun RunBatch(const std::vector<const std::vector<at::Tensor>*>& inputs,
                  const std::vector<int64_t>& rows, c10::Device device, const Forward& forward,
                  const Clock& clock, const std::string& label);

}  // namespace maas::internal

#endif  // MAAS_LIB_BATCH_RUN_H_
