// Tests of Session: results equal to a direct forward for every output form, every validation
// error, throwing and lying models, corrupt artifacts, options, threads and CUDA placement.
#include "maas/session.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <atomic>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>
#include <tuple>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "maas/log.h"
#include "maas/model_store.h"
#include "maas/scheduler.h"
#include "test_util.h"

namespace maas {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// Relative tolerance for comparing with a direct forward: freezing may reorder float math.
void ExpectClose(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6))
      << what << ": max difference " << (got - want).abs().max().item<double>();
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(*ModelStore::Open(dir_.path() / "store")); }

  // Publishes a fixture module under `name` and returns the artifact's path.
  fs::path Publish(const std::string& name, const std::string& source,
                   const ModelSignature& signature,
                   const std::vector<std::pair<std::string, at::Tensor>>& parameters = {}) {
    fs::path file = dir_.path() / (name + ".pt");
    testing::SaveScript(file, source, parameters);
    absl::StatusOr<ModelInfo> info = store_->Publish(name, file, signature);
    EXPECT_TRUE(info.ok()) << info.status();
    return file;
  }

  std::unique_ptr<Session> Create(const std::string& name, SessionOptions options = {}) {
    absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, name, options);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? std::move(*session) : nullptr;
  }

  // The reference: the same artifact loaded plainly and run with forward.
  static c10::IValue DirectForward(const fs::path& file, std::vector<c10::IValue> inputs) {
    torch::jit::Module module = torch::jit::load(file.string());
    module.eval();
    c10::InferenceMode guard;
    return module.forward(std::move(inputs));
  }

  testing::TempDir dir_;
  std::unique_ptr<ModelStore> store_;
};

constexpr char kTwoInputsTuple[] = R"(
def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
  return (a + b, torch.matmul(a, self.w))
)";

constexpr char kThreeInputsDict[] = R"(
def forward(self, x: Tensor, y: Tensor, scale: Tensor) -> Dict[str, Tensor]:
  return {"scaled": x * scale, "sum": x + y, "count": (x > 0).sum(1)}
)";

constexpr char kListOutput[] = R"(
def forward(self, x: Tensor) -> List[Tensor]:
  return [x * 2.0, x.mean(1, keepdim=True)]
)";

constexpr char kThrowsOnNegative[] = R"(
def forward(self, x: Tensor) -> Tensor:
  assert bool(torch.all(x >= 0)), "negative input is not allowed"
  return x * 2.0
)";

TEST_F(SessionTest, OneInputTensorOutputMatchesDirectForward) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file, 4, 2, /*seed=*/3);
  ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());
  for (GraphOptimization optimization :
       {GraphOptimization::kNone, GraphOptimization::kFreeze, GraphOptimization::kForInference}) {
    SessionOptions options;
    options.optimization = optimization;
    std::unique_ptr<Session> session = Create("linear", options);
    ASSERT_NE(session, nullptr);
    for (int64_t batch : {1, 7, 64}) {
      at::Tensor x = torch::randn({batch, 4});
      absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x});
      ASSERT_TRUE(out.ok()) << out.status();
      ASSERT_EQ(out->size(), 1u);
      ExpectClose((*out)[0], DirectForward(file, {x}).toTensor(), "batch " + std::to_string(batch));
    }
    // A non-contiguous input (a transposed view) works.
    at::Tensor columns = torch::randn({4, 5});
    at::Tensor x = columns.t();
    ASSERT_FALSE(x.is_contiguous());
    absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x});
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectClose((*out)[0], DirectForward(file, {x.contiguous()}).toTensor(), "non-contiguous");
  }
}

