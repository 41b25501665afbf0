// CheckInputs and CollectOutputs: what a request may hold and what a model may return, each rule
// with the message that names it.
#include "session/tensor_checks.h"

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using ::testing::HasSubstr;

// Two inputs: "x" [any, 3] float, "ids" [2] int64; batchable up to 8.
ModelSignature TwoInputs() {
  ModelSignature signature;
  signature.inputs = {{"x", torch::kFloat32, {kAnyDim, 3}}, {"ids", torch::kInt64, {2}}};
  signature.outputs = {{"y", torch::kFloat32, {3}}};
  signature.max_batch_size = 8;
  return signature;
}

std::string Refusal(const std::vector<at::Tensor>& inputs) {
  absl::StatusOr<int64_t> batch = CheckInputs(TwoInputs(), inputs, "model 'm'");
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(batch.status().message());
}

TEST(TensorChecksTest, AcceptsMatchingInputsAndReturnsTheirBatch) {
  absl::StatusOr<int64_t> batch = CheckInputs(
      TwoInputs(), {torch::zeros({4, 5, 3}), torch::zeros({4, 2}, torch::kInt64)}, "model 'm'");
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(*batch, 4);
}

TEST(TensorChecksTest, EachRuleIsRefusedNamingTheInputExpectedAndGot) {
  const at::Tensor ids = torch::zeros({1, 2}, torch::kInt64);
  EXPECT_THAT(Refusal({torch::zeros({1, 5, 3})}), HasSubstr("model 'm'"));
  EXPECT_THAT(Refusal({torch::zeros({1, 5, 3})}), HasSubstr("2"));  // Count: 2 expected.
  EXPECT_THAT(Refusal({torch::zeros({1, 5, 3}, torch::kFloat64), ids}), HasSubstr("'x'"));
  EXPECT_THAT(Refusal({torch::zeros({1, 3}), ids}), HasSubstr("'x'"));       // Rank.
  EXPECT_THAT(Refusal({torch::zeros({1, 5, 4}), ids}), HasSubstr("'x'"));    // Fixed dim.
  EXPECT_THAT(Refusal({torch::zeros({2, 5, 3}), ids}), HasSubstr("batch"));  // Unequal batches.
  EXPECT_THAT(Refusal({torch::zeros({9, 5, 3}), torch::zeros({9, 2}, torch::kInt64)}),
              HasSubstr("8"));  // Beyond max_batch_size.
}

TEST(TensorChecksTest, OutputsComeInTheSignaturesOrderFromATupleOrADict) {
  ModelSignature signature;
  signature.inputs = {{"x", torch::kFloat32, {3}}};
  signature.outputs = {{"a", torch::kFloat32, {3}}, {"b", torch::kFloat32, {1}}};
  const at::Tensor a = torch::ones({2, 3}), b = torch::zeros({2, 1});
  absl::StatusOr<std::vector<at::Tensor>> from_tuple =
      CollectOutputs(signature, c10::ivalue::Tuple::create({a, b}), 2, "model 'm'");
  ASSERT_TRUE(from_tuple.ok()) << from_tuple.status();
  EXPECT_TRUE(torch::equal((*from_tuple)[1], b));
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("b", b);
  dict.insert("a", a);
  absl::StatusOr<std::vector<at::Tensor>> from_dict =
      CollectOutputs(signature, c10::IValue(dict), 2, "model 'm'");
  ASSERT_TRUE(from_dict.ok()) << from_dict.status();
  EXPECT_TRUE(torch::equal((*from_dict)[0], a));
  // An output that contradicts the signature is the model's fault: Internal, naming it.
  absl::StatusOr<std::vector<at::Tensor>> wrong = CollectOutputs(
      signature, c10::ivalue::Tuple::create({a, torch::zeros({2, 4})}), 2, "model 'm'");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("model 'm' returned"));
}

TEST(TensorChecksTest, ExampleInputsMatchTheSignature) {
  const std::vector<at::Tensor> inputs = ExampleInputs(TwoInputs(), torch::kCPU);
  EXPECT_TRUE(CheckInputs(TwoInputs(), inputs, "model 'm'").ok());
  EXPECT_EQ(inputs[0].size(0), 1);
}

}  // namespace
}  // namespace maas::internal
