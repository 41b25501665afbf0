// AOTInductor packages (.pt2) end to end: publish, inspect, load, run, batch, refuse. The
// packages come from tests/models/make_packages.py (real torch.export + AOTInductor exports of
// the same weights as the TorchScript twins beside them), made at build time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <thread>

#include "store/manifest.h"
#include "maas/scheduler.h"
#include "maas/server.h"
#include "maas/session.h"
#include "test_util.h"

namespace maas {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kPackages = MAAS_TEST_PACKAGES_DIR;

ModelSignature MlpSignature() {
  return {{{"x", torch::kFloat32, {16}}}, {{"y", torch::kFloat32, {4}}}};
}

ModelSignature TwoIoSignature() {
  return {{{"x", torch::kFloat32, {16}}, {"scale", torch::kInt64, {}}},
          {{"y", torch::kFloat32, {4}}, {"total", torch::kFloat32, {}}}};
}

class PackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::Exists(kPackages / "stamp")) {
      GTEST_SKIP() << "no test packages in " << kPackages
                   << ": this build has no MAAS_TORCH_PYTHON to export them with";
    }
    auto store = ModelStore::Open(dir_.path() / "store");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Publishes `file` from the packages folder as model `name`.
  ModelInfo Publish(const std::string& name, const std::string& file,
                    const ModelSignature& signature) {
    absl::StatusOr<ModelInfo> info = store_->Publish(name, kPackages / file, signature);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : ModelInfo{};
  }

  std::unique_ptr<Session> Load(const std::string& name, const std::string& version = "latest") {
    SessionOptions options;
    options.version = version;
    absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, name, options);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? std::move(*session) : nullptr;
  }

  testing::TempDir dir_;
  std::unique_ptr<ModelStore> store_;
};

void ExpectClose(const at::Tensor& got, const at::Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
      << "max difference " << (got - want).abs().max().item<float>();
}

TEST_F(PackageTest, PublishRecordsTheFormatAndTheBatchRangeOfTheExport) {
  const ModelInfo info = Publish("mlp", "mlp.pt2", MlpSignature());
  EXPECT_EQ(info.format, ModelFormat::kAotInductor);
  EXPECT_EQ(info.artifact_path.filename(), "model.pt2");
  // Exported with Dim("batch", min=1, max=64); export specializes sizes 0 and 1, so 2 to 64.
  EXPECT_EQ(info.signature.min_batch_size, 2);
  EXPECT_EQ(info.signature.max_batch_size, 64);

  absl::StatusOr<ModelInfo> read = store_->Get("mlp", "1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->format, ModelFormat::kAotInductor);
  EXPECT_EQ(read->signature, info.signature);
  EXPECT_EQ(read->artifact_path, info.artifact_path);
  const std::string manifest = testing::ReadBytes(info.artifact_path.parent_path() / "manifest.json");
  EXPECT_THAT(manifest, HasSubstr("\"model_format\": \"aot_inductor\""));
  EXPECT_THAT(manifest, HasSubstr("\"artifact\": \"model.pt2\""));
  EXPECT_TRUE(store_->Verify("mlp", "1").ok());

  // Aliases and rollback work the same: a TorchScript version beside it, alias moved back.
  const ModelInfo script = Publish("mlp", "mlp.pt", MlpSignature());
  EXPECT_EQ(script.format, ModelFormat::kTorchScript);
  EXPECT_EQ(script.artifact_path.filename(), "model.pt");
  ASSERT_TRUE(store_->SetAlias("mlp", "stable", 2).ok());
  ASSERT_TRUE(store_->SetAlias("mlp", "stable", 1).ok());
  absl::StatusOr<ModelInfo> stable = store_->Get("mlp", "stable");
  ASSERT_TRUE(stable.ok());
  EXPECT_EQ(stable->format, ModelFormat::kAotInductor);
}

TEST_F(PackageTest, AnswersAsTheTorchScriptTwinAtEveryBatchSizeItAccepts) {
  Publish("aoti", "mlp.pt2", MlpSignature());
  Publish("script", "mlp.pt", MlpSignature());
  std::unique_ptr<Session> package = Load("aoti");
  std::unique_ptr<Session> script = Load("script");
  ASSERT_TRUE(package && script);
  EXPECT_EQ(package->format(), ModelFormat::kAotInductor);
  EXPECT_GE(package->memory_bytes(), (16 * 32 + 32 * 4) * 4);  // the weight matrices, float32
  // 1 is below the package's minimum: padded, and the padding dropped.
  for (int64_t batch : {1, 2, 3, 17, 64}) {
    SCOPED_TRACE(batch);
    const at::Tensor x = torch::randn({batch, 16});
    absl::StatusOr<std::vector<at::Tensor>> got = package->Run({x});
    absl::StatusOr<std::vector<at::Tensor>> want = script->Run({x});
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok()) << want.status();
    ExpectClose((*got)[0], (*want)[0]);
  }
  // A non-contiguous input (the package's kernels assume contiguous rows).
  const at::Tensor wide = torch::randn({5, 32});
  const at::Tensor strided = wide.narrow(1, 0, 16);
  ExpectClose((*package->Run({strided}))[0], (*script->Run({strided.contiguous()}))[0]);

  absl::StatusOr<std::vector<at::Tensor>> too_many = package->Run({torch::randn({65, 16})});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_many.status().message(), HasSubstr("a batch of 65 items; the model accepts at most 64"));
  absl::StatusOr<std::vector<at::Tensor>> wrong = package->Run({torch::randn({2, 15})});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  // Still serving after the refusals.
  EXPECT_TRUE(package->Run({torch::randn({2, 16})}).ok());
}

