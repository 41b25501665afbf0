// Tests of Server: deploying from the store, version policies and routing, swaps under load
// with zero failures, the watcher following another process, broken versions refused, states,
// unloading under load, memory given back, and the memory budget.
//
// The models are "tagged": each answers every row with its tag, which the tests set to the
// version number it gets, so an answer says which version gave it.
#include "maas/server.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>

#include "fmt/core.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "serving/lifecycle.h"
#include "serving/load_hook.h"
#include "maas/model_store.h"
#include "maas/scheduler.h"
#include "test_util.h"

namespace maas {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// The tag of the version that answered, checking that every row carries the same one; -1 for
// an error, -2 for rows that disagree.
float Tag(const InferenceResult& result) {
  if (!result.ok()) return -1;
  const at::Tensor& y = result->front();
  const float tag = y.flatten()[0].item<float>();
  return y.eq(tag).all().item<bool>() ? tag : -2;
}

at::Tensor Rows(int64_t n) { return torch::ones({n, 2}); }

// Waits, polling, until `done` holds or a minute passes (then fails the test).
template <typename Predicate>
bool Eventually(Predicate done) {
  const absl::Time give_up = absl::Now() + absl::Minutes(1);
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = std::move(*ModelStore::Open(root())); }

  fs::path root() const { return dir_.path() / "store"; }

  // Publishes the next version of `name`, tagged with its own number.
  int64_t PublishNext(const std::string& name) {
    absl::StatusOr<std::vector<int64_t>> versions = store_->Versions(name);
    const int64_t next = versions.ok() ? versions->back() + 1 : 1;
    fs::path file = dir_.path() / fmt::format("{}-{}.pt", name, next);
    testing::SaveTaggedModel(file, static_cast<float>(next));
    absl::StatusOr<ModelInfo> info = store_->Publish(name, file, testing::TaggedSignature());
    EXPECT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info.ok() ? info->version : -1, next);
    return next;
  }

  // Publishes a module from `source` (forward(x: [batch, 2]) -> [batch, 2]).
  int64_t PublishScript(const std::string& name, const std::string& source,
                        const std::vector<std::pair<std::string, at::Tensor>>& parameters = {}) {
    fs::path file = dir_.path() / (name + "-script.pt");
    testing::SaveScript(file, source, parameters);
    absl::StatusOr<ModelInfo> info = store_->Publish(name, file, testing::TaggedSignature());
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->version : -1;
  }

  // A model of about `megabytes` of weights that answers with `tag`.
  int64_t PublishHeavy(const std::string& name, float tag, int64_t megabytes) {
    const int64_t columns = megabytes * 1024 * 1024 / 4 / 2;
    return PublishScript(
        name, R"(
      def forward(self, x: Tensor) -> Tensor:
        h = torch.matmul(x, self.w)
        return x * 0.0 + self.tag + h.sum() * 0.0
    )",
        {{"w", torch::full({2, columns}, 0.001f)}, {"tag", torch::full({1}, tag)}});
  }

  std::unique_ptr<Server> NewServer(ServerOptions options = {}) {
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(root(), options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  static ServerRequestOptions Version(const std::string& version) {
    ServerRequestOptions options;
    options.version = version;
    return options;
  }

  testing::TempDir dir_;
  std::unique_ptr<ModelStore> store_;
};

const VersionStatus* FindVersion(const ModelStatus& status, int64_t version) {
  for (const VersionStatus& v : status.versions) {
    if (v.version == version) return &v;
  }
  return nullptr;
}

TEST_F(ServerTest, DeploysTheLatestVersionInOneLine) {
  PublishNext("m");
  PublishNext("m");
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m").ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(3)})), 2);
  EXPECT_EQ(Tag(server->Submit("m", {Rows(1)}).get()), 2);
  EXPECT_THAT(server->Models(), ElementsAre("m"));

  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->ready);
  EXPECT_EQ(status->policy, VersionPolicy::Latest());
  ASSERT_EQ(status->versions.size(), 1u);
  const VersionStatus& v = status->versions[0];
  EXPECT_EQ(v.version, 2);
  EXPECT_EQ(v.state, ModelState::kReady);
  EXPECT_EQ(ModelStateName(v.state), "ready");
  EXPECT_DOUBLE_EQ(v.traffic_share, 1.0);
  EXPECT_GT(v.memory_bytes, 0);
  EXPECT_EQ(v.device_reserved_bytes, 0) << "no device memory on the CPU";
  EXPECT_EQ(v.stats.succeeded, 2);
  EXPECT_TRUE(status->last_error.empty());
}

