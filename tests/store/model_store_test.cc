// Tests of ModelStore: publishing, reading, aliases, removal, verification, bad input, corrupt
// stores, links, and concurrency between threads and processes, including a killed publisher.
#include "maas/model_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/time/clock.h"
#include "store/file_faults.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "util/json.h"
#include "store/names.h"
#include "util/posix_files.h"
#include "store/sha256.h"
#include "test_util.h"

namespace maas {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

class ModelStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "store";
    auto store = ModelStore::Open(root_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    model_file_ = dir_.path() / "linear.pt";
    testing::SaveLinearModel(model_file_);
  }

  // Publishes a model whose artifact differs per seed.
  ModelInfo PublishSeed(const std::string& name, int seed) {
    fs::path file = dir_.path() / ("linear-" + std::to_string(seed) + ".pt");
    if (!testing::Exists(file)) testing::SaveLinearModel(file, 4, 2, seed);
    absl::StatusOr<ModelInfo> info = store_->Publish(name, file, testing::LinearSignature());
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : ModelInfo{};
  }

  // Everything under the root except the store marker, for "nothing was written" checks.
  std::vector<std::string> RootEntries() {
    std::vector<std::string> names = testing::ListNames(root_);
    names.erase(std::remove(names.begin(), names.end(), ".maas-store.json"), names.end());
    return names;
  }

  testing::TempDir dir_;
  fs::path root_;
  fs::path model_file_;
  std::unique_ptr<ModelStore> store_;
};

// ---------------------------------------------------------------------------------------------
// Open

TEST_F(ModelStoreTest, OpenCreatesTheRootAndAMarker) {
  fs::path nested = dir_.path() / "a" / "b" / "store";
  auto store = ModelStore::Open(nested);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(testing::IsDirectory(nested));
  EXPECT_TRUE(testing::Exists(nested / ".maas-store.json"));
  std::error_code ec;
  EXPECT_EQ((*store)->root(), internal::posix::Canonical(nested, ec));
  EXPECT_THAT(*(*store)->Models(), IsEmpty());
}

TEST_F(ModelStoreTest, OpenMissingRootFailsWhenCreationIsForbidden) {
  ModelStore::Options options;
  options.create_if_missing = false;
  auto store = ModelStore::Open(dir_.path() / "absent", options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(store.status()), HasSubstr("absent"));
  EXPECT_FALSE(testing::Exists(dir_.path() / "absent"));
}