TEST_F(SessionTest, TwoInputsTupleOutput) {
  ModelSignature signature{{{"a", torch::kFloat32, {3}}, {"b", torch::kFloat32, {3}}},
                           {{"sum", torch::kFloat32, {3}}, {"proj", torch::kFloat32, {2}}}};
  fs::path file = Publish("two", kTwoInputsTuple, signature, {{"w", torch::randn({3, 2})}});
  std::unique_ptr<Session> session = Create("two");
  at::Tensor a = torch::randn({5, 3}), b = torch::randn({5, 3});
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({a, b});
  ASSERT_TRUE(out.ok()) << out.status();
  auto direct = DirectForward(file, {a, b}).toTuple()->elements();
  ASSERT_EQ(out->size(), 2u);
  ExpectClose((*out)[0], direct[0].toTensor(), "sum");
  ExpectClose((*out)[1], direct[1].toTensor(), "proj");
}

TEST_F(SessionTest, ThreeInputsDictOutputComesBackInSignatureOrder) {
  ModelSignature signature{
      {{"x", torch::kFloat32, {4}}, {"y", torch::kFloat32, {4}}, {"scale", torch::kFloat32, {1}}},
      {{"sum", torch::kFloat32, {4}},
       {"count", torch::kInt64, {}},
       {"scaled", torch::kFloat32, {4}}}};
  fs::path file = Publish("three", kThreeInputsDict, signature);
  std::unique_ptr<Session> session = Create("three");
  at::Tensor x = torch::randn({6, 4}), y = torch::randn({6, 4}), scale = torch::rand({6, 1});
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x, y, scale});
  ASSERT_TRUE(out.ok()) << out.status();
  c10::Dict<c10::IValue, c10::IValue> direct = DirectForward(file, {x, y, scale}).toGenericDict();
  ASSERT_EQ(out->size(), 3u);
  ExpectClose((*out)[0], direct.at("sum").toTensor(), "sum");
  EXPECT_TRUE(torch::equal((*out)[1], direct.at("count").toTensor()));
  ExpectClose((*out)[2], direct.at("scaled").toTensor(), "scaled");
}

TEST_F(SessionTest, ListOutput) {
  ModelSignature signature{{{"x", torch::kFloat32, {3}}},
                           {{"double", torch::kFloat32, {3}}, {"mean", torch::kFloat32, {1}}}};
  fs::path file = Publish("list", kListOutput, signature);
  std::unique_ptr<Session> session = Create("list");
  at::Tensor x = torch::randn({2, 3});
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x});
  ASSERT_TRUE(out.ok()) << out.status();
  auto direct = DirectForward(file, {x}).toList();
  ExpectClose((*out)[0], direct.get(0).toTensor(), "double");
  ExpectClose((*out)[1], direct.get(1).toTensor(), "mean");
}