TEST_F(ServerTest, RequestsNameVersionsAliasesAndLatest) {
  for (int i = 0; i < 3; ++i) PublishNext("m");
  ASSERT_TRUE(store_->SetAlias("m", "stable", 2).ok());
  auto server = NewServer();
  DeployOptions options;
  options.policy = VersionPolicy::Latest(2);
  ASSERT_TRUE(server->Deploy("m", options).ok());

  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 3);
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)}, Version("2"))), 2);
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)}, Version("stable"))), 2);
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)}, Version("latest"))), 3);
  InferenceResult old = server->Infer("m", {Rows(1)}, Version("1"));
  EXPECT_TRUE(absl::IsNotFound(old.status())) << old.status();
  EXPECT_THAT(Message(old.status()), HasSubstr("does not serve version 1 (serving: 2, 3)"));
  InferenceResult alias = server->Infer("m", {Rows(1)}, Version("nope"));
  EXPECT_TRUE(absl::IsNotFound(alias.status())) << alias.status();
  EXPECT_THAT(Message(alias.status()), HasSubstr("no alias 'nope' (aliases: stable)"));
  EXPECT_TRUE(absl::IsInvalidArgument(server->Infer("m", {Rows(1)}, Version("-3")).status()));
  // What a request would reach, as routing resolves it (maasd's metadata asks this).
  EXPECT_EQ(*server->ResolveVersion("m", "latest"), 3);
  EXPECT_EQ(*server->ResolveVersion("m", "stable"), 2);
  EXPECT_EQ(*server->ResolveVersion("m", ""), 3);  // The split's largest share.
  EXPECT_THAT(Message(server->ResolveVersion("m", "1").status()),
              HasSubstr("does not serve version 1 (serving: 2, 3)"));
  EXPECT_TRUE(absl::IsNotFound(server->ResolveVersion("other", "1").status()));

  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 2u);
  EXPECT_THAT(status->versions[0].aliases, ElementsAre("stable"));
  EXPECT_DOUBLE_EQ(status->versions[0].traffic_share, 0.0);
  EXPECT_DOUBLE_EQ(status->versions[1].traffic_share, 1.0);
  // The three requests no version took are the model's refusals, not a version's failures;
  // ResolveVersion is a question, not a request.
  EXPECT_THAT(status->refused,
              ElementsAre(std::pair(absl::StatusCode::kInvalidArgument, int64_t{1}),
                          std::pair(absl::StatusCode::kNotFound, int64_t{2})));
  for (const VersionStatus& version : status->versions) {
    EXPECT_TRUE(version.stats.failures.empty()) << version.version;
  }
}

TEST_F(ServerTest, NamedInputsFollowTheSignatureOfTheVersionThatServes) {
  // Version 1 takes (a, b), version 2 (b, a); both compute a - 2b. A client naming its inputs
  // gets the same answer from either, whatever order it sends them in.
  const std::string source =
      "def forward(self, first: Tensor, second: Tensor) -> Tensor:\n"
      "  return {}\n";
  const auto publish = [&](const std::string& formula, const std::vector<std::string>& names) {
    fs::path file = dir_.path() / fmt::format("pair-{}.pt", names.front());
    testing::SaveScript(file, fmt::format(fmt::runtime(source), formula));
    ModelSignature signature{{{names[0], torch::kFloat32, {2}}, {names[1], torch::kFloat32, {2}}},
                             {{"y", torch::kFloat32, {2}}}};
    ASSERT_TRUE(store_->Publish("pair", file, signature).ok());
  };
  publish("first - 2.0 * second", {"a", "b"});
  publish("second - 2.0 * first", {"b", "a"});
  std::unique_ptr<Server> server = NewServer();
  DeployOptions options;
  options.policy = VersionPolicy::Specific({"1", "2"});
  ASSERT_TRUE(server->Deploy("pair", options).ok());
  const at::Tensor a = torch::full({1, 2}, 5.0f), b = torch::full({1, 2}, 1.0f);
  for (const std::string version : {"1", "2"}) {
    ServerRequestOptions named = Version(version);
    named.input_names = {"b", "a"};
    InferenceResult result = server->Infer("pair", {b, a}, named);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_TRUE(torch::equal(result->front(), torch::full({1, 2}, 3.0f))) << version;
    std::future<InferenceResult> submitted = server->Submit("pair", {b, a}, named);
    ASSERT_TRUE(torch::equal(submitted.get()->front(), torch::full({1, 2}, 3.0f))) << version;
  }
  ServerRequestOptions wrong = Version("2");
  wrong.input_names = {"a", "c"};
  InferenceResult refused = server->Infer("pair", {a, b}, wrong);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(refused.status()),
              HasSubstr("model 'pair' version 2: no input is named 'c'; its inputs are b, a"));
  wrong.input_names = {"a", "a"};
  EXPECT_THAT(Message(server->Infer("pair", {a, b}, wrong).status()),
              HasSubstr("input 'a' is given twice"));
  wrong.input_names = {"a"};
  EXPECT_THAT(Message(server->Infer("pair", {a}, wrong).status()),
              HasSubstr("input 'b' is missing"));
  absl::StatusOr<ModelStatus> status = server->Describe("pair");
  ASSERT_TRUE(status.ok());
  EXPECT_THAT(status->refused,
              ElementsAre(std::pair(absl::StatusCode::kInvalidArgument, int64_t{3})));
}

