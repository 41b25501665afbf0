// The tensor side of batching on its own: requests' rows joined into one batch and the batch's
// outputs split back, each request getting exactly its rows.
#include "batching/batch_tensors.h"

#include <torch/torch.h>

#include <vector>

#include "gtest/gtest.h"

namespace maas::internal {
namespace {

TEST(BatchTensorsTest, ConcatenatesEachInputAcrossRequestsInOrder) {
  const std::vector<at::Tensor> a = {torch::full({1, 3}, 1.0f), torch::full({1}, 10, torch::kLong)};
  const std::vector<at::Tensor> b = {torch::full({2, 3}, 2.0f), torch::full({2}, 20, torch::kLong)};
  const std::vector<at::Tensor> c = {torch::full({3, 3}, 3.0f), torch::full({3}, 30, torch::kLong)};
  std::vector<at::Tensor> batch = Concatenate({&a, &b, &c}, c10::Device(c10::kCPU));
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].sizes(), (std::vector<int64_t>{6, 3}));
  EXPECT_TRUE(torch::equal(batch[0].select(1, 0),
                           torch::tensor({1.0f, 2.0f, 2.0f, 3.0f, 3.0f, 3.0f})));
  EXPECT_TRUE(torch::equal(batch[1], torch::tensor({10, 20, 20, 30, 30, 30}, torch::kLong)));
}

TEST(BatchTensorsTest, NonContiguousInputsAreJoinedByValue) {
  const at::Tensor wide = torch::arange(12, torch::kFloat).reshape({3, 4});
  const std::vector<at::Tensor> a = {wide.t().slice(0, 0, 2)};  // 2x3, strided
  const std::vector<at::Tensor> b = {torch::zeros({1, 3})};
  std::vector<at::Tensor> batch = Concatenate({&a, &b}, c10::Device(c10::kCPU));
  EXPECT_TRUE(torch::equal(batch[0],
                           torch::cat({wide.t().slice(0, 0, 2).contiguous(), torch::zeros({1, 3})})));
}

TEST(BatchTensorsTest, SplitGivesEachRequestItsRowsAsViews) {
  const at::Tensor out0 = torch::arange(6, torch::kFloat).reshape({6, 1});
  const at::Tensor out1 = torch::arange(12, torch::kFloat).reshape({6, 2});
  std::vector<std::vector<at::Tensor>> parts = SplitRows({out0, out1}, {1, 2, 3});
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(torch::equal(parts[0][0], torch::tensor({{0.0f}})));
  EXPECT_TRUE(torch::equal(parts[1][0], torch::tensor({{1.0f}, {2.0f}})));
  EXPECT_TRUE(torch::equal(parts[2][1], out1.slice(0, 3, 6)));
  // Views of the batch's outputs, not copies.
  EXPECT_EQ(parts[2][1].data_ptr<float>(), out1.data_ptr<float>() + 6);
}

TEST(BatchTensorsTest, SplitThenConcatenateIsTheIdentity) {
  const at::Tensor batch = torch::randn({7, 5});
  std::vector<std::vector<at::Tensor>> parts = SplitRows({batch}, {4, 1, 2});
  std::vector<const std::vector<at::Tensor>*> requests;
  for (const auto& part : parts) requests.push_back(&part);
  EXPECT_TRUE(torch::equal(Concatenate(requests, c10::Device(c10::kCPU))[0], batch));
}

}  // namespace
}  // namespace maas::internal
