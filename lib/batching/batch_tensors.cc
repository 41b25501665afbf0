#include "batching/batch_tensors.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>

namespace maas::internal {
namespace {

at::Tensor ConcatenateOne(const std::vector<at::Tensor>& parts, c10::Device device) {
  const at::Tensor& first = parts.front();
  if (device.is_cpu() || !first.is_cpu()) return at::cat(parts, 0);
  std::vector<int64_t> shape = first.sizes().vec();
  shape[0] = 0;
  for (const at::Tensor& part : parts) shape[0] += part.size(0);
  at::Tensor staged = at::empty(shape, first.options().pinned_memory(true));
  at::cat_out(staged, parts, 0);
  return staged;
}

}  // namespace

std::vector<at::Tensor> Concatenate(const std::vector<const std::vector<at::Tensor>*>& inputs,
                                    c10::Device device) {
  std::vector<at::Tensor> batch;
  const size_t count = inputs.front()->size();
  batch.reserve(count);
  std::vector<at::Tensor> parts(inputs.size());
  for (size_t i = 0; i < count; ++i) {
    for (size_t r = 0; r < inputs.size(); ++r) parts[r] = (*inputs[r])[i];
    batch.push_back(ConcatenateOne(parts, device));
  }
  return batch;
}

std::vector<std::vector<at::Tensor>> SplitRows(const std::vector<at::Tensor>& outputs,
                                               const std::vector<int64_t>& rows_per_request) {
  std::vector<std::vector<at::Tensor>> split;
  split.reserve(rows_per_request.size());
  int64_t offset = 0;
  for (int64_t rows : rows_per_request) {
    std::vector<at::Tensor> mine;
    mine.reserve(outputs.size());
    for (const at::Tensor& output : outputs) mine.push_back(output.narrow(0, offset, rows));
    offset += rows;
    split.push_back(std::move(mine));
  }
  return split;
}

}  // namespace maas::internal