TEST_F(ServerTest, FollowsAnAliasAndRollsBackWhenItMovesBack) {
  PublishNext("m");
  PublishNext("m");
  ASSERT_TRUE(store_->SetAlias("m", "stable", 1).ok());
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m", {VersionPolicy::Specific({"stable"})}).ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);

  ASSERT_TRUE(store_->SetAlias("m", "stable", 2).ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);  // Not before the server looks.
  ASSERT_TRUE(server->Refresh().ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 2);
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 1u) << "version 1 is unloaded after the swap";
  EXPECT_EQ(status->versions[0].version, 2);

  ASSERT_TRUE(store_->SetAlias("m", "stable", 1).ok());  // Roll back.
  ASSERT_TRUE(server->Refresh().ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
}

TEST_F(ServerTest, SpecificVersionsServeTogetherAndTheFirstTakesUnnamedRequests) {
  for (int i = 0; i < 3; ++i) PublishNext("m");
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m", {VersionPolicy::Specific({"3", "1"})}).ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 3);
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)}, Version("1"))), 1);
  EXPECT_TRUE(absl::IsNotFound(server->Infer("m", {Rows(1)}, Version("2")).status()));
}

TEST_F(ServerTest, CanarySplitsUnnamedTrafficWithinTolerance) {
  for (int i = 0; i < 3; ++i) PublishNext("m");
  ASSERT_TRUE(store_->SetAlias("m", "stable", 1).ok());
  ASSERT_TRUE(store_->SetAlias("m", "canary", 2).ok());
  // The same seed sends the same sequence of requests to the same versions; a canary test is
  // reproducible.
  ServerOptions seeded;
  seeded.random_seed = 42;
  auto server = NewServer(seeded);
  auto twin = NewServer(seeded);
  for (Server* s : {server.get(), twin.get()}) {
    ASSERT_TRUE(s->Deploy("m", {VersionPolicy::Canary("stable", "canary", 20)}).ok());
  }

  constexpr int kRequests = 4000;
  int canary = 0;
  std::string sequence, twin_sequence;
  for (int i = 0; i < kRequests; ++i) {
    const float tag = Tag(server->Infer("m", {Rows(1)}));
    ASSERT_TRUE(tag == 1 || tag == 2) << tag;
    canary += tag == 2;
    sequence += tag == 2 ? 'c' : 's';
    twin_sequence += Tag(twin->Infer("m", {Rows(1)})) == 2 ? 'c' : 's';
  }
  EXPECT_EQ(sequence, twin_sequence);
  // 20% of 4000: the standard deviation is 25 requests; 3 points is about 5 of them.
  EXPECT_NEAR(static_cast<double>(canary) / kRequests, 0.20, 0.03) << canary;
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)}, Version("canary"))), 2);
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  EXPECT_NEAR(FindVersion(*status, 1)->traffic_share, 0.8, 1e-9);
  EXPECT_NEAR(FindVersion(*status, 2)->traffic_share, 0.2, 1e-9);

  // Every answer can say which version gave it (what a network front end reports): for
  // unnamed canary traffic and for a named alias.
  constexpr int kServed = 200;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0, mismatched = 0;
  std::set<int64_t> versions_seen;
  for (int i = 0; i < kServed; ++i) {
    ServerRequestOptions options;
    if (i % 10 == 0) options.version = "canary";
    ASSERT_TRUE(server
                    ->Submit("m", {Rows(1)}, options,
                             [&](InferenceResult result, int64_t version) {
                               std::lock_guard<std::mutex> lock(mu);
                               mismatched += Tag(result) != static_cast<float>(version);
                               versions_seen.insert(version);
                               ++answered;
                               cv.notify_all();
                             })
                    .ok());
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return answered == kServed; });
  }
  EXPECT_EQ(mismatched, 0);
  EXPECT_EQ(versions_seen, (std::set<int64_t>{1, 2}));
  bool called = false;
  absl::Status bad = server->Submit("m", {torch::ones({1, 3})}, ServerRequestOptions{},
                                    [&](InferenceResult, int64_t) { called = true; });
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  EXPECT_FALSE(called) << "a request refused at Submit is not answered through its callback";

  // Moving the canary alias moves the canary.
  ASSERT_TRUE(store_->SetAlias("m", "canary", 3).ok());
  ASSERT_TRUE(server->Refresh().ok());
  status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(FindVersion(*status, 2), nullptr);
  EXPECT_NEAR(FindVersion(*status, 3)->traffic_share, 0.2, 1e-9);
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)}, Version("canary"))), 3);
}

constexpr char kThrowingModel[] = R"(
  def forward(self, x: Tensor) -> Tensor:
    assert x.size(0) == 0, "broken on purpose"
    return x
)";