TEST_F(SessionTest, EveryValidationErrorNamesTheInputExpectedAndGot) {
  ModelSignature signature{{{"a", torch::kFloat32, {3}}, {"b", torch::kFloat32, {3}}},
                           {{"sum", torch::kFloat32, {3}}, {"proj", torch::kFloat32, {2}}}};
  Publish("two", kTwoInputsTuple, signature, {{"w", torch::randn({3, 2})}});
  std::unique_ptr<Session> session = Create("two");
  at::Tensor good = torch::randn({2, 3});
  struct Case {
    const char* what;
    std::vector<at::Tensor> inputs;
    std::vector<const char*> message;
  };
  const Case cases[] = {
      {"too few", {good}, {"expected 2 input(s) (a, b), got 1"}},
      {"too many", {good, good, good}, {"expected 2 input(s)", "got 3"}},
      {"dtype", {good, good.to(torch::kFloat64)}, {"input 'b'", "float32", "float64"}},
      {"rank", {good.reshape({6}), good}, {"input 'a'", "[batch, 3]", "[6]"}},
      {"fixed dim", {good, torch::randn({2, 4})}, {"input 'b'", "[batch, 3]", "[2, 4]"}},
      {"batch sizes", {good, torch::randn({5, 3})}, {"input 'b' has batch size 5", "'a' has 2"}},
      {"empty batch", {torch::randn({0, 3}), torch::randn({0, 3})}, {"batch of 0 items"}},
      {"undefined", {good, at::Tensor()}, {"input 'b' is an undefined tensor"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<at::Tensor>> out = session->Run(c.inputs);
    ASSERT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(Message(out.status()), HasSubstr("model 'two' version 1")) << c.what;
    for (const char* part : c.message) {
      EXPECT_THAT(Message(out.status()), HasSubstr(part)) << c.what;
    }
  }
  EXPECT_TRUE(session->Run({good, good}).ok());
}

TEST_F(SessionTest, WildcardDimensionsTakeAnySize) {
  ModelSignature signature{{{"ids", torch::kInt64, {kAnyDim}}}, {{"total", torch::kInt64, {1}}}};
  Publish("tokens",
          "def forward(self, ids: Tensor) -> Tensor:\n  return ids.sum(1, keepdim=True)\n",
          signature);
  std::unique_ptr<Session> session = Create("tokens");
  for (int64_t length : {1, 5, 300}) {
    at::Tensor ids = torch::ones({3, length}, torch::kInt64);
    absl::StatusOr<std::vector<at::Tensor>> out = session->Run({ids});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(torch::equal((*out)[0], torch::full({3, 1}, length, torch::kInt64)));
  }
}

TEST_F(SessionTest, NonBatchableModelTakesWholeShapes) {
  ModelSignature signature{{{"m", torch::kFloat32, {kAnyDim, 3}}},
                           {{"t", torch::kFloat32, {3, kAnyDim}}},
                           /*batchable=*/false};
  Publish("transpose", "def forward(self, m: Tensor) -> Tensor:\n  return m.t()\n", signature);
  std::unique_ptr<Session> session = Create("transpose");
  at::Tensor m = torch::randn({5, 3});
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({m});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(torch::equal((*out)[0], m.t()));
  EXPECT_EQ(session->Run({torch::randn({2, 5, 3})}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionTest, AThrowingModelBecomesAStatusAndTheSessionStaysUsable) {
  ModelSignature signature{{{"x", torch::kFloat32, {2}}}, {{"y", torch::kFloat32, {2}}}};
  Publish("picky", kThrowsOnNegative, signature);
  std::unique_ptr<Session> session = Create("picky");
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({-torch::ones({1, 2})});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(out.status()), HasSubstr("model 'picky' version 1 failed"));
  EXPECT_THAT(Message(out.status()), HasSubstr("AssertionError: negative input is not allowed\n"));
  EXPECT_THAT(Message(out.status()), ::testing::Not(HasSubstr("frame #")));  // no C++ backtrace
  out = session->Run({torch::ones({1, 2})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(torch::equal((*out)[0], torch::full({1, 2}, 2.0f)));
}

TEST_F(SessionTest, ADispatcherErrorKeepsItsCauseNotTheKernelList) {
  // LibTorch's "Could not run 'X' with arguments from the 'Y' backend" is followed by a hundred
  // lines of kernel registrations; the cause must come first, the list must go.
  ModelSignature signature{{{"x", torch::kFloat32, {2}}}, {{"y", torch::kFloat32, {2}}}};
  Publish("sparse",
          "def forward(self, x: Tensor) -> Tensor:\n  return torch.cumsum(x.to_sparse(), 0)\n",
          signature);
  SessionOptions no_warm_up;
  no_warm_up.warm_up = false;
  no_warm_up.optimization = GraphOptimization::kNone;
  std::unique_ptr<Session> session = Create("sparse", no_warm_up);
  ASSERT_NE(session, nullptr);
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({torch::ones({1, 2})});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(out.status()),
              HasSubstr("model 'sparse' version 1 failed: RuntimeError: Could not run "
                        "'aten::cumsum' with arguments from the 'SparseCPU' backend"));
  EXPECT_THAT(Message(out.status()), ::testing::Not(HasSubstr("registered at")));
  EXPECT_THAT(Message(out.status()), HasSubstr("Traceback of TorchScript"));
}

// Warns on every call: the output buffer is resized to the input's shape.
constexpr char kWarnsEveryCall[] = R"(
def forward(self, x: Tensor) -> Tensor:
  out = torch.ones([1])
  return torch.add(x, x, out=out)
)";

TEST_F(SessionTest, LibTorchWarningsAreLoggedOncePerSessionAndCountedNotPrinted) {
  struct Logged {
    std::mutex mu;
    std::vector<std::pair<LogSeverity, std::string>> messages;
  };
  auto logged = std::make_shared<Logged>();
  SetLogSink([logged](LogSeverity severity, std::string_view message) {
    std::lock_guard<std::mutex> lock(logged->mu);
    logged->messages.emplace_back(severity, std::string(message));
  });
  struct RestoreSink {
    ~RestoreSink() { SetLogSink(nullptr); }
  } restore;

  ModelSignature signature{{{"x", torch::kFloat32, {2}}}, {{"y", torch::kFloat32, {2}}}};
  Publish("warns", kWarnsEveryCall, signature);
  ::testing::internal::CaptureStderr();
  std::unique_ptr<Session> session = Create("warns");
  ASSERT_NE(session, nullptr);
  const int64_t after_create = session->torch_warnings();
  for (int64_t batch : {1, 2, 3, 2, 5}) {
    absl::StatusOr<std::vector<at::Tensor>> out = session->Run({torch::ones({batch, 2})});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(torch::equal((*out)[0], torch::full({batch, 2}, 2.0f)));
  }
  std::thread other([&] { ASSERT_TRUE(session->Run({torch::ones({4, 2})}).ok()); });
  other.join();
  // Through a Scheduler, on its worker threads too, and in the model's statistics.
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create();
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  std::shared_ptr<Session> shared = std::move(session);
  ASSERT_TRUE((*scheduler)->AddModel("warns", {shared}).ok());
  std::vector<std::future<InferenceResult>> pending;
  for (int i = 0; i < 8; ++i)
    pending.push_back((*scheduler)->Submit("warns", {torch::ones({3, 2})}));
  for (auto& result : pending) ASSERT_TRUE(result.get().ok());
  const std::string printed = ::testing::internal::GetCapturedStderr();

  EXPECT_THAT(printed, ::testing::Not(HasSubstr("resized")));
  EXPECT_GE(shared->torch_warnings(), after_create + 6 + 1);  // each run warned
  EXPECT_EQ((*scheduler)->Stats("warns")->torch_warnings, shared->torch_warnings());
  std::lock_guard<std::mutex> lock(logged->mu);
  ASSERT_EQ(logged->messages.size(), 1u);  // one warning site, however many runs and shapes
  EXPECT_EQ(logged->messages[0].first, LogSeverity::kWarning);
  EXPECT_THAT(logged->messages[0].second, HasSubstr("model 'warns' version 1 on cpu"));
  EXPECT_THAT(logged->messages[0].second,
              HasSubstr("An output with one or more elements was resized"));
}

TEST_F(SessionTest, OutputsThatContradictTheSignatureAreCaught) {
  // Declares 2 output features; returns 3.
  ModelSignature signature{{{"x", torch::kFloat32, {3}}}, {{"y", torch::kFloat32, {2}}}};
  Publish("liar", "def forward(self, x: Tensor) -> Tensor:\n  return x * 2.0\n", signature);
  absl::StatusOr<std::unique_ptr<Session>> refused = Session::Create(*store_, "liar");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(refused.status()), HasSubstr("warm-up failed"));
  EXPECT_THAT(Message(refused.status()), HasSubstr("output 'y'"));

  SessionOptions no_warm_up;
  no_warm_up.warm_up = false;
  std::unique_ptr<Session> session = Create("liar", no_warm_up);
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({torch::ones({4, 3})});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Message(out.status()), HasSubstr("expected shape [batch, 2], got [4, 3]"));

  // Wrong dtype, wrong count, wrong type, wrong batch.
  struct Case {
    const char* source;
    const char* message;
  };
  const Case cases[] = {
      {"def forward(self, x: Tensor) -> Tensor:\n  return x[:, :2].double()\n",
       "as float64; its signature declares float32"},
      {"def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:\n  return (x[:, :2], x)\n",
       "returned 2 value(s); its signature declares 1 (y)"},
      {"def forward(self, x: Tensor) -> Dict[str, Tensor]:\n  return {'z': x[:, :2]}\n",
       "without the output 'y'"},
      {"def forward(self, x: Tensor) -> int:\n  return 3\n", "returned a Int for output 'y'"},
      {"def forward(self, x: Tensor) -> Tensor:\n  return x[:1, :2]\n",
       "with 1 item(s) for a batch of 4"},
  };
  int i = 0;
  for (const Case& c : cases) {
    std::string name = "liar" + std::to_string(i++);
    Publish(name, c.source, signature);
    session = Create(name, no_warm_up);
    out = session->Run({torch::ones({4, 3})});
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal) << c.source;
    EXPECT_THAT(Message(out.status()), HasSubstr(c.message)) << c.source;
  }
}

