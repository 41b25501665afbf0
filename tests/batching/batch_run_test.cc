// RunBatch on a stand-in forward (doubling its input, and failing on what the test says), so
// that joining, splitting and retrying alone are checked apart from sessions and threads.
#include "batching/batch_run.h"

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace maas::internal {
namespace {

using ::testing::HasSubstr;

// Doubles its input; fails on a batch of more than `max_rows` rows, or when any value is negative.
Forward Doubling(int64_t max_rows, int* calls) {
  return [max_rows, calls](const std::vector<at::Tensor>& inputs) -> InferenceResult {
    ++*calls;
    if (inputs[0].size(0) > max_rows) return absl::ResourceExhaustedError("out of memory");
    if ((inputs[0] < 0).any().item<bool>()) throw std::runtime_error("negative input");
    return std::vector<at::Tensor>{inputs[0] * 2};
  };
}

class BatchRunTest : public ::testing::Test {
 protected:
  BatchRun Run(std::vector<std::vector<at::Tensor>> requests, const Forward& forward) {
    requests_ = std::move(requests);
    std::vector<const std::vector<at::Tensor>*> inputs;
    std::vector<int64_t> rows;
    for (const std::vector<at::Tensor>& request : requests_) {
      inputs.push_back(&request);
      rows.push_back(request[0].size(0));
    }
    return RunBatch(inputs, rows, torch::kCPU, forward, *RealClock(), "model 'm'");
  }
  std::vector<std::vector<at::Tensor>> requests_;
  int calls_ = 0;
};

TEST_F(BatchRunTest, OneForwardForTheBatchAndEachRequestGetsItsRows) {
  BatchRun run = Run({{torch::full({1, 2}, 1.0)}, {torch::full({2, 2}, 3.0)}},
                     Doubling(/*max_rows=*/8, &calls_));
  EXPECT_EQ(calls_, 1);
  EXPECT_TRUE(run.batch_ok);
  EXPECT_FALSE(run.retried_alone);
  ASSERT_EQ(run.answers.size(), 2u);
  EXPECT_TRUE(torch::equal((*run.answers[0])[0], torch::full({1, 2}, 2.0)));
  EXPECT_TRUE(torch::equal((*run.answers[1])[0], torch::full({2, 2}, 6.0)));
  EXPECT_LE(run.assembled, run.ran);
  EXPECT_LE(run.ran, run.split);
}

TEST_F(BatchRunTest, OneBadRequestFailsAloneAndItsNeighboursAreAnswered) {
  BatchRun run = Run({{torch::ones({1, 2})}, {-torch::ones({1, 2})}, {torch::ones({1, 2})}},
                     Doubling(8, &calls_));
  EXPECT_EQ(calls_, 4);  // The batch, then each alone.
  EXPECT_FALSE(run.batch_ok);
  EXPECT_TRUE(run.retried_alone);
  EXPECT_FALSE(run.too_large);
  ASSERT_EQ(run.answers.size(), 3u);
  EXPECT_TRUE(run.answers[0].ok());
  EXPECT_EQ(run.answers[1].status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(run.answers[1].status().message()), HasSubstr("model 'm' failed"));
  EXPECT_THAT(std::string(run.answers[1].status().message()), HasSubstr("negative input"));
  EXPECT_TRUE(run.answers[2].ok());
}

TEST_F(BatchRunTest, ABatchThatFailsOnlyTogetherIsTooLarge) {
  BatchRun run = Run({{torch::ones({2, 2})}, {torch::ones({2, 2})}}, Doubling(3, &calls_));
  EXPECT_TRUE(run.retried_alone);
  EXPECT_TRUE(run.too_large);
  EXPECT_TRUE(run.answers[0].ok());
  EXPECT_TRUE(run.answers[1].ok());
}

TEST_F(BatchRunTest, ALoneRequestIsNotRunTwice) {
  BatchRun run = Run({{torch::ones({4, 2})}}, Doubling(3, &calls_));
  EXPECT_EQ(calls_, 1);
  EXPECT_FALSE(run.retried_alone);
  ASSERT_EQ(run.answers.size(), 1u);
  EXPECT_EQ(run.answers[0].status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace maas::internal