TEST_F(ServerTest, BrokenVersionsAreRefusedAndTheOldOneKeepsServing) {
  PublishNext("m");
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m").ok());

  // Version 2 fails its warm-up.
  ASSERT_EQ(PublishScript("m", kThrowingModel), 2);
  absl::Status refreshed = server->Refresh();
  EXPECT_FALSE(refreshed.ok());
  EXPECT_THAT(Message(refreshed), HasSubstr("broken on purpose"));
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_NE(FindVersion(*status, 2), nullptr);
  EXPECT_EQ(FindVersion(*status, 2)->state, ModelState::kFailed);
  EXPECT_THAT(FindVersion(*status, 2)->reason, HasSubstr("warm-up failed"));
  EXPECT_THAT(status->last_error, HasSubstr("broken on purpose"));
  // It is not tried again on every refresh.
  EXPECT_THAT(Message(server->Refresh()), HasSubstr("failed to load earlier"));

  // Version 3's artifact is damaged after publishing: its hash no longer matches.
  ASSERT_EQ(PublishNext("m"), 3);
  absl::StatusOr<ModelInfo> v3 = store_->Get("m", "3");
  ASSERT_TRUE(v3.ok());
  testing::MakeWritable(v3->artifact_path);
  std::string bytes = testing::ReadBytes(v3->artifact_path);
  bytes[bytes.size() / 2] ^= 0x5a;
  testing::WriteBytes(v3->artifact_path, bytes);
  refreshed = server->Refresh();
  EXPECT_TRUE(absl::IsDataLoss(refreshed)) << refreshed;
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
  status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(FindVersion(*status, 3)->state, ModelState::kFailed);
  EXPECT_THAT(FindVersion(*status, 3)->reason, HasSubstr("SHA-256"));

  // A good version 4 replaces version 1; the failures the policy no longer names are dropped.
  ASSERT_EQ(PublishNext("m"), 4);
  EXPECT_TRUE(server->Refresh().ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 4);
  status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 1u);
  EXPECT_EQ(status->versions[0].version, 4);
  EXPECT_TRUE(status->last_error.empty());
}

TEST_F(ServerTest, AFirstDeployThatFailsStaysVisibleAndRecovers) {
  PublishScript("m", kThrowingModel);
  auto server = NewServer();
  absl::Status deployed = server->Deploy("m");
  EXPECT_TRUE(absl::IsFailedPrecondition(deployed)) << deployed;
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  EXPECT_FALSE(status->ready);
  ASSERT_EQ(status->versions.size(), 1u);
  EXPECT_EQ(status->versions[0].state, ModelState::kFailed);
  InferenceResult result = server->Infer("m", {Rows(1)});
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  EXPECT_THAT(Message(result.status()), HasSubstr("no ready version"));

  ASSERT_EQ(PublishNext("m"), 2);
  EXPECT_TRUE(server->Refresh().ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 2);
}

TEST_F(ServerTest, TheWatcherFollowsPublishesAndAliasMovesOfAnotherProcess) {
  PublishNext("m");
  ASSERT_TRUE(store_->SetAlias("m", "stable", 1).ok());
  PublishNext("n");
  ServerOptions options;
  options.watch_interval = absl::Milliseconds(20);
  auto server = NewServer(options);
  ASSERT_TRUE(server->Deploy("m", {VersionPolicy::Specific({"stable"})}).ok());
  ASSERT_TRUE(server->Deploy("n").ok());

  // Another process publishes version 2 of m and points "stable" at it.
  testing::ChildResult child =
      testing::RunChild({"publish-tagged", root().string(), "m", "2", "stable"});
  ASSERT_EQ(child.exit_code, 0) << child.output;
  EXPECT_TRUE(Eventually([&] { return Tag(server->Infer("m", {Rows(1)})) == 2; }));

  // ... publishes version 2 of n (followed as "latest") ...
  child = testing::RunChild({"publish-tagged", root().string(), "n", "2"});
  ASSERT_EQ(child.exit_code, 0) << child.output;
  EXPECT_TRUE(Eventually([&] { return Tag(server->Infer("n", {Rows(1)})) == 2; }));

  // ... and rolls m back by moving the alias.
  child = testing::RunChild({"set-alias", root().string(), "m", "stable", "1"});
  ASSERT_EQ(child.exit_code, 0) << child.output;
  EXPECT_TRUE(Eventually([&] { return Tag(server->Infer("m", {Rows(1)})) == 1; }));
}

TEST_F(ServerTest, DeployingAgainWithOtherOptionsSwapsThem) {
  PublishNext("m");
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m").ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
  DeployOptions options;
  options.instances_per_device = 2;
  options.batching.max_batch_size = 8;
  ASSERT_TRUE(server->Deploy("m", options).ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(8)})), 1);
  InferenceResult too_big = server->Infer("m", {Rows(9)});
  EXPECT_TRUE(absl::IsInvalidArgument(too_big.status())) << too_big.status();
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 1u);
  EXPECT_EQ(status->versions[0].stats.batch_size_histogram.size(), 9u);
}

// Removes the version about to load, once: a publisher's Remove racing a load.
std::string* g_remove_from_root = nullptr;
void RemoveTheVersionAboutToLoad(std::string_view model, int64_t version) {
  if (g_remove_from_root == nullptr) return;
  auto store = ModelStore::Open(*g_remove_from_root);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->Remove(std::string(model), version).ok());
  g_remove_from_root = nullptr;
}