TEST_F(ModelStoreTest, OpenRefusesAFileAsRoot) {
  testing::WriteBytes(dir_.path() / "file", "x");
  auto store = ModelStore::Open(dir_.path() / "file");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(store.status()), HasSubstr("not a folder"));
  EXPECT_EQ(ModelStore::Open("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelStoreTest, OpenRefusesAStoreFromANewerFormat) {
  testing::MakeWritable(root_ / ".maas-store.json");
  testing::WriteBytes(root_ / ".maas-store.json", R"({"format": 99})");
  auto store = ModelStore::Open(root_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(store.status()), HasSubstr("format 99"));
  testing::WriteBytes(root_ / ".maas-store.json", "garbage");
  store = ModelStore::Open(root_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(store.status()), HasSubstr(".maas-store.json"));
}

TEST_F(ModelStoreTest, ReadOnlyStoreReadsButRefusesEveryChange) {
  ModelInfo v1 = PublishSeed("mlp", 1);
  ModelStore::Options options;
  options.read_only = true;
  auto reader = ModelStore::Open(root_, options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->Get("mlp")->sha256, v1.sha256);
  EXPECT_EQ((*reader)->Publish("mlp", model_file_, testing::LinearSignature()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*reader)->SetAlias("mlp", "stable", 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*reader)->RemoveAlias("mlp", "stable").code(), absl::StatusCode::kFailedPrecondition);
  absl::Status removed = (*reader)->Remove("mlp", 1);
  EXPECT_EQ(removed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(removed), HasSubstr("read-only"));
  EXPECT_THAT(*store_->Versions("mlp"), ElementsAre(1));

  auto missing = ModelStore::Open(dir_.path() / "absent", options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(testing::Exists(dir_.path() / "absent"));
}

// ---------------------------------------------------------------------------------------------
// Publish and read back

TEST_F(ModelStoreTest, PublishNumbersVersionsAndRecordsEverything) {
  absl::Time before = absl::Now();
  PublishOptions options;
  options.description = "first \"try\"";
  options.labels = {{"team", "search"}, {"dataset", "2026-11"}};
  absl::StatusOr<ModelInfo> v1 =
      store_->Publish("mlp", model_file_, testing::LinearSignature(), options);
  ASSERT_TRUE(v1.ok()) << v1.status();
  absl::Time after = absl::Now();

  EXPECT_EQ(v1->name, "mlp");
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1->sha256, *internal::Sha256OfFile(model_file_));
  EXPECT_EQ(v1->size_bytes, testing::FileSize(model_file_));
  EXPECT_EQ(v1->signature, testing::LinearSignature());
  EXPECT_GE(v1->created, before);
  EXPECT_LE(v1->created, after);
  EXPECT_EQ(v1->artifact_path, root_ / "mlp" / "1" / "model.pt");
  EXPECT_EQ(testing::ReadBytes(v1->artifact_path), testing::ReadBytes(model_file_));

  // What Get reads back from disk equals what Publish returned.
  absl::StatusOr<ModelInfo> got = store_->Get("mlp", "1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sha256, v1->sha256);
  EXPECT_EQ(got->size_bytes, v1->size_bytes);
  EXPECT_EQ(got->signature, v1->signature);
  EXPECT_EQ(got->created, v1->created);
  EXPECT_EQ(got->description, "first \"try\"");
  EXPECT_EQ(got->labels, options.labels);
  EXPECT_EQ(got->artifact_path, v1->artifact_path);

  EXPECT_EQ(PublishSeed("mlp", 2).version, 2);
  EXPECT_EQ(PublishSeed("mlp", 3).version, 3);
  EXPECT_EQ(store_->Get("mlp")->version, 3);
  EXPECT_EQ(store_->Get("mlp", "latest")->version, 3);
  EXPECT_EQ(store_->Get("mlp", "2")->version, 2);
  EXPECT_THAT(*store_->Versions("mlp"), ElementsAre(1, 2, 3));
}

TEST_F(ModelStoreTest, ManifestIsHumanReadableJson) {
  ModelInfo v1 = PublishSeed("mlp", 1);
  std::string text = testing::ReadBytes(root_ / "mlp" / "1" / "manifest.json");
  EXPECT_THAT(text, HasSubstr("\"sha256\": \"" + v1.sha256 + "\""));
  EXPECT_THAT(text, HasSubstr("\"dtype\": \"float32\""));
  EXPECT_THAT(text, HasSubstr("\"shape\": [4]"));
  EXPECT_THAT(text, HasSubstr("\"batchable\": true"));
  absl::StatusOr<internal::Json> json = internal::ParseJson(text);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ((*json)["version"].get<int64_t>(), 1);
  EXPECT_EQ((*json)["size_bytes"].get<int64_t>(), v1.size_bytes);
}

TEST_F(ModelStoreTest, PublishedFilesAreReadOnly) {
  ModelInfo v1 = PublishSeed("mlp", 1);
  struct stat st;
  ASSERT_EQ(::stat(v1.artifact_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u);
  ASSERT_EQ(::stat((root_ / "mlp" / "1" / "manifest.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u);
}

TEST_F(ModelStoreTest, ModelsListsEveryModelSorted) {
  PublishSeed("zeta", 1);
  PublishSeed("alpha", 2);
  PublishSeed("mid", 3);
  EXPECT_THAT(*store_->Models(), ElementsAre("alpha", "mid", "zeta"));
  // A second store object on the same root sees the same.
  EXPECT_THAT(*(*ModelStore::Open(root_))->Models(), ElementsAre("alpha", "mid", "zeta"));
}

TEST_F(ModelStoreTest, SignatureWithWildcardsAndNonBatchableRoundTrips) {
  ModelSignature signature{{{"x", torch::kFloat32, {kAnyDim, 4}}},
                           {{"y", torch::kFloat64, {}}},
                           /*batchable=*/false};
  // forward takes one tensor, as the signature says; outputs are not checked at publish.
  absl::StatusOr<ModelInfo> info = store_->Publish("seq", model_file_, signature);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(store_->Get("seq")->signature, signature);
}

// ---------------------------------------------------------------------------------------------
// Bad input to Publish: clear errors, nothing written.

TEST_F(ModelStoreTest, PublishRefusesBadNamesAndWritesNothing) {
  for (std::string bad :
       {std::string(), std::string(129, 'n'), std::string(".hidden"), std::string(".."),
        std::string("../escape"), std::string("a/b"), std::string("/abs"), std::string("sp ace")}) {
    absl::StatusOr<ModelInfo> info = store_->Publish(bad, model_file_, testing::LinearSignature());
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Message(info.status()), HasSubstr("model name")) << bad;
  }
  EXPECT_THAT(RootEntries(), IsEmpty());
  EXPECT_THAT(testing::ListNames(dir_.path()), ElementsAre("linear.pt", "store"));
}

// Writes `value` little-endian into 4 bytes of `bytes` at `at`.
void Patch32(std::string& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

TEST_F(ModelStoreTest, PublishRefusesArchivesThatDeclareMoreThanTheyHoldBeforeLoadingThem) {
  const std::string bytes = testing::ReadBytes(model_file_);
  const size_t entry = bytes.find(std::string("PK\x01\x02", 4));  // First directory entry.
  ASSERT_NE(entry, std::string::npos);
  fs::path hostile = dir_.path() / "hostile.pt";
  auto refused = [&](const std::string& content) {
    testing::WriteBytes(hostile, content);
    absl::StatusOr<ModelInfo> info = store_->Publish("mlp", hostile, testing::LinearSignature());
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
    return Message(info.status());
  };
  // An entry that declares 2 GB (a reader would allocate for it).
  std::string huge = bytes;
  Patch32(huge, entry + 20, 0x7FFFFFFF);
  Patch32(huge, entry + 24, 0x7FFFFFFF);
  EXPECT_THAT(refused(huge),
              ::testing::AllOf(HasSubstr("declares 2147483647 bytes"), HasSubstr("beyond the")));
  // Sizes that disagree for a stored entry.
  std::string disagree = bytes;
  Patch32(disagree, entry + 24, 0x7FFFFFFF);
  EXPECT_THAT(refused(disagree), HasSubstr("declares 2147483647 bytes but holds"));
  // A compression LibTorch cannot read.
  std::string bzip2 = bytes;
  bzip2[entry + 10] = 12;
  EXPECT_THAT(refused(bzip2), HasSubstr("compression method 12"));
  // An entry whose data lies outside the file.
  std::string outside = bytes;
  Patch32(outside, entry + 42, 0x7FFFFFF0);
  EXPECT_THAT(refused(outside), HasSubstr("points outside the file"));
  // The real archive still publishes.
  testing::WriteBytes(hostile, bytes);
  EXPECT_TRUE(store_->Publish("mlp", hostile, testing::LinearSignature()).ok());
}

TEST_F(ModelStoreTest, PublishRefusesAFileThatIsNotTorchScript) {
  fs::path junk = dir_.path() / "junk.pt";
  testing::WriteBytes(junk, "this is not a zip archive");
  absl::StatusOr<ModelInfo> info = store_->Publish("mlp", junk, testing::LinearSignature());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(info.status()),
              HasSubstr("is not a valid model archive (TorchScript or AOTInductor package): no zip end-of-directory record"));
  EXPECT_THAT(Message(info.status()), HasSubstr("junk.pt"));

  // A truncated real archive is refused too.
  std::string bytes = testing::ReadBytes(model_file_);
  testing::WriteBytes(junk, bytes.substr(0, bytes.size() / 2));
  info = store_->Publish("mlp", junk, testing::LinearSignature());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);

  // Nothing is visible and no staging folder is left behind.
  EXPECT_EQ(store_->Get("mlp").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(*store_->Models(), IsEmpty());
  for (const std::string& name : testing::ListNames(root_ / "mlp")) {
    EXPECT_THAT(name, ::testing::Not(HasSubstr("staging"))) << name;
  }
}

TEST_F(ModelStoreTest, PublishRefusesMissingFilesAndFolders) {
  absl::StatusOr<ModelInfo> info =
      store_->Publish("mlp", dir_.path() / "nope.pt", testing::LinearSignature());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(info.status()), HasSubstr("nope.pt"));
  info = store_->Publish("mlp", dir_.path(), testing::LinearSignature());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(RootEntries(), IsEmpty());
}

TEST_F(ModelStoreTest, PublishRefusesMalformedSignatures) {
  ModelSignature empty;
  absl::StatusOr<ModelInfo> info = store_->Publish("mlp", model_file_, empty);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(info.status()), HasSubstr("no inputs"));

  ModelSignature bad_dim = testing::LinearSignature();
  bad_dim.inputs[0].shape = {0};
  info = store_->Publish("mlp", model_file_, bad_dim);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(info.status()), HasSubstr("'x'"));
  EXPECT_THAT(RootEntries(), IsEmpty());
}

TEST_F(ModelStoreTest, PublishRefusesASignatureThatForwardCannotTake) {
  ModelSignature two_inputs = testing::LinearSignature();
  two_inputs.inputs.push_back({"z", torch::kFloat32, {4}});
  absl::StatusOr<ModelInfo> info = store_->Publish("mlp", model_file_, two_inputs);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(info.status()), HasSubstr("declares 2 input(s) but forward"));
  EXPECT_THAT(Message(info.status()), HasSubstr("takes 1"));
}

TEST_F(ModelStoreTest, PublishRefusesAModuleWithoutForward) {
  torch::jit::Module module("NoForward");
  module.define("def helper(self, x: Tensor) -> Tensor:\n  return x\n");
  fs::path file = dir_.path() / "noforward.pt";
  module.save(file.string());
  absl::StatusOr<ModelInfo> info = store_->Publish("mlp", file, testing::LinearSignature());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(info.status()), HasSubstr("without a forward method"));
}

