// The store's file building blocks: the lock, atomic replacement, durable copies with their
// hash, and the check that keeps links inside the store.
#include "store/store_files.h"

#include <sys/stat.h>

#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/sha256.h"
#include "test_util.h"
#include "util/posix_files.h"

namespace maas::internal {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;
namespace posix = internal::posix;

TEST(StoreFilesTest, AFileLockExcludesAnotherHolderUntilReleased) {
  maas::testing::TempDir dir;
  const fs::path path = dir.path() / ".lock";
  absl::StatusOr<FileLock> held = FileLock::Acquire(path);
  ASSERT_TRUE(held.ok()) << held.status();
  absl::StatusOr<std::optional<FileLock>> other = FileLock::TryAcquireExisting(path);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->has_value()) << "held by another descriptor";
  { FileLock released = *std::move(held); }
  other = FileLock::TryAcquireExisting(path);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->has_value());
  EXPECT_EQ(FileLock::TryAcquireExisting(dir.path() / "missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(StoreFilesTest, ReplacingAFileLeavesTheNewContentsAndNoTemporaryFile) {
  maas::testing::TempDir dir;
  const fs::path path = dir.path() / "model.json";
  ASSERT_TRUE(ReplaceFileAtomically(path, "old").ok());
  ASSERT_TRUE(ReplaceFileAtomically(path, "new").ok());
  EXPECT_EQ(*ReadSmallFile(path), "new");
  std::error_code ec;
  EXPECT_EQ(posix::ListFolder(dir.path(), ec).size(), 1u) << "no temporary file left behind";
  EXPECT_EQ(ReadSmallFile(dir.path() / "none").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(ReadSmallFile(path, /*max_bytes=*/2).ok()) << "larger than allowed";
}

TEST(StoreFilesTest, ACopyIsReadOnlyAndHashedAsWritten) {
  maas::testing::TempDir dir;
  maas::testing::WriteBytes(dir.path() / "from", "weights");
  absl::StatusOr<CopyResult> copied = CopyAndHash(dir.path() / "from", dir.path() / "to");
  ASSERT_TRUE(copied.ok()) << copied.status();
  Sha256 hash;
  hash.Update("weights");
  EXPECT_EQ(copied->sha256, hash.HexDigest());
  EXPECT_EQ(copied->size_bytes, 7);
  struct stat copy_stat {};
  ASSERT_EQ(::stat((dir.path() / "to").c_str(), &copy_stat), 0);
  EXPECT_EQ(copy_stat.st_mode & 0222, 0u) << "a published artifact is read-only";
}

TEST(StoreFilesTest, LinksMayNotLeadOutsideTheRoot) {
  maas::testing::TempDir dir;
  const fs::path root = dir.path() / "store";
  std::error_code ec;
  posix::CreateDirectories(root / "m", ec);
  ASSERT_FALSE(ec);
  maas::testing::WriteBytes(dir.path() / "outside", "x");
  maas::testing::MakeSymlink(dir.path() / "outside", root / "m" / "escape");
  maas::testing::MakeSymlink(root / "m", root / "inside");
  EXPECT_TRUE(ResolveInside(root, root / "inside").ok());
  absl::StatusOr<fs::path> escaped = ResolveInside(root, root / "m" / "escape");
  EXPECT_EQ(escaped.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(escaped.status().message()), HasSubstr("outside"));
  EXPECT_EQ(ResolveInside(root, root / "nothing").status().code(), absl::StatusCode::kNotFound);
}

TEST(StoreFilesTest, UniqueNamesDifferAcrossCalls) { EXPECT_NE(UniqueName(), UniqueName()); }

}  // namespace
}  // namespace maas::internal