TEST_F(ServerTest, ALatestVersionRemovedWhileItLoadsIsResolvedAgain) {
  PublishNext("m");
  PublishNext("m");
  auto server = NewServer();
  std::string root_path = root().string();
  g_remove_from_root = &root_path;
  internal::SetLoadHookForTesting(&RemoveTheVersionAboutToLoad);
  absl::Status deployed = server->Deploy("m");  // "latest" is 2 when resolved, gone at load.
  internal::SetLoadHookForTesting(nullptr);
  EXPECT_EQ(g_remove_from_root, nullptr) << "the hook ran: version 2 was removed as it loaded";
  EXPECT_TRUE(deployed.ok()) << deployed;
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 1u) << "version 2 is not left behind as failed";
  EXPECT_EQ(status->versions[0].version, 1);
}

TEST_F(ServerTest, CreateRefusesBadOptions) {
  auto refused = [&](ServerOptions options, const char* why) {
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(root(), options);
    EXPECT_TRUE(absl::IsInvalidArgument(server.status())) << why;
    EXPECT_THAT(Message(server.status()), HasSubstr(why));
  };
  ServerOptions options;
  options.cpu_cores = -1;
  refused(options, "cpu_cores");
  options = ServerOptions{};
  options.watch_interval = -absl::Seconds(1);
  refused(options, "watch_interval");
  // An infinite interval would be a watcher that never looks: refused, not silently off.
  options.watch_interval = absl::InfiniteDuration();
  refused(options, "watch_interval");
  options = ServerOptions{};
  options.memory_budget_bytes = -1;
  refused(options, "memory_budget_bytes");
  EXPECT_TRUE(absl::IsNotFound(Server::Create(root() / "absent").status()));
}

TEST_F(ServerTest, RefusesBadCallsWithClearErrors) {
  PublishNext("m");
  auto server = NewServer();
  EXPECT_TRUE(absl::IsInvalidArgument(server->Deploy("../m")));
  absl::Status missing = server->Deploy("nope");
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_TRUE(server->Models().empty()) << "a failed lookup deploys nothing";
  EXPECT_TRUE(absl::IsInvalidArgument(server->Deploy("m", {VersionPolicy::Latest(0)})));
  absl::Status canary = server->Deploy("m", {VersionPolicy::Canary("1", "1", 150)});
  EXPECT_TRUE(absl::IsInvalidArgument(canary));
  EXPECT_THAT(Message(canary), HasSubstr("canary_percent is 150"));
  EXPECT_TRUE(absl::IsInvalidArgument(server->Deploy("m", {VersionPolicy::Specific({})})));
  absl::Status alias = server->Deploy("m", {VersionPolicy::Specific({"nope"})});
  EXPECT_TRUE(absl::IsNotFound(alias)) << alias;
  // A first Deploy whose policy does not resolve leaves nothing behind: no deployment stuck
  // "loading", and a corrected Deploy works.
  EXPECT_TRUE(absl::IsNotFound(server->Deploy("m", {VersionPolicy::Specific({"7"})})));
  EXPECT_TRUE(server->Models().empty());
  EXPECT_TRUE(absl::IsNotFound(server->Infer("m", {Rows(1)}).status()));
  DeployOptions options;
  options.devices.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(server->Deploy("m", options)));
  options = DeployOptions{};
  options.batching.max_batch_size = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(server->Deploy("m", options)));

  EXPECT_TRUE(absl::IsNotFound(server->Infer("x", {Rows(1)}).status()));
  EXPECT_TRUE(absl::IsNotFound(server->Undeploy("x")));
  EXPECT_TRUE(absl::IsNotFound(server->Describe("x").status()));
  ASSERT_TRUE(server->Deploy("m").ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
  EXPECT_TRUE(absl::IsInvalidArgument(server->Submit("m", {Rows(1)}, {}, InferenceCallback())));
  InferenceResult bad = server->Infer("m", {torch::ones({1, 3})});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_THAT(Message(bad.status()), HasSubstr("version 1"));

  // From a completion callback, lifecycle calls would wait on their own thread.
  std::promise<absl::Status> from_callback;
  ASSERT_TRUE(server
                  ->Submit("m", {Rows(1)}, {},
                           [&](InferenceResult) { from_callback.set_value(server->Refresh()); })
                  .ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(from_callback.get_future().get()));

  EXPECT_TRUE(server->Undeploy("m").ok());
  EXPECT_TRUE(absl::IsNotFound(server->Infer("m", {Rows(1)}).status()));
  EXPECT_TRUE(server->Models().empty());
}

int ThreadNice() { return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))); }