// ---------------------------------------------------------------------------------------------
// Get: unknown things are NotFound naming what was asked.

TEST_F(ModelStoreTest, GetNamesWhatWasNotFound) {
  PublishSeed("mlp", 1);
  absl::StatusOr<ModelInfo> info = store_->Get("nothing");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(info.status()), HasSubstr("model 'nothing' not found"));

  info = store_->Get("mlp", "7");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(info.status()), HasSubstr("no version 7 (versions: 1)"));

  info = store_->Get("mlp", "stable");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(info.status()), HasSubstr("no alias 'stable'"));

  EXPECT_EQ(store_->Get("mlp", "0").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("mlp", "a/b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("../mlp").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Versions("nothing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Aliases("nothing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Verify("nothing").code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// Aliases

TEST_F(ModelStoreTest, AliasesPointMoveAndDisappear) {
  PublishSeed("mlp", 1);
  PublishSeed("mlp", 2);
  ASSERT_TRUE(store_->SetAlias("mlp", "stable", 1).ok());
  ASSERT_TRUE(store_->SetAlias("mlp", "canary", 2).ok());
  EXPECT_EQ(store_->Get("mlp", "stable")->version, 1);
  EXPECT_EQ(store_->Get("mlp", "canary")->version, 2);
  EXPECT_THAT(*store_->Aliases("mlp"), ElementsAre(Pair("canary", 2), Pair("stable", 1)));

  ASSERT_TRUE(store_->SetAlias("mlp", "stable", 2).ok());  // promote
  EXPECT_EQ(store_->Get("mlp", "stable")->version, 2);
  ASSERT_TRUE(store_->SetAlias("mlp", "stable", 1).ok());  // roll back
  EXPECT_EQ(store_->Get("mlp", "stable")->version, 1);

  ASSERT_TRUE(store_->RemoveAlias("mlp", "canary").ok());
  absl::StatusOr<ModelInfo> gone = store_->Get("mlp", "canary");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(gone.status()), HasSubstr("(aliases: stable)"));
  absl::Status again = store_->RemoveAlias("mlp", "canary");
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(again), HasSubstr("no alias 'canary'"));
}

TEST_F(ModelStoreTest, SetAliasRefusesBadInput) {
  PublishSeed("mlp", 1);
  for (const char* bad : {"3", "1.5", "-1", "latest", "Latest", "", ".x", "a/b"}) {
    absl::Status s = store_->SetAlias("mlp", bad, 1);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  absl::Status s = store_->SetAlias("mlp", "stable", 9);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(s), HasSubstr("no such version (versions: 1)"));
  EXPECT_EQ(store_->SetAlias("other", "stable", 1).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(*store_->Aliases("mlp"), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Remove

TEST_F(ModelStoreTest, RemoveRefusesAnAliasedVersionNamingTheAlias) {
  PublishSeed("mlp", 1);
  PublishSeed("mlp", 2);
  ASSERT_TRUE(store_->SetAlias("mlp", "stable", 1).ok());
  absl::Status s = store_->Remove("mlp", 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("alias 'stable' points to it"));
  EXPECT_THAT(*store_->Versions("mlp"), ElementsAre(1, 2));

  ASSERT_TRUE(store_->Remove("mlp", 2).ok());
  EXPECT_THAT(*store_->Versions("mlp"), ElementsAre(1));
  EXPECT_EQ(store_->Get("mlp", "2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Remove("mlp", 2).code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(testing::Exists(root_ / "mlp" / "2"));
}

TEST_F(ModelStoreTest, VersionNumbersAreNeverReused) {
  PublishSeed("mlp", 1);
  PublishSeed("mlp", 2);
  ASSERT_TRUE(store_->Remove("mlp", 2).ok());
  EXPECT_EQ(PublishSeed("mlp", 3).version, 3);
  ASSERT_TRUE(store_->Remove("mlp", 3).ok());
  ASSERT_TRUE(store_->Remove("mlp", 1).ok());
  // With every version gone the model is gone, but its numbers are still spent.
  EXPECT_THAT(*store_->Models(), IsEmpty());
  EXPECT_EQ(store_->Get("mlp").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PublishSeed("mlp", 4).version, 4);
}

// ---------------------------------------------------------------------------------------------
// Verify and corruption

TEST_F(ModelStoreTest, VerifyFindsAFlippedByteAndATruncation) {
  ModelInfo v1 = PublishSeed("mlp", 1);
  EXPECT_TRUE(store_->Verify("mlp", "1").ok());
  std::string bytes = testing::ReadBytes(v1.artifact_path);

  testing::MakeWritable(v1.artifact_path);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x01;
  testing::WriteBytes(v1.artifact_path, flipped);
  absl::Status s = store_->Verify("mlp", "1");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), HasSubstr(v1.sha256));
  EXPECT_THAT(Message(s), HasSubstr(v1.artifact_path.string()));

  testing::WriteBytes(v1.artifact_path, bytes.substr(0, 100));
  s = store_->Verify("mlp");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), HasSubstr("has 100 bytes"));

  testing::WriteBytes(v1.artifact_path, bytes);
  EXPECT_TRUE(store_->Verify("mlp").ok());
}

TEST_F(ModelStoreTest, CorruptManifestGivesAnErrorNamingTheFile) {
  PublishSeed("mlp", 1);
  fs::path manifest = root_ / "mlp" / "1" / "manifest.json";
  testing::MakeWritable(manifest);
  std::string original = testing::ReadBytes(manifest);

  for (const std::string& nonsense :
       {std::string("{ this is not json"), std::string("[]"), std::string("{\"format\": 1}"),
        std::string(""), std::string("\x89PNG\r\n\x1a\n", 8)}) {
    testing::WriteBytes(manifest, nonsense);
    absl::StatusOr<ModelInfo> info = store_->Get("mlp");
    EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss) << nonsense;
    EXPECT_THAT(Message(info.status()), HasSubstr(manifest.string())) << nonsense;
  }

  // A manifest that parses but lies about its field types or identity.
  std::string wrong_type = original;
  wrong_type.replace(wrong_type.find("\"size_bytes\": "), 14, "\"size_bytes\": \"big\", \"x\": ");
  testing::WriteBytes(manifest, wrong_type);
  EXPECT_THAT(Message(store_->Get("mlp").status()), HasSubstr("\"size_bytes\""));
  std::string wrong_version = original;
  wrong_version.replace(wrong_version.find("\"version\": 1"), 12, "\"version\": 5");
  testing::WriteBytes(manifest, wrong_version);
  EXPECT_THAT(Message(store_->Get("mlp").status()), HasSubstr("version 5"));

  testing::RemoveFile(manifest);
  absl::StatusOr<ModelInfo> info = store_->Get("mlp");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(info.status()), HasSubstr("manifest.json is missing"));
}