TEST_F(SessionTest, CorruptOrTruncatedArtifactIsDataLoss) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file);
  absl::StatusOr<ModelInfo> info = store_->Publish("linear", file, testing::LinearSignature());
  ASSERT_TRUE(info.ok());
  std::string bytes = testing::ReadBytes(info->artifact_path);
  testing::MakeWritable(info->artifact_path);

  std::string flipped = bytes;
  flipped[flipped.size() / 3] ^= 0x40;
  testing::WriteBytes(info->artifact_path, flipped);
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, "linear");
  EXPECT_EQ(session.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(session.status()), HasSubstr(info->sha256));

  testing::WriteBytes(info->artifact_path, bytes.substr(0, bytes.size() - 10));
  session = Session::Create(*store_, "linear");
  EXPECT_EQ(session.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(session.status()), HasSubstr(std::to_string(bytes.size() - 10) + " bytes"));

  testing::WriteBytes(info->artifact_path, bytes);
  EXPECT_TRUE(Session::Create(*store_, "linear").ok());
}

TEST_F(SessionTest, LoadsTheRequestedVersionAndOutlivesTheStore) {
  for (int seed : {1, 2, 3}) {
    fs::path file = dir_.path() / ("v" + std::to_string(seed) + ".pt");
    testing::SaveLinearModel(file, 4, 2, seed);
    ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());
  }
  ASSERT_TRUE(store_->SetAlias("linear", "stable", 2).ok());
  SessionOptions options;
  EXPECT_EQ(Create("linear", options)->info().version, 3);
  options.version = "stable";
  EXPECT_EQ(Create("linear", options)->info().version, 2);
  options.version = "1";
  std::unique_ptr<Session> session = Create("linear", options);
  EXPECT_EQ(session->info().version, 1);
  EXPECT_EQ(session->info().name, "linear");
  EXPECT_TRUE(session->device().is_cpu());
  EXPECT_EQ(session->optimization(), GraphOptimization::kForInference);

  store_.reset();  // The session keeps what it needs.
  at::Tensor x = torch::ones({1, 4});
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectClose((*out)[0], DirectForward(dir_.path() / "v1.pt", {x}).toTensor(), "version 1");
}

