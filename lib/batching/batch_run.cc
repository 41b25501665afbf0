#include "batching/batch_run.h"

#include <algorithm>
#include <utility>

#include <c10/core/InferenceMode.h>

#include "batching/batch_tensors.h"
#include "fmt/core.h"
#include "session/torch_errors.h"

namespace maas::internal {

BatchRun RunBatch(const std::vector<const std::vector<at::Tensor>*>& inputs,
                  const std::vector<int64_t>& rows, c10::Device device, const Forward& forward,
                  const Clock& clock, const std::string& label) {
  // Joining and splitting under inference mode too, as the forward runs: without it every
  // view that splits the answers also passes through autograd's dispatch (callgrind, MLP
  // batches of 16: about 550 instructions per request more, of the 12,600 maas added).
  c10::InferenceMode inference_mode;
  BatchRun run;
  run.assembled = clock.Now();
  InferenceResult result;
  try {
    if (inputs.size() == 1) {
      result = forward(*inputs.front());
    } else {
      std::vector<at::Tensor> joined = Concatenate(inputs, device);
      run.assembled = clock.Now();
      result = forward(joined);
    }
  } catch (...) {
    result = StatusFromCurrentException(absl::StatusCode::kInternal,
                                        fmt::format("{}: cannot assemble the batch", label));
  }
  run.batch_ok = result.ok();
  run.answers.reserve(inputs.size());
  // A failed batch of several may have failed on one request's data (or on its size, as a GPU
  // out of memory): each request runs again alone.
  run.retried_alone = !result.ok() && inputs.size() > 1;
  if (run.retried_alone) {
    for (const std::vector<at::Tensor>* mine : inputs) {
      try {
        run.answers.push_back(forward(*mine));
      } catch (...) {
        run.answers.push_back(StatusFromCurrentException(absl::StatusCode::kInternal,
                                                         fmt::format("{} failed", label)));
      }
    }
    run.too_large = std::all_of(run.answers.begin(), run.answers.end(),
                                [](const InferenceResult& answer) { return answer.ok(); });
  }
  run.ran = clock.Now();
  if (run.retried_alone) {
    // Answered above.
  } else if (!result.ok()) {
    run.answers.assign(inputs.size(), result.status());
  } else if (inputs.size() == 1) {
    run.answers.push_back(std::move(result));
  } else {
    for (std::vector<at::Tensor>& mine : SplitRows(*result, rows)) {
      run.answers.push_back(std::move(mine));
    }
  }
  run.split = clock.Now();
  return run;
}

}  // namespace maas::internal