TEST_F(ServerTest, WorkersKeepTheApplicationsPriorityWhileLoadsRunNicer) {
  PublishNext("m");
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m").ok());
  ASSERT_TRUE(server->Deploy("m", {VersionPolicy::Latest(1)}).ok());  // Started by a swap too.
  std::promise<int> worker_nice;
  ASSERT_TRUE(server
                  ->Submit("m", {Rows(1)}, {},
                           [&](InferenceResult) { worker_nice.set_value(ThreadNice()); })
                  .ok());
  EXPECT_EQ(worker_nice.get_future().get(), ThreadNice());

  int load_nice = -100;
  internal::RunNiced([&] { load_nice = ThreadNice(); });
  EXPECT_EQ(load_nice, std::min(ThreadNice() + internal::kLoadNiceIncrement, 19));
}

// Whether `Front` accepts a request naming a version: a Server does; a Scheduler, which serves
// exactly the sessions it was given, refuses it at compile time (not at run time, and never by
// silently dropping the version).
template <typename Front, typename = void>
struct AcceptsVersionedRequests : std::false_type {};
template <typename Front>
struct AcceptsVersionedRequests<
    Front, std::void_t<decltype(std::declval<Front&>().Infer(
               "m", std::vector<at::Tensor>{}, std::declval<const ServerRequestOptions&>()))>>
    : std::true_type {};

TEST_F(ServerTest, OnlyAServerTakesRequestsThatNameAVersion) {
  static_assert(AcceptsVersionedRequests<Server>::value);
  static_assert(!AcceptsVersionedRequests<Scheduler>::value);
  // Plain options work with both.
  PublishNext("m");
  auto session = Session::Create(*store_, "m");
  ASSERT_TRUE(session.ok());
  auto scheduler = Scheduler::Create();
  ASSERT_TRUE(scheduler.ok());
  ASSERT_TRUE((*scheduler)->AddModel("m", {std::move(*session)}).ok());
  EXPECT_EQ(Tag((*scheduler)->Infer("m", {Rows(1)}, RequestOptions{})), 1);
}

TEST_F(ServerTest, UnloadingGivesMemoryBackOver200LoadsAndUnloads) {
  PublishHeavy("big", 1, /*megabytes=*/8);
  auto server = NewServer();
  auto cycle = [&] {
    ASSERT_TRUE(server->Deploy("big").ok());
    ASSERT_EQ(Tag(server->Infer("big", {Rows(2)})), 1);
    ASSERT_TRUE(server->Undeploy("big").ok());
  };
  for (int i = 0; i < 20; ++i) cycle();  // Allocator pools and LibTorch's caches settle.
  const int64_t before = ResidentBytes();
  for (int i = 0; i < 200; ++i) cycle();
  const int64_t growth = ResidentBytes() - before;
  std::cout << "resident memory after 200 more loads of an 8 MiB model: " << growth / 1024 / 1024.0
            << " MiB more\n";
  // Keeping one copy per load would add 1.6 GB; allow two copies' worth of noise.
  EXPECT_LT(growth, 16 << 20);
}

TEST_F(ServerTest, TheMemoryBudgetUnloadsTheLeastRecentlyUsedIdleModel) {
  for (const char* name : {"a", "b", "c"}) PublishHeavy(name, 1, /*megabytes=*/4);
  ServerOptions options;
  options.memory_budget_bytes = 10 << 20;  // Two of the three.
  auto server = NewServer(options);
  ASSERT_TRUE(server->Deploy("a").ok());
  ASSERT_TRUE(server->Deploy("b").ok());
  EXPECT_EQ(Tag(server->Infer("a", {Rows(1)})), 1);  // b is now the least recently used.

  ASSERT_TRUE(server->Deploy("c").ok());
  absl::StatusOr<ModelStatus> b = server->Describe("b");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->ready) << "an unloaded model loads again on demand";
  ASSERT_EQ(b->versions.size(), 1u);
  EXPECT_EQ(b->versions[0].state, ModelState::kUnloaded);
  EXPECT_THAT(b->versions[0].reason, HasSubstr("make room for model 'c'"));
  EXPECT_EQ(b->versions[0].memory_bytes, 0);

  // A request for b loads it again (unloading a, now the least recently used) and is answered.
  EXPECT_EQ(Tag(server->Submit("b", {Rows(2)}).get()), 1);
  EXPECT_EQ(server->Describe("b")->versions[0].state, ModelState::kReady);
  EXPECT_EQ(server->Describe("a")->versions[0].state, ModelState::kUnloaded);
  EXPECT_EQ(server->Describe("c")->versions[0].state, ModelState::kReady);
  EXPECT_EQ(Tag(server->Infer("a", {Rows(1)})), 1);

  // A model that cannot fit at all is refused, and nothing is unloaded for it.
  PublishHeavy("huge", 1, /*megabytes=*/12);
  absl::Status huge = server->Deploy("huge");
  EXPECT_TRUE(absl::IsResourceExhausted(huge)) << huge;
  EXPECT_THAT(Message(huge), HasSubstr("memory budget"));
  EXPECT_EQ(server->Describe("a")->versions[0].state, ModelState::kReady);
  EXPECT_EQ(server->Describe("c")->versions[0].state, ModelState::kUnloaded);
  EXPECT_EQ(server->Describe("b")->versions[0].state, ModelState::kReady);
}

