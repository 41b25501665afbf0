// Tests of the library's building blocks: SHA-256, JSON, names, signatures, the version.
#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <thread>

#include "cpu_cores.h"
#include "execution_time_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "json.h"
#include "maas/types.h"
#include "maas/version.h"
#include "names.h"
#include "posix_files.h"
#include "sha256.h"
#include "test_util.h"
#include "utf8.h"

namespace maas {
namespace {

using internal::AvailableCores;
using internal::CoresOfCfsQuota;
using internal::CoresOfCpuMax;
using internal::Json;
using ::testing::HasSubstr;

std::string Sha(const std::string& data) {
  internal::Sha256 hash;
  hash.Update(data);
  return hash.HexDigest();
}

TEST(VersionTest, RuntimeVersionMatchesHeaders) {
  EXPECT_STREQ(Version(), MAAS_VERSION_STRING);
  EXPECT_EQ(std::string(Version()), std::to_string(MAAS_VERSION_MAJOR) + "." +
                                        std::to_string(MAAS_VERSION_MINOR) + "." +
                                        std::to_string(MAAS_VERSION_PATCH));
}

// A container's CPU limit, as cgroups write it, becomes the default core count.
TEST(CpuCoresTest, ReadsCgroupQuotas) {
  EXPECT_EQ(CoresOfCpuMax("400000 100000\n"), 4);
  EXPECT_EQ(CoresOfCpuMax("150000 100000"), 2);  // 1.5 cores: rounded up
  EXPECT_EQ(CoresOfCpuMax("50000 100000"), 1);
  EXPECT_EQ(CoresOfCpuMax("max 100000\n"), std::nullopt);  // no limit
  EXPECT_EQ(CoresOfCpuMax(""), std::nullopt);              // no such file
  EXPECT_EQ(CoresOfCpuMax("garbage"), std::nullopt);
  EXPECT_EQ(CoresOfCfsQuota("200000\n", "100000\n"), 2);
  EXPECT_EQ(CoresOfCfsQuota("-1", "100000"), std::nullopt);  // v1's "no limit"
  const int cores = AvailableCores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, static_cast<int>(std::thread::hardware_concurrency()));
}

TEST(Sha256Test, MatchesFipsVectors) {
  EXPECT_EQ(Sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, StreamingEqualsOneShotAtEveryBlockBoundary) {
  std::string data;
  for (int i = 0; i < 300; ++i) data += static_cast<char>(i * 7 + 3);
  for (size_t split = 0; split <= data.size(); split += 13) {
    internal::Sha256 hash;
    hash.Update(data.substr(0, split));
    hash.Update(data.substr(split));
    EXPECT_EQ(hash.HexDigest(), Sha(data)) << "split at " << split;
  }
}

TEST(Sha256Test, HashesFiles) {
  testing::TempDir dir;
  testing::WriteBytes(dir.path() / "f", "abc");
  EXPECT_EQ(*internal::Sha256OfFile(dir.path() / "f"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(internal::Sha256OfFile(dir.path() / "missing").ok());
}

// ---------------------------------------------------------------------------------------------
// File operations on POSIX calls, and the proof that nothing calls std::filesystem's

TEST(PosixFilesTest, CreatesListsMeasuresAndRemovesTrees) {
  namespace posix = internal::posix;
  testing::TempDir dir;
  std::error_code ec;
  const std::filesystem::path nested = dir.path() / "a" / "b" / "c";
  posix::CreateDirectories(nested, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(posix::IsDirectory(nested, ec));
  EXPECT_FALSE(posix::CreateDirectory(nested, ec)) << "already there";
  EXPECT_FALSE(ec);
  testing::WriteBytes(nested / "f", "12345");
  EXPECT_EQ(posix::FileSize(nested / "f", ec), 5u);
  EXPECT_TRUE(posix::IsRegularFile(nested / "f", ec));
  EXPECT_EQ(posix::FileSize(nested, ec), 0u);
  EXPECT_TRUE(ec) << "the size of a folder is an error";
  testing::MakeSymlink(nested, dir.path() / "link");
  EXPECT_EQ(posix::LinkTypeOf(dir.path() / "link", ec), posix::FileType::kSymlink);
  EXPECT_EQ(posix::TypeOf(dir.path() / "link", ec), posix::FileType::kDirectory);
  EXPECT_EQ(posix::Canonical(dir.path() / "link" / ".." / "c", ec), posix::Canonical(nested, ec));
  EXPECT_THAT(testing::ListNames(dir.path()), ::testing::ElementsAre("a", "link"));

  // RemoveAll removes a link, never what it leads to.
  posix::RemoveAll(dir.path() / "link", ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(testing::Exists(nested / "f"));
  posix::RemoveAll(dir.path() / "a", ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(posix::Exists(dir.path() / "a", ec));
  EXPECT_FALSE(ec) << "absent is not an error";
  posix::RemoveAll(dir.path() / "a", ec);
  EXPECT_FALSE(ec) << "absent is not an error";
  EXPECT_FALSE(posix::Remove(dir.path() / "a", ec));
  EXPECT_FALSE(ec);
  posix::ListFolder(dir.path() / "a", ec);
  EXPECT_TRUE(ec) << "listing a missing folder is an error";
}

#ifdef MAAS_POISONED_FILESYSTEM
extern "C" int maas_poisoned_filesystem_stubs();

// The mangled name of std::filesystem::remove_all(const path&, std::error_code&), the call that
// crashed in a process linked with the official LibTorch builds.
constexpr char kRemoveAll[] = "_ZNSt10filesystem10remove_allERKNS_7__cxx114pathERSt10error_code";

TEST(PoisonedFilesystemTest, StubsWinTheSymbolLookup) {
  EXPECT_GT(maas_poisoned_filesystem_stubs(), 20);
  void* resolved = ::dlsym(RTLD_DEFAULT, kRemoveAll);
  ASSERT_NE(resolved, nullptr);
  Dl_info where;
  ASSERT_NE(::dladdr(resolved, &where), 0);
  EXPECT_THAT(where.dli_fname, HasSubstr("maas_poisoned_filesystem"))
      << "std::filesystem::remove_all resolves to " << where.dli_fname
      << ", not to the poisoned stubs: the suite would not catch a call to it";
}

TEST(PoisonedFilesystemDeathTest, AStdFilesystemCallAbortsNamingIt) {
  using RemoveAll = std::uintmax_t (*)(const std::filesystem::path&, std::error_code&);
  auto remove_all = reinterpret_cast<RemoveAll>(::dlsym(RTLD_DEFAULT, kRemoveAll));
  ASSERT_NE(remove_all, nullptr);
  std::error_code ec;
  EXPECT_DEATH(remove_all("/nonexistent-maas-path", ec),
               "poisoned std::filesystem call: _ZNSt10filesystem10remove_all");
}
#endif  // MAAS_POISONED_FILESYSTEM

TEST(JsonTest, ParsesWhatItDumpsKeepingMemberOrder) {
  Json value;
  value["zeta"] = "quote \" backslash \\ tab \t newline \n \x01";
  value["alpha"] = Json::array({1, 2, 3});
  value["big"] = int64_t{-9007199254740993};  // beyond double precision
  value["nested"] = {{"a", Json::array({Json::object()})}};
  const std::string text = internal::DumpJson(value);
  EXPECT_LT(text.find("zeta"), text.find("alpha")) << "insertion order, not sorted";
  EXPECT_EQ(text.back(), '\n');
  absl::StatusOr<Json> parsed = internal::ParseJson(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, value);
  EXPECT_EQ((*parsed)["big"].get<int64_t>(), -9007199254740993);
}

TEST(JsonTest, RejectsMalformedTextWithItsPositionAndNeverThrows) {
  for (const char* text : {"", "{", "{\"a\" 1}", "[1,]", "[1 2]", "\"abc", "01x", "tru",
                           "\"\\ud800\"", "\"\\q\"", "\"\xff\""}) {
    absl::StatusOr<Json> parsed = internal::ParseJson(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("line 1, column")) << text;
  }
  absl::StatusOr<Json> duplicate = internal::ParseJson(R"({"a": {"b": 1, "b": 2}})");
  EXPECT_THAT(std::string(duplicate.status().message()), HasSubstr("duplicate member \"b\""));
  EXPECT_TRUE(internal::ParseJson(R"({"a": {"b": 1}, "b": {"b": 2}})").ok())
      << "the same name in different objects is fine";
  absl::StatusOr<Json> multiline = internal::ParseJson("{\n  \"a\": 1,\n  \"b\": ?\n}");
  EXPECT_THAT(std::string(multiline.status().message()), HasSubstr("line 3, column 8"));
}

TEST(JsonTest, RefusesDeepNestingBeforeParsing) {
  EXPECT_TRUE(internal::ParseJson(std::string(internal::kMaxJsonDepth, '[') +
                                  std::string(internal::kMaxJsonDepth, ']'))
                  .ok());
  std::string deep(10'000'000, '[');
  absl::StatusOr<Json> parsed = internal::ParseJson(deep);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("nesting deeper than 64"));
  // Brackets inside strings do not count.
  EXPECT_TRUE(internal::ParseJson("[\"" + std::string(1000, '[') + "\"]").ok());
}

TEST(JsonTest, IntegersBeyond64BitsAreNotInt64) {
  EXPECT_TRUE(internal::IsInt64(*internal::ParseJson("9223372036854775807")));
  EXPECT_FALSE(internal::IsInt64(*internal::ParseJson("9223372036854775808")));
  EXPECT_FALSE(internal::IsInt64(*internal::ParseJson("1.5")));
  EXPECT_EQ(internal::JsonTypeName(*internal::ParseJson("18446744073709551615")),
            "an integer beyond 64 bits");
}

TEST(NamesTest, AcceptsAndRefusesModelNames) {
  for (const char* good : {"mlp", "ResNet-18", "a", "a.b_c-d", "latest", "123"}) {
    EXPECT_TRUE(internal::ValidateModelName(good).ok()) << good;
  }
  for (std::string bad : {std::string(), std::string(129, 'a'), std::string(".hidden"),
                          std::string(".."), std::string("a/b"), std::string("a b"),
                          std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    absl::Status s = internal::ValidateModelName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(internal::ValidateModelName(std::string(128, 'a')).ok());
}

TEST(NamesTest, RefusesAliasesThatLookLikeVersions) {
  for (const char* bad : {"3", "007", "-1", "+2", "1.5", "1e3", "latest", "LATEST"}) {
    absl::Status s = internal::ValidateAlias(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (const char* good : {"stable", "canary", "v2", "prod-eu", "3a"}) {
    EXPECT_TRUE(internal::ValidateAlias(good).ok()) << good;
  }
}

TEST(NamesTest, ParsesVersionSelectors) {
  EXPECT_TRUE(
      std::holds_alternative<internal::LatestVersion>(*internal::ParseVersionSelector("latest")));
  EXPECT_EQ(std::get<int64_t>(*internal::ParseVersionSelector("42")), 42);
  EXPECT_EQ(std::get<std::string>(*internal::ParseVersionSelector("stable")), "stable");
  EXPECT_EQ(std::get<int64_t>(*internal::ParseVersionSelector("1000000000000000")),
            internal::kMaxVersion);
  // Strict: no whitespace on either side, no sign, no leading zero, nothing past kMaxVersion.
  for (const char* bad : {"0", "", "99999999999999999999", "1x", "a/b", "-1", "1 ", " 1", "1\n",
                          "1\r\n", "latest\n", "+1", "01", "1000000000000001"}) {
    EXPECT_EQ(internal::ParseVersionSelector(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(SignatureTest, ValidatesEveryRule) {
  ModelSignature good = testing::LinearSignature();
  EXPECT_TRUE(ValidateSignature(good).ok());

  struct Case {
    const char* what;
    ModelSignature signature;
    const char* message;
  };
  ModelSignature no_inputs = good;
  no_inputs.inputs.clear();
  ModelSignature no_outputs = good;
  no_outputs.outputs.clear();
  ModelSignature zero_dim = good;
  zero_dim.inputs[0].shape = {0};
  ModelSignature negative_dim = good;
  negative_dim.inputs[0].shape = {3, -2};
  ModelSignature duplicate = good;
  duplicate.inputs.push_back(duplicate.inputs[0]);
  ModelSignature unnamed = good;
  unnamed.outputs[0].name = "";
  ModelSignature bad_char = good;
  bad_char.inputs[0].name = "x y";
  ModelSignature complex = good;
  complex.inputs[0].dtype = c10::ScalarType::ComplexFloat;
  ModelSignature too_many_dims = good;
  too_many_dims.inputs[0].shape = std::vector<int64_t>(17, 1);
  for (const Case& c :
       {Case{"no inputs", no_inputs, "no inputs"}, Case{"no outputs", no_outputs, "no outputs"},
        Case{"zero dim", zero_dim, "[0]"}, Case{"negative dim", negative_dim, "[3, -2]"},
        Case{"duplicate", duplicate, "appears twice"}, Case{"unnamed", unnamed, "output 0"},
        Case{"bad char", bad_char, "'x y'"}, Case{"complex", complex, "supported: float32"},
        Case{"rank", too_many_dims, "17 dimensions"}}) {
    absl::Status s = ValidateSignature(c.signature);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.what;
  }
}

TEST(ExecutionTimeModelTest, PredictsAndRecoversFromASlowOutlier) {
  internal::ExecutionTimeModel model(/*max_batch_size=*/8);
  EXPECT_FALSE(model.Predict(1).has_value());  // nothing measured yet
  model.Record(1, absl::Milliseconds(1));
  EXPECT_FALSE(model.Predict(1).has_value());  // one sample is not enough
  model.Record(1, absl::Milliseconds(1));
  model.Record(4, absl::Milliseconds(3));
  model.Record(4, absl::Milliseconds(3));
  EXPECT_EQ(*model.Predict(1), absl::Milliseconds(1));
  EXPECT_NEAR(absl::ToDoubleMilliseconds(*model.Predict(2)), 1.0 + 2.0 / 3, 1e-6);  // between
  EXPECT_EQ(*model.Predict(8), absl::Milliseconds(3));  // beyond: the largest, erring low

  // One 30 ms outlier lifts the estimate above a 5 ms budget; refusals (Relax) bring it back.
  model.Record(1, absl::Milliseconds(30));
  EXPECT_GT(*model.Predict(1), absl::Milliseconds(5));
  int refusals = 0;
  while (*model.Predict(1) > absl::Milliseconds(5)) {
    model.Relax();
    ++refusals;
  }
  EXPECT_LE(refusals, 5);
}

TEST(DtypeTest, NamesRoundTrip) {
  for (c10::ScalarType t : {c10::ScalarType::Float, c10::ScalarType::Double, c10::ScalarType::Half,
                            c10::ScalarType::BFloat16, c10::ScalarType::Byte, c10::ScalarType::Char,
                            c10::ScalarType::Short, c10::ScalarType::Int, c10::ScalarType::Long,
                            c10::ScalarType::Bool}) {
    EXPECT_EQ(*ParseDtype(DtypeName(t)), t);
    // The Open Inference Protocol's names too, as KServe and Triton users write them.
    EXPECT_EQ(*ParseDtype(std::string(DtypeDatatypeName(t))), t);
  }
  EXPECT_EQ(DtypeName(c10::ScalarType::Float), "float32");
  EXPECT_EQ(DtypeDatatypeName(c10::ScalarType::Float), "FP32");
  EXPECT_EQ(DtypeDatatypeName(c10::ScalarType::BFloat16), "BF16");
  EXPECT_TRUE(DtypeDatatypeName(c10::ScalarType::ComplexFloat).empty());
  const std::string unknown(ParseDtype("float").status().message());
  EXPECT_THAT(unknown, HasSubstr("float32"));
  EXPECT_THAT(unknown, HasSubstr("FP32"));
  EXPECT_FALSE(ParseDtype("fp32").ok());  // Names are exact.
}

TEST(Utf8Test, ValidSequencesPassAndEveryInvalidByteBecomesOneReplacement) {
  using internal::Utf8SequenceLength;
  using internal::ValidUtf8;
  const std::string r(internal::kReplacementCharacter);
  EXPECT_EQ(ValidUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(ValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");  // 2, 3 and 4 bytes.
  EXPECT_EQ(ValidUtf8("a\xFF\xFE" "b"), "a" + r + r + "b");  // Never a lead byte.
  EXPECT_EQ(ValidUtf8("\xC3"), r);                            // Cut short at the end.
  EXPECT_EQ(ValidUtf8("\xC3("), r + "(");                     // Cut short by ASCII.
  EXPECT_EQ(ValidUtf8("\xC0\xAF"), r + r);                    // Overlong '/'.
  EXPECT_EQ(ValidUtf8("\xE0\x80\xAF"), r + r + r);            // Overlong, 3 bytes.
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80"), r + r + r);            // A UTF-16 surrogate.
  EXPECT_EQ(ValidUtf8("\xF4\x90\x80\x80"), r + r + r + r);    // Above U+10FFFF.
  EXPECT_EQ(ValidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(Utf8SequenceLength(""), 0u);
  EXPECT_EQ(Utf8SequenceLength("\xEF\xBF\xBD"), 3u);
  EXPECT_EQ(Utf8SequenceLength("\x80"), 0u);  // A continuation byte alone.
}

}  // namespace
}  // namespace maas