TEST_F(SessionTest, RefusesBadOptionsAndUnknownModels) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file);
  ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());

  EXPECT_EQ(Session::Create(*store_, "nothing").status().code(), absl::StatusCode::kNotFound);
  SessionOptions options;
  options.version = "canary";
  EXPECT_EQ(Session::Create(*store_, "linear", options).status().code(),
            absl::StatusCode::kNotFound);

  for (int threads : {0, -1, 100000}) {
    SessionOptions bad;
    bad.intra_op_threads = threads;
    absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, "linear", bad);
    EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument) << threads;
    EXPECT_THAT(Message(session.status()), HasSubstr("intra_op_threads")) << threads;
  }
  // Enums cast from integers must name a real value.
  SessionOptions bad_enum;
  bad_enum.optimization = static_cast<GraphOptimization>(7);
  EXPECT_THAT(Message(Session::Create(*store_, "linear", bad_enum).status()),
              HasSubstr("optimization is 7"));
  bad_enum = SessionOptions{};
  bad_enum.precision = static_cast<Precision>(-1);
  EXPECT_THAT(Message(Session::Create(*store_, "linear", bad_enum).status()),
              HasSubstr("precision is -1"));
  SessionOptions meta;
  meta.device = c10::Device(c10::DeviceType::Meta);
  EXPECT_EQ(Session::Create(*store_, "linear", meta).status().code(),
            absl::StatusCode::kInvalidArgument);

  if (!torch::cuda::is_available()) {
    SessionOptions cuda;
    cuda.device = c10::Device(c10::DeviceType::CUDA, 0);
    absl::StatusOr<std::unique_ptr<Session>> session = Session::Create(*store_, "linear", cuda);
    EXPECT_EQ(session.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(Message(session.status()), HasSubstr("CUDA is not available"));
  }
}