TEST_F(ServerTest, TheMemoryBudgetCountsEveryVersionOfOneLoad) {
  PublishHeavy("m", 1, /*megabytes=*/4);
  PublishHeavy("m", 2, /*megabytes=*/4);
  ServerOptions options;
  options.memory_budget_bytes = 6 << 20;  // One version, not two.
  auto server = NewServer(options);
  absl::Status deployed = server->Deploy("m", {VersionPolicy::Latest(2)});
  EXPECT_TRUE(absl::IsResourceExhausted(deployed)) << deployed;
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  int64_t loaded = 0;
  for (const VersionStatus& v : status->versions) loaded += v.memory_bytes;
  EXPECT_LE(loaded, options.memory_budget_bytes);
  EXPECT_EQ(FindVersion(*status, 1)->state, ModelState::kReady);
  EXPECT_EQ(FindVersion(*status, 2)->state, ModelState::kFailed);
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1) << "the version that fits serves";
}

TEST_F(ServerTest, AModelUnloadedForMemoryComesBackAsItServedDespiteABrokenVersion) {
  PublishHeavy("a", 1, /*megabytes=*/4);
  ASSERT_EQ(PublishScript("a", kThrowingModel), 2);
  ASSERT_TRUE(store_->SetAlias("a", "stable", 1).ok());
  ASSERT_TRUE(store_->SetAlias("a", "canary", 2).ok());
  PublishHeavy("b", 1, /*megabytes=*/4);
  PublishHeavy("c", 1, /*megabytes=*/4);
  ServerOptions options;
  options.memory_budget_bytes = 10 << 20;
  auto server = NewServer(options);
  // The canary fails to load; the stable version serves all unnamed requests.
  EXPECT_FALSE(server->Deploy("a", {VersionPolicy::Canary("stable", "canary", 50)}).ok());
  ASSERT_TRUE(server->Deploy("b").ok());
  EXPECT_EQ(Tag(server->Infer("b", {Rows(1)})), 1);
  ASSERT_TRUE(server->Deploy("c").ok());  // Unloads a, the least recently used.
  ASSERT_EQ(FindVersion(*server->Describe("a"), 1)->state, ModelState::kUnloaded);

  // Its next requests load version 1 again and are answered, whatever version 2 does.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Tag(server->Infer("a", {Rows(1)})), 1);
  EXPECT_EQ(FindVersion(*server->Describe("a"), 1)->state, ModelState::kReady);
}

TEST_F(ServerTest, ARedeployThatCannotLoadKeepsServingWithThePreviousOptions) {
  PublishNext("m");
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m").ok());
  DeployOptions options;
  options.session.intra_op_threads = 100000;  // Session::Create refuses it.
  absl::Status redeploy = server->Deploy("m", options);
  EXPECT_TRUE(absl::IsInvalidArgument(redeploy)) << redeploy;
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 1u);
  EXPECT_EQ(status->versions[0].state, ModelState::kReady);
  EXPECT_THAT(status->versions[0].reason, HasSubstr("previous options"));
  EXPECT_THAT(Message(server->Refresh()), HasSubstr("previous options"));
  // Deploying again with options that load clears it.
  ASSERT_TRUE(server->Deploy("m").ok());
  EXPECT_TRUE(server->Describe("m")->versions[0].reason.empty());
}

TEST_F(ServerTest, ARedeployWhosePolicyDoesNotResolveChangesNothing) {
  PublishNext("m");
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("m").ok());
  absl::Status redeploy = server->Deploy("m", {VersionPolicy::Specific({"nope"})});
  EXPECT_TRUE(absl::IsNotFound(redeploy)) << redeploy;
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->policy, VersionPolicy::Latest());
  EXPECT_TRUE(server->Refresh().ok());
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 1);
}

// --- CUDA: run where a GPU is visible, skipped with the reason elsewhere ---------------------

TEST_F(ServerTest, CudaInstancesEachAnswerTheirOwnRowsUnderConcurrency) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch";
  PublishScript("double", R"(
    def forward(self, x: Tensor) -> Tensor:
      return x * 2.0 + 1.0
  )");
  auto server = NewServer();
  DeployOptions options;
  options.devices = {c10::Device(c10::DeviceType::CUDA, 0)};
  options.instances_per_device = 2;
  options.batching.max_batch_size = 64;
  ASSERT_TRUE(server->Deploy("double", options).ok());

  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      std::vector<std::pair<at::Tensor, std::future<InferenceResult>>> pending;
      for (int i = 0; i < 50; ++i) {
        at::Tensor x = torch::full({1 + i % 3, 2}, static_cast<float>(c * 1000 + i));
        pending.emplace_back(x, server->Submit("double", {x}));
      }
      for (auto& [x, future] : pending) {
        InferenceResult y = future.get();
        if (!y.ok() || !y->front().is_cpu() || !torch::equal(y->front(), x * 2.0 + 1.0)) ++wrong;
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(wrong.load(), 0);
  absl::StatusOr<ModelStatus> status = server->Describe("double");
  ASSERT_TRUE(status.ok());
  EXPECT_GT(status->versions[0].stats.batches, 0);
  // GPU memory per version: the weights and what the caching allocator reserved for them.
  EXPECT_GT(status->versions[0].memory_bytes, 0);
  EXPECT_GE(status->versions[0].device_reserved_bytes, status->versions[0].memory_bytes);
}