TEST_F(PackageTest, AStaticBatchPackageRunsEverySmallerBatchPaddedToItsSize) {
  const ModelInfo info = Publish("static", "mlp_static4.pt2", MlpSignature());
  EXPECT_EQ(info.signature.min_batch_size, 4);
  EXPECT_EQ(info.signature.max_batch_size, 4);
  Publish("script", "mlp.pt", MlpSignature());
  std::unique_ptr<Session> package = Load("static");
  std::unique_ptr<Session> script = Load("script");
  ASSERT_TRUE(package && script);
  for (int64_t batch : {1, 3, 4}) {
    const at::Tensor x = torch::randn({batch, 16});
    ExpectClose((*package->Run({x}))[0], (*script->Run({x}))[0]);
  }
  EXPECT_EQ(package->Run({torch::randn({5, 16})}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PackageTest, SeveralInputsAndOutputsOfSeveralDtypes) {
  Publish("aoti", "two_io.pt2", TwoIoSignature());
  Publish("script", "two_io.pt", TwoIoSignature());
  std::unique_ptr<Session> package = Load("aoti");
  std::unique_ptr<Session> script = Load("script");
  ASSERT_TRUE(package && script);
  const at::Tensor x = torch::randn({5, 16});
  const at::Tensor scale = torch::tensor({1, 2, 3, 4, 5}, torch::kInt64);
  absl::StatusOr<std::vector<at::Tensor>> got = package->Run({x, scale});
  absl::StatusOr<std::vector<at::Tensor>> want = script->Run({x, scale});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  ExpectClose((*got)[0], (*want)[0]);
  ExpectClose((*got)[1], (*want)[1]);
  absl::StatusOr<std::vector<at::Tensor>> wrong_dtype = package->Run({x, scale.to(torch::kInt32)});
  EXPECT_EQ(wrong_dtype.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_dtype.status().message(),
              HasSubstr("input 'scale': expected dtype int64 (INT64), got int32 (INT32)"));
}

TEST_F(PackageTest, PublishRefusesASignatureThePackageContradicts) {
  struct Case {
    ModelSignature signature;
    std::string message;
  };
  ModelSignature narrow = MlpSignature();
  narrow.inputs[0].shape = {8};
  ModelSignature any = MlpSignature();
  any.inputs[0].shape = {kAnyDim};
  ModelSignature ints = MlpSignature();
  ints.inputs[0].dtype = torch::kInt64;
  ModelSignature two_inputs = TwoIoSignature();
  ModelSignature rank = MlpSignature();
  rank.inputs[0].shape = {4, 4};
  ModelSignature outputs = MlpSignature();
  outputs.outputs.push_back({"z", torch::kFloat32, {}});
  ModelSignature batch = MlpSignature();
  batch.min_batch_size = 65;
  for (const Case& c : std::vector<Case>{
           {narrow, "input 'x' dimension 1: the package fixes it at 16, the signature declares 8"},
           {any, "the package fixes it at 16, the signature declares any size (-1)"},
           {ints, "input 'x': the package expects float32, the signature declares int64"},
           {two_inputs, "the package takes 1 input(s); the signature declares 2"},
           {rank, "the package expects 2 dimension(s), the signature declares 2 per item plus the batch"},
           {outputs, "the package returns 1 output(s); the signature declares 2"},
           {batch, "the package accepts batches of 2 to 64 item(s), the signature declares 65 or more"},
       }) {
    SCOPED_TRACE(c.message);
    absl::StatusOr<ModelInfo> info = store_->Publish("mlp", kPackages / "mlp.pt2", c.signature);
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(info.status().message(), HasSubstr(c.message));
  }
  // Nothing was published.
  EXPECT_EQ(store_->Get("mlp").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PackageTest, DamagedPackagesAreRefusedWithTheirReason) {
  const std::string bytes = testing::ReadBytes(kPackages / "mlp.pt2");
  const fs::path truncated = dir_.path() / "truncated.pt2";
  testing::WriteBytes(truncated, bytes.substr(0, bytes.size() / 2));
  absl::StatusOr<ModelInfo> info = store_->Publish("mlp", truncated, MlpSignature());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(), HasSubstr("is not a valid model archive"));

  // A package whose compiled library is damaged passes publish (which does not load it) and
  // is refused by the Session, naming LibTorch's reason.
  std::string damaged = bytes;
  const size_t elf = damaged.find("\x7f" "ELF");
  ASSERT_NE(elf, std::string::npos);
  for (size_t i = elf; i < elf + 4096 && i < damaged.size(); ++i) damaged[i] = 'x';
  const fs::path broken = dir_.path() / "broken.pt2";
  testing::WriteBytes(broken, damaged);
  ASSERT_TRUE(store_->Publish("mlp", broken, MlpSignature()).ok());
  SessionOptions options;
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, "mlp", options);
  EXPECT_EQ(session.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(session.status().message(), HasSubstr("LibTorch cannot load the AOTInductor package"));

  // A package from a torch whose archive version this LibTorch does not read.
  info = store_->Publish("future", kPackages / "mlp_future.pt2", MlpSignature());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(),
              HasSubstr("it has archive version 99, and the LibTorch maas runs on reads version 0"));
}

TEST_F(PackageTest, APackageForAnotherDeviceIsRefusedAtLoad) {
  Publish("mlp", "mlp_cuda_key.pt2", MlpSignature());
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, "mlp");
  EXPECT_EQ(session.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(session.status().message(),
              HasSubstr("compiled for device 'cuda' but this session runs on 'cpu'"));
  SessionOptions half;
  half.precision = Precision::kFloat16;
  Publish("cpu", "mlp.pt2", MlpSignature());
  EXPECT_EQ(Session::Create(*store_, "cpu", half).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PackageTest, TheSchedulerBatchesAPackageWithinItsRange) {
  Publish("aoti", "mlp.pt2", MlpSignature());
  Publish("script", "mlp.pt", MlpSignature());
  std::shared_ptr<Session> package = Load("aoti");
  std::unique_ptr<Session> script = Load("script");
  ASSERT_TRUE(package && script);
  auto scheduler = Scheduler::Create();
  ASSERT_TRUE(scheduler.ok());
  BatchingOptions options;
  options.max_batch_size = 256;  // more than the package accepts: capped at 64
  ASSERT_TRUE((*scheduler)->AddModel("mlp", {package}, options).ok());

  constexpr int kThreads = 16, kRequests = 25;
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRequests; ++i) {
        const at::Tensor x = torch::randn({1, 16});
        absl::StatusOr<std::vector<at::Tensor>> got = (*scheduler)->Infer("mlp", {x});
        if (!got.ok()) {
          ++failed;
          continue;
        }
        if (!torch::allclose((*got)[0], (*script->Run({x}))[0], 1e-5, 1e-5)) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  absl::StatusOr<ModelStats> stats = (*scheduler)->Stats("mlp");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->batch_size_histogram.size(), 65u);  // sizes 0..64: the cap held
  EXPECT_GT(stats->batches, 0);
  absl::Status too_large = (*scheduler)->Submit("mlp", {torch::randn({65, 16})}, {},
                                                [](InferenceResult) {});
  EXPECT_EQ(too_large.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PackageTest, AServerKeepsTheVersionThatServedWhenANewPackageCannotLoad) {
  Publish("mlp", "mlp.pt2", MlpSignature());
  auto server = Server::Create(dir_.path() / "store");
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Deploy("mlp").ok());
  const at::Tensor x = torch::randn({3, 16});
  absl::StatusOr<std::vector<at::Tensor>> before = (*server)->Infer("mlp", {x});
  ASSERT_TRUE(before.ok()) << before.status();

  Publish("mlp", "mlp_cuda_key.pt2", MlpSignature());  // version 2: cannot load on the CPU
  absl::Status reloaded = (*server)->Refresh();
  EXPECT_FALSE(reloaded.ok());
  absl::StatusOr<std::vector<at::Tensor>> after = (*server)->Infer("mlp", {x});
  ASSERT_TRUE(after.ok()) << after.status();
  ExpectClose((*after)[0], (*before)[0]);
}

}  // namespace
}  // namespace maas