TEST_F(SessionTest, RunUsesTheSessionsThreadCountOnEveryCallingThread) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file);
  ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());
  const int max_threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int threads : {1, max_threads}) {
    SessionOptions options;
    options.intra_op_threads = threads;
    std::unique_ptr<Session> session = Create("linear", options);
    int seen = -1;
    std::thread caller([&] {
      ASSERT_TRUE(session->Run({torch::ones({2, 4})}).ok());
      seen = at::get_num_threads();
    });
    caller.join();
    EXPECT_EQ(seen, threads);
  }
}

TEST_F(SessionTest, RunWithAThreadCountUsesItForThatCallOnly) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file, 4, 2, 7);
  ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());
  SessionOptions options;
  options.intra_op_threads = 1;
  std::unique_ptr<Session> session = Create("linear", options);
  const at::Tensor x = torch::full({3, 4}, 2.0f);
  const at::Tensor expected = DirectForward(file, {x}).toTensor();
  int wide = -1, own = -1;
  std::thread caller([&] {
    absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x}, 2);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(torch::allclose((*out)[0], expected));
    wide = at::get_num_threads();
    ASSERT_TRUE(session->Run({x}).ok());
    own = at::get_num_threads();
  });
  caller.join();
  EXPECT_EQ(wide, 2);
  EXPECT_EQ(own, 1);
  EXPECT_EQ(session->intra_op_threads(), 1);  // The session's own count is unchanged.
  for (int bad : {0, -3}) {
    absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x}, bad);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Message(out.status()), HasSubstr("intra_op_threads must be at least 1, got " +
                                                 std::to_string(bad)));
  }
  // Bad inputs are still refused as by Run.
  EXPECT_EQ(session->Run({torch::ones({3, 5})}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionTest, ConcurrentRunsEachGetTheirOwnResult) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file, 4, 2, 7);
  ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());
  std::unique_ptr<Session> session = Create("linear");
  constexpr int kThreads = 8;
  constexpr int kCalls = 50;
  // Inputs distinct per thread and call, with expected outputs from a direct forward.
  std::vector<std::vector<at::Tensor>> inputs(kThreads), expected(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int c = 0; c < kCalls; ++c) {
      at::Tensor x = torch::full({1 + (t + c) % 5, 4}, float(t * 1000 + c));
      inputs[t].push_back(x);
      expected[t].push_back(DirectForward(file, {x}).toTensor());
    }
  }
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        absl::StatusOr<std::vector<at::Tensor>> out = session->Run({inputs[t][c]});
        if (!out.ok()) {
          ++errors;
        } else if (!torch::allclose((*out)[0], expected[t][c], 1e-5, 1e-4)) {
          ++mismatches;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

// A two-layer MLP with an integer index buffer that reduced precision must leave alone:
// x float32 [64] -> y float32 [8].
constexpr char kMixedSource[] = R"(
def forward(self, x: Tensor) -> Tensor:
  h = torch.relu(torch.matmul(x, self.w1))
  return torch.matmul(h, self.w2) * self.scale[self.index]
)";