// --- Concurrent (also run under ThreadSanitizer) --------------------------------------------

TEST_F(ServerTest, ConcurrentSwapsUnderLoadFailNoRequestAndMixNoVersions) {
  PublishNext("m");
  auto server = NewServer();
  DeployOptions options;
  options.instances_per_device = 2;
  ASSERT_TRUE(server->Deploy("m", options).ok());

  constexpr int kClients = 6;
  std::atomic<bool> stop{false};
  std::atomic<int> answers{0}, failures{0}, went_back{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      float newest = 0;
      for (int i = 0; !stop.load(); ++i) {
        const int64_t rows = 1 + (i + c) % 3;
        InferenceResult result = (i % 2 == 0) ? server->Infer("m", {Rows(rows)})
                                              : server->Submit("m", {Rows(rows)}).get();
        const float tag = Tag(result);
        if (tag < 1 || result->front().size(0) != rows) {
          ++failures;
          ADD_FAILURE() << "answer " << tag << ": " << result.status();
          continue;
        }
        // Traffic switches at once: after seeing a version, a client never sees an older one.
        if (tag < newest) ++went_back;
        newest = std::max(newest, tag);
        ++answers;
      }
    });
  }
  // Five publishes swapped in, and one redeploy with other options.
  for (int v = 2; v <= 6; ++v) {
    ASSERT_EQ(PublishNext("m"), v);
    ASSERT_TRUE(server->Refresh().ok());
    ASSERT_TRUE(Eventually([&] { return answers.load() > 20 * v; }));
  }
  options.instances_per_device = 1;
  ASSERT_TRUE(server->Deploy("m", options).ok());
  const int before = answers.load();
  ASSERT_TRUE(Eventually([&] { return answers.load() > before + 20; }));
  stop = true;
  for (std::thread& client : clients) client.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(went_back.load(), 0);
  EXPECT_EQ(Tag(server->Infer("m", {Rows(1)})), 6);
  absl::StatusOr<ModelStatus> status = server->Describe("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 1u);
  EXPECT_TRUE(status->versions[0].stats.failures.empty());
}

TEST_F(ServerTest, ConcurrentDescribeSeesAVersionLoadingThenReady) {
  PublishHeavy("big", 1, /*megabytes=*/32);  // Slow enough to load that a poller sees it.
  auto server = NewServer();
  std::atomic<bool> deployed{false}, saw_loading{false};
  std::thread poller([&] {
    while (!deployed.load()) {
      absl::StatusOr<ModelStatus> status = server->Describe("big");
      if (status.ok() && !status->versions.empty() &&
          status->versions[0].state == ModelState::kLoading) {
        saw_loading = true;
        EXPECT_FALSE(status->ready);
        EXPECT_EQ(ModelStateName(status->versions[0].state), "loading");
      }
    }
  });
  EXPECT_TRUE(server->Deploy("big").ok());
  deployed = true;
  poller.join();
  EXPECT_TRUE(saw_loading.load());
  EXPECT_EQ(server->Describe("big")->versions[0].state, ModelState::kReady);
}

TEST_F(ServerTest, ConcurrentUndeployFinishesTheRequestsItAccepted) {
  // Slow enough that requests pile up behind one instance.
  PublishScript("slow", R"(
    def forward(self, x: Tensor) -> Tensor:
      h = torch.matmul(x, self.w1)
      for i in range(40):
        h = torch.tanh(torch.matmul(h, self.w2))
      return x * 0.0 + 1.0 + h.sum() * 0.0
  )",
                {{"w1", torch::full({2, 128}, 0.01f)}, {"w2", torch::full({128, 128}, 0.01f)}});
  auto server = NewServer();
  ASSERT_TRUE(server->Deploy("slow").ok());
  std::vector<std::future<InferenceResult>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(server->Submit("slow", {Rows(1)}));
  std::thread late([&] {
    // Requests racing with Undeploy are either answered or refused with NotFound.
    for (int i = 0; i < 200; ++i) {
      InferenceResult result = server->Submit("slow", {Rows(1)}).get();
      if (!result.ok()) {
        EXPECT_TRUE(absl::IsNotFound(result.status())) << result.status();
      } else {
        EXPECT_EQ(Tag(result), 1);
      }
    }
  });
  ASSERT_TRUE(server->Undeploy("slow").ok());
  for (auto& future : futures) EXPECT_EQ(Tag(future.get()), 1);
  late.join();
  EXPECT_TRUE(absl::IsNotFound(server->Infer("slow", {Rows(1)}).status()));
}

}  // namespace
}  // namespace maas
