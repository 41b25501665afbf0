// File operations on POSIX calls, and the proof that the suite would catch a call to one of
// std::filesystem's operations (poisoned in the test binary: lib/util/posix_files.h says why).
#include <dlfcn.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "util/posix_files.h"

namespace maas {
namespace {

using ::testing::HasSubstr;

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

}  // namespace
}  // namespace maas