TEST_F(ModelStoreTest, MissingArtifactGivesAnErrorNamingTheFile) {
  ModelInfo v1 = PublishSeed("mlp", 1);
  testing::RemoveFile(v1.artifact_path);
  absl::StatusOr<ModelInfo> info = store_->Get("mlp");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(info.status()), HasSubstr(v1.artifact_path.string()));
  EXPECT_EQ(store_->Verify("mlp").code(), absl::StatusCode::kDataLoss);
}

TEST_F(ModelStoreTest, CorruptModelJsonGivesAnErrorNamingTheFile) {
  PublishSeed("mlp", 1);
  ASSERT_TRUE(store_->SetAlias("mlp", "stable", 1).ok());
  fs::path meta = root_ / "mlp" / "model.json";
  testing::WriteBytes(meta, "{\"format\": 1, \"last_version\": \"one\"}");
  absl::StatusOr<ModelInfo> info = store_->Get("mlp", "stable");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(info.status()), HasSubstr(meta.string()));
  // Numbered reads do not need model.json.
  EXPECT_TRUE(store_->Get("mlp", "1").ok());
  // A publish refuses to guess the next number from a corrupt file.
  EXPECT_EQ(store_->Publish("mlp", model_file_, testing::LinearSignature()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(ModelStoreTest, NumbersReadFromTheStoreAreBounded) {
  PublishSeed("mlp", 1);
  fs::path meta = root_ / "mlp" / "model.json";
  // A high-water mark near the int64 maximum would overflow into a negative version.
  for (const char* last : {"9223372036854775806", "1000000000000001", "-1"}) {
    testing::WriteBytes(
        meta, std::string("{\"format\": 1, \"last_version\": ") + last + ", \"aliases\": {}}");
    absl::StatusOr<ModelInfo> published =
        store_->Publish("mlp", model_file_, testing::LinearSignature());
    EXPECT_EQ(published.status().code(), absl::StatusCode::kDataLoss) << last;
    EXPECT_THAT(Message(published.status()), HasSubstr("last_version")) << last;
  }
  // At the bound itself, the numbers are used up: refused, not wrapped.
  testing::WriteBytes(meta,
                      "{\"format\": 1, \"last_version\": 1000000000000000, "
                      "\"aliases\": {}}");
  EXPECT_EQ(store_->Publish("mlp", model_file_, testing::LinearSignature()).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(*store_->Versions("mlp"), ElementsAre(1));
  // A version folder beyond the bound is not a version.
  testing::MakeFolders(root_ / "mlp" / "1000000000000001");
  EXPECT_THAT(*store_->Versions("mlp"), ElementsAre(1));
}

TEST_F(ModelStoreTest, AStoreMarkerWithANegativeFormatIsCorrupt) {
  testing::MakeWritable(root_ / ".maas-store.json");
  testing::WriteBytes(root_ / ".maas-store.json", "{\"format\": -3}");
  absl::StatusOr<std::unique_ptr<ModelStore>> store = ModelStore::Open(root_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(store.status()), HasSubstr("formats start at 1"));
}

TEST_F(ModelStoreTest, ForeignEntriesInTheStoreAreIgnored) {
  PublishSeed("mlp", 1);
  testing::MakeFolders(root_ / "mlp" / "notes");
  testing::MakeFolders(root_ / "mlp" / "007");
  testing::WriteBytes(root_ / "mlp" / "README", "hi");
  testing::WriteBytes(root_ / "stray-file", "x");
  testing::MakeFolders(root_ / ".trash" / "1");
  testing::MakeFolders(root_ / "empty-model");
  EXPECT_THAT(*store_->Models(), ElementsAre("mlp"));
  EXPECT_THAT(*store_->Versions("mlp"), ElementsAre(1));
}

// ---------------------------------------------------------------------------------------------
// Links

TEST_F(ModelStoreTest, LinksLeadingOutsideTheRootAreNotFollowed) {
  // A complete, valid model outside the store, linked in as a model folder.
  auto outside = ModelStore::Open(dir_.path() / "elsewhere");
  ASSERT_TRUE((*outside)->Publish("evil", model_file_, testing::LinearSignature()).ok());
  testing::MakeSymlink(dir_.path() / "elsewhere" / "evil", root_ / "evil");
  EXPECT_THAT(*store_->Models(), IsEmpty());
  absl::StatusOr<ModelInfo> info = store_->Get("evil");
  EXPECT_FALSE(info.ok());
  EXPECT_THAT(Message(info.status()), HasSubstr("outside the store root"));
  EXPECT_FALSE(store_->Publish("evil", model_file_, testing::LinearSignature()).ok());

  // An artifact that is a link to a file outside the store.
  ModelInfo v1 = PublishSeed("mlp", 1);
  testing::RemoveFile(v1.artifact_path);
  testing::MakeSymlink(model_file_, v1.artifact_path);
  info = store_->Get("mlp");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(info.status()), HasSubstr("links that leave the store are not followed"));
  EXPECT_FALSE(store_->Verify("mlp").ok());
}

TEST_F(ModelStoreTest, LinksInsideTheRootAreFollowed) {
  ModelInfo v1 = PublishSeed("mlp", 1);
  testing::MakeFolders(root_ / "blobs");
  fs::path blob = root_ / "blobs" / "mlp-1.pt";
  testing::WriteBytes(blob, testing::ReadBytes(v1.artifact_path));
  testing::RemoveFile(v1.artifact_path);
  testing::MakeSymlink(fs::path("..") / ".." / "blobs" / "mlp-1.pt", v1.artifact_path);
  absl::StatusOr<ModelInfo> info = store_->Get("mlp");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->artifact_path, blob);
  EXPECT_TRUE(store_->Verify("mlp").ok());
}

// ---------------------------------------------------------------------------------------------
// Concurrency

TEST_F(ModelStoreTest, ConcurrentPublishersInThreadsGetDistinctVersions) {
  constexpr int kThreads = 8;
  constexpr int kEach = 4;
  std::vector<fs::path> files;
  for (int t = 0; t < kThreads; ++t) {
    files.push_back(dir_.path() / ("t" + std::to_string(t) + ".pt"));
    testing::SaveLinearModel(files.back(), 4, 2, t + 10);
  }
  std::vector<std::vector<ModelInfo>> published(kThreads);
  std::atomic<bool> done{false};
  std::atomic<int> reader_errors{0};
  // A reader that must never see a partial version while publishers run.
  std::thread reader([&] {
    while (!done) {
      absl::StatusOr<ModelInfo> latest = store_->Get("shared");
      if (!latest.ok() && !absl::IsNotFound(latest.status())) ++reader_errors;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        absl::StatusOr<ModelInfo> info =
            store_->Publish("shared", files[t], testing::LinearSignature());
        if (info.ok()) published[t].push_back(*info);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done = true;
  reader.join();

  std::set<int64_t> versions;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(published[t].size(), static_cast<size_t>(kEach)) << "thread " << t;
    std::string expected_sha = *internal::Sha256OfFile(files[t]);
    for (const ModelInfo& info : published[t]) {
      versions.insert(info.version);
      // Each version holds exactly the bytes its publisher gave.
      EXPECT_EQ(store_->Get("shared", std::to_string(info.version))->sha256, expected_sha);
    }
  }
  EXPECT_EQ(versions.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(*versions.begin(), 1);
  EXPECT_EQ(*versions.rbegin(), kThreads * kEach);
  EXPECT_EQ(reader_errors.load(), 0);
  EXPECT_EQ(store_->Versions("shared")->size(), static_cast<size_t>(kThreads * kEach));
}

TEST_F(ModelStoreTest, ConcurrentPublishersInProcessesGetDistinctVersions) {
  constexpr int kEach = 6;
  std::vector<std::pair<int, int>> children;  // pid, stdout fd
  for (int c = 0; c < 2; ++c) {
    int fd = -1;
    int pid = testing::StartChild(
        {"publish", root_.string(), "shared", model_file_.string(), std::to_string(kEach)}, &fd);
    ASSERT_GT(pid, 0);
    children.emplace_back(pid, fd);
  }
  std::vector<int64_t> mine;
  for (int i = 0; i < kEach; ++i) mine.push_back(PublishSeed("shared", 5).version);

  std::multiset<int64_t> all(mine.begin(), mine.end());
  for (auto [pid, fd] : children) {
    testing::ChildResult result = testing::WaitChild(pid, fd);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    std::istringstream lines(result.output);
    for (int64_t v; lines >> v;) all.insert(v);
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(3 * kEach));
  std::set<int64_t> distinct(all.begin(), all.end());
  EXPECT_EQ(distinct.size(), all.size()) << "a version was handed out twice";
  std::vector<int64_t> on_disk = *store_->Versions("shared");
  EXPECT_EQ(std::vector<int64_t>(distinct.begin(), distinct.end()), on_disk);
  EXPECT_EQ(on_disk.back(), 3 * kEach);
}

TEST_F(ModelStoreTest, AKilledPublisherLeavesNothingVisibleAndIsCleanedUp) {
  ModelInfo v1 = PublishSeed("mlp", 1);
  for (const char* point : {"staged", "committing"}) {
    testing::ChildResult result =
        testing::RunChild({"publish-crash", root_.string(), "mlp", model_file_.string(), point});
    ASSERT_EQ(result.term_signal, SIGKILL) << point << ": exit " << result.exit_code;

    // The dead publisher's staging folder is there...
    int staging = 0;
    for (const std::string& name : testing::ListNames(root_ / "mlp")) {
      staging += name.rfind(".staging-", 0) == 0;
    }
    EXPECT_EQ(staging, 1) << point;
    // ...but Open, Get, Versions and Models ignore it.
    auto reopened = ModelStore::Open(root_);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ((*reopened)->Get("mlp")->version, 1) << point;
    EXPECT_THAT(*(*reopened)->Versions("mlp"), ElementsAre(1)) << point;
    EXPECT_THAT(*(*reopened)->Models(), ElementsAre("mlp")) << point;
  }
  // The next publish cleans up and takes the next number.
  EXPECT_EQ(PublishSeed("mlp", 2).version, 2);
  for (const std::string& name : testing::ListNames(root_ / "mlp")) {
    EXPECT_EQ(name.rfind(".staging-", 0), std::string::npos) << name << " was left behind";
  }
  EXPECT_EQ(store_->Get("mlp", "1")->sha256, v1.sha256);
}

TEST_F(ModelStoreTest, RemoveAbandonedCleansEveryModelButLeavesLivePublishesAlone) {
  PublishSeed("mlp", 1);
  // A crashed publish of an existing model, and the crashed first publish of a new one.
  for (const char* model : {"mlp", "fresh"}) {
    testing::ChildResult result =
        testing::RunChild({"publish-crash", root_.string(), model, model_file_.string(), "staged"});
    ASSERT_EQ(result.term_signal, SIGKILL) << model << ": exit " << result.exit_code;
  }
  // A publish in progress: its staging folder's lock is held (by this process, here).
  const fs::path live = root_ / "mlp" / ".staging-live";
  ASSERT_EQ(::mkdir(live.c_str(), 0755), 0);
  const int fd = ::open((live / ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);

  absl::StatusOr<std::vector<fs::path>> removed = store_->RemoveAbandoned();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->size(), 2u);
  std::vector<std::string> left;
  for (const char* model : {"mlp", "fresh"}) {
    for (const std::string& name : testing::ListNames(root_ / model)) {
      if (name.rfind(".staging-", 0) == 0) left.push_back(name);
    }
  }
  EXPECT_THAT(left, ElementsAre(".staging-live"));
  EXPECT_THAT(*store_->RemoveAbandoned(), ::testing::IsEmpty());  // nothing more to do
  EXPECT_EQ(store_->Get("mlp")->version, 1);
  ::close(fd);  // the publisher is gone now: its folder is abandoned
  removed = store_->RemoveAbandoned();
  ASSERT_TRUE(removed.ok()) << removed.status();
  ASSERT_EQ(removed->size(), 1u);
  EXPECT_EQ(removed->front().filename(), ".staging-live");

  ModelStoreOptions read_only;
  read_only.read_only = true;
  auto reader = ModelStore::Open(root_, read_only);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->RemoveAbandoned().status().code(), absl::StatusCode::kFailedPrecondition);
}

// ---------------------------------------------------------------------------------------------
// Fault injection: every file operation that changes the store (create, write, fsync, rename,
// mkdir, unlink) fails in turn, with ENOSPC and with EIO, during Publish, SetAlias and Remove.
// After each: the store opens, every version it lists is complete and verifies, every alias
// points at a version, and the next (clean) publish leaves nothing behind that cleanup missed.

// Whether the store at `root` is sound after a fault, as described above.
void ExpectSoundStore(const fs::path& root, const fs::path& model_file,
                      const std::string& context) {
  SCOPED_TRACE(context);
  internal::SetFileFaultForTesting(0, 0);
  auto store = ModelStore::Open(root);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::vector<int64_t>> versions = (*store)->Versions("m");
  ASSERT_TRUE(versions.ok()) << versions.status();
  for (int64_t version : *versions) {
    EXPECT_TRUE((*store)->Verify("m", std::to_string(version)).ok()) << "version " << version;
  }
  absl::StatusOr<std::map<std::string, int64_t>> aliases = (*store)->Aliases("m");
  ASSERT_TRUE(aliases.ok()) << aliases.status();
  for (const auto& [alias, version] : *aliases) {
    EXPECT_TRUE(std::binary_search(versions->begin(), versions->end(), version))
        << "alias " << alias << " points at missing version " << version;
  }
  // The next publish works (no lock left held) and cleans up whatever the fault left.
  absl::StatusOr<ModelInfo> next = (*store)->Publish("m", model_file, testing::LinearSignature());
  ASSERT_TRUE(next.ok()) << next.status();
  for (const std::string& name : testing::ListNames(root / "m")) {
    const bool expected =
        name == "model.json" || name == ".lock" || internal::ParseVersionFolderName(name) > 0;
    EXPECT_TRUE(expected) << "left behind: " << name;
  }
}

// A fresh store in `dir` for RunStoreOperation: model "m" versions 1 and 2, "stable" -> 1.
std::unique_ptr<ModelStore> FreshStore(const testing::TempDir& dir, fs::path* model_file) {
  *model_file = dir.path() / "linear.pt";
  testing::SaveLinearModel(*model_file);
  auto store = ModelStore::Open(dir.path() / "store");
  EXPECT_TRUE(store.ok());
  EXPECT_TRUE((*store)->Publish("m", *model_file, testing::LinearSignature()).ok());
  testing::SaveLinearModel(*model_file, 4, 2, /*seed=*/2);
  EXPECT_TRUE((*store)->Publish("m", *model_file, testing::LinearSignature()).ok());
  EXPECT_TRUE((*store)->SetAlias("m", "stable", 1).ok());
  return std::move(*store);
}

// How many fault points `operation` passes on a fresh store.
int64_t CountFaultPoints(const std::string& operation) {
  testing::TempDir dir;
  fs::path model_file;
  std::unique_ptr<ModelStore> store = FreshStore(dir, &model_file);
  internal::SetFileFaultForTesting(0, 0);
  EXPECT_TRUE(testing::RunStoreOperation(*store, operation).ok()) << operation;
  const int64_t points = internal::FileFaultPointsForTesting();
  EXPECT_GT(points, 0) << operation << " passes no fault point: the seam is not wired";
  return points;
}

// Runs `operation` on a fresh store once per fault point, failing that point with ENOSPC, then
// with EIO.
void InjectEveryFault(const std::string& operation) {
  const int64_t points = CountFaultPoints(operation);
  int64_t refused = 0;
  for (int error : {ENOSPC, EIO}) {
    for (int64_t n = 1; n <= points; ++n) {
      testing::TempDir dir;
      fs::path model_file;
      std::unique_ptr<ModelStore> store = FreshStore(dir, &model_file);
      internal::SetFileFaultForTesting(n, error);
      absl::Status status = testing::RunStoreOperation(*store, operation);
      internal::SetFileFaultForTesting(0, 0);
      refused += !status.ok();
      ExpectSoundStore(dir.path() / "store", model_file,
                       operation + ", fault " + std::to_string(n) + " of " +
                           std::to_string(points) + ", " + std::strerror(error) + ": " +
                           status.ToString());
    }
  }
  // Most faults surface as errors; a few hit clean-up steps whose failure is harmless.
  EXPECT_GT(refused, points) << operation << ": " << points << " fault points, " << refused
                             << " refusals over both errors";
}

// Runs `operation` in a child process on a fresh store once per fault point, killing the child
// with SIGKILL at that point (before the operation there happens).
void KillAtEveryFaultPoint(const std::string& operation) {
  const int64_t points = CountFaultPoints(operation);
  for (int64_t n = 1; n <= points; ++n) {
    testing::TempDir dir;
    fs::path model_file;
    FreshStore(dir, &model_file);
    testing::ChildResult child = testing::RunChild(
        {"store-op-killed", (dir.path() / "store").string(), operation, std::to_string(n)});
    EXPECT_EQ(child.term_signal, SIGKILL) << operation << " at point " << n;
    ExpectSoundStore(
        dir.path() / "store", model_file,
        operation + " killed at point " + std::to_string(n) + " of " + std::to_string(points));
  }
}

TEST(ModelStoreFaultInjectionTest, PublishLeavesASoundStoreWhateverFails) {
  InjectEveryFault("publish");
}

TEST(ModelStoreFaultInjectionTest, SetAliasLeavesASoundStoreWhateverFails) {
  InjectEveryFault("set-alias");
}

TEST(ModelStoreFaultInjectionTest, RemoveLeavesASoundStoreWhateverFails) {
  InjectEveryFault("remove");
}

// A crash between any two file operations (power loss, OOM kill) leaves a sound store too.
TEST(ModelStoreFaultInjectionTest, PublishKilledAtAnyPointLeavesASoundStore) {
  KillAtEveryFaultPoint("publish");
}

TEST(ModelStoreFaultInjectionTest, SetAliasKilledAtAnyPointLeavesASoundStore) {
  KillAtEveryFaultPoint("set-alias");
}

TEST(ModelStoreFaultInjectionTest, RemoveKilledAtAnyPointLeavesASoundStore) {
  KillAtEveryFaultPoint("remove");
}

}  // namespace
}  // namespace maas