void PublishMixed(ModelStore& store, const fs::path& dir) {
  torch::jit::Module module("Mixed");
  torch::manual_seed(3);
  module.register_parameter("w1", torch::randn({64, 128}) * 0.1, false);
  module.register_parameter("w2", torch::randn({128, 8}) * 0.1, false);
  module.register_buffer("scale", torch::tensor({0.5f, 2.0f, 3.0f, 4.0f}));
  module.register_buffer("index", torch::tensor(int64_t{1}));
  module.define(kMixedSource);
  module.save((dir / "mixed.pt").string());
  ModelSignature signature{{{"x", torch::kFloat32, {64}}}, {{"y", torch::kFloat32, {8}}}};
  ASSERT_TRUE(store.Publish("mixed", dir / "mixed.pt", signature).ok());
}

// The largest difference between two sessions' outputs on `x`, relative to the largest output
// of `reference`; printed, so that the test log reports it.
double RelativeError(Session& reduced, Session& reference, const at::Tensor& x,
                     const std::string& what) {
  absl::StatusOr<std::vector<at::Tensor>> got = reduced.Run({x});
  absl::StatusOr<std::vector<at::Tensor>> want = reference.Run({x});
  EXPECT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(want.ok()) << want.status();
  if (!got.ok() || !want.ok()) return 1e9;
  const at::Tensor& a = (*got)[0];
  const at::Tensor& b = (*want)[0];
  EXPECT_EQ(a.scalar_type(), torch::kFloat32) << "outputs keep the signature's dtype";
  EXPECT_TRUE(a.device().is_cpu());
  const double error = ((a.cpu() - b.cpu()).abs().max() / b.abs().max()).item<double>();
  std::cout << what << ": largest error against float32, relative to the largest output: " << error
            << "\n";
  return error;
}

TEST_F(SessionTest, BFloat16ComputesCloseToFloat32AndKeepsTheSignaturesDtypes) {
  PublishMixed(*store_, dir_.path());
  std::unique_ptr<Session> full = Create("mixed");
  SessionOptions options;
  options.precision = Precision::kBFloat16;
  std::unique_ptr<Session> reduced = Create("mixed", options);
  ASSERT_NE(full, nullptr);
  ASSERT_NE(reduced, nullptr);
  EXPECT_EQ(reduced->precision(), Precision::kBFloat16);
  // Floating-point weights halve; the int64 index (8 bytes) stays, or indexing would fail.
  const int64_t floats = 64 * 128 + 128 * 8 + 4;
  EXPECT_EQ(full->memory_bytes(), floats * 4 + 8);
  EXPECT_EQ(reduced->memory_bytes(), floats * 2 + 8);
  torch::manual_seed(7);
  EXPECT_LT(RelativeError(*reduced, *full, torch::randn({16, 64}), "bfloat16 on the CPU"), 0.03);
  // Inputs of the signature's dtype only: a bfloat16 input is still refused.
  absl::StatusOr<std::vector<at::Tensor>> wrong =
      reduced->Run({torch::randn({1, 64}).to(torch::kBFloat16)});
  EXPECT_TRUE(absl::IsInvalidArgument(wrong.status())) << wrong.status();
}

TEST_F(SessionTest, Float16OnTheCpuRunsOrIsRefusedWithAReason) {
  PublishMixed(*store_, dir_.path());
  SessionOptions options;
  options.precision = Precision::kFloat16;
  absl::StatusOr<std::unique_ptr<Session>> reduced = Session::Create(*store_, "mixed", options);
  if (!reduced.ok()) {  // LibTorch 1.13 has no CPU float16 matmul.
    std::cout << "float16 on the CPU refused: " << reduced.status() << "\n";
    EXPECT_TRUE(absl::IsFailedPrecondition(reduced.status())) << reduced.status();
    EXPECT_THAT(Message(reduced.status()), HasSubstr("warm-up failed"));
    return;
  }
  std::unique_ptr<Session> full = Create("mixed");
  EXPECT_LT(RelativeError(**reduced, *full, torch::randn({16, 64}), "float16 on the CPU"), 0.01);
}

// ---------------------------------------------------------------------------------------------
// CUDA: run where a GPU is visible, skipped with the reason elsewhere.

class SessionCudaTest : public SessionTest {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch";
    SessionTest::SetUp();
  }
};

TEST_F(SessionCudaTest, RunsOnTheGpuAndReturnsHostTensors) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file, 4, 2, 5);
  ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());
  SessionOptions options;
  options.device = c10::Device(c10::DeviceType::CUDA, 0);
  std::unique_ptr<Session> session = Create("linear", options);
  ASSERT_NE(session, nullptr);
  EXPECT_TRUE(session->device().is_cuda());
  // The caching allocator grew by at least the weights (4x2 + 2 floats) while it loaded.
  EXPECT_GE(session->device_reserved_bytes(), session->memory_bytes());
  EXPECT_GT(session->memory_bytes(), 0);
  at::Tensor x = torch::randn({8, 4});
  absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].device().is_cpu());
  ExpectClose((*out)[0], DirectForward(file, {x}).toTensor(), "cuda vs cpu");

  options.keep_outputs_on_device = true;
  session = Create("linear", options);
  out = session->Run({x.to(options.device)});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].device().is_cuda());
}

TEST_F(SessionCudaTest, ConcurrentRunsOnTheGpu) {
  fs::path file = dir_.path() / "linear.pt";
  testing::SaveLinearModel(file, 4, 2, 9);
  ASSERT_TRUE(store_->Publish("linear", file, testing::LinearSignature()).ok());
  SessionOptions options;
  options.device = c10::Device(c10::DeviceType::CUDA, 0);
  std::unique_ptr<Session> session = Create("linear", options);
  ASSERT_NE(session, nullptr);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < 20; ++c) {
        at::Tensor x = torch::full({3, 4}, float(t * 100 + c));
        absl::StatusOr<std::vector<at::Tensor>> out = session->Run({x});
        if (!out.ok() ||
            !torch::allclose((*out)[0], DirectForward(file, {x}).toTensor(), 1e-4, 1e-3)) {
          ++bad;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(SessionCudaTest, ReducedPrecisionOnTheGpuStaysCloseToFloat32) {
  PublishMixed(*store_, dir_.path());
  std::unique_ptr<Session> full = Create("mixed");
  ASSERT_NE(full, nullptr);
  for (auto [precision, name, tolerance] :
       {std::make_tuple(Precision::kFloat16, "float16 on the GPU", 0.01),
        std::make_tuple(Precision::kBFloat16, "bfloat16 on the GPU", 0.03)}) {
    SessionOptions options;
    options.device = c10::Device(c10::DeviceType::CUDA, 0);
    options.precision = precision;
    std::unique_ptr<Session> reduced = Create("mixed", options);
    ASSERT_NE(reduced, nullptr) << name;
    torch::manual_seed(7);
    EXPECT_LT(RelativeError(*reduced, *full, torch::randn({16, 64}), name), tolerance);
  }
}

TEST_F(SessionCudaTest, AThrowingModelOnTheGpuFailsTheCallAndStaysUsable) {
  Publish("picky",
          "def forward(self, x: Tensor) -> Tensor:\n"
          "  assert bool(torch.all(x >= 0)), \"negative input\"\n"
          "  return x * 2.0\n",
          testing::LinearSignature(4, 4));
  SessionOptions options;
  options.device = c10::Device(c10::DeviceType::CUDA, 0);
  std::unique_ptr<Session> session = Create("picky", options);
  ASSERT_NE(session, nullptr);
  absl::StatusOr<std::vector<at::Tensor>> bad = session->Run({-torch::ones({2, 4})});
  EXPECT_TRUE(absl::IsInternal(bad.status())) << bad.status();
  EXPECT_THAT(Message(bad.status()), HasSubstr("negative input"));
  absl::StatusOr<std::vector<at::Tensor>> good = session->Run({torch::ones({2, 4})});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(torch::equal((*good)[0], torch::full({2, 4}, 2.0f)));
}

}  // namespace
}  // namespace maas
