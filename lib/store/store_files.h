// Filesystem building blocks of the store: locks, atomic writes, copies with hashing, and the
// check that keeps links from leading outside the store.
#ifndef MAAS_LIB_STORE_FILES_H_
#define MAAS_LIB_STORE_FILES_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace maas::internal {

// An exclusive flock(2) on a file, released on destruction. Each lock opens its own descriptor,
// so two threads of one process exclude each other as two processes do. Move-only.
class FileLock {
 public:
  // Blocks until the lock is held; creates the file if missing.
  static absl::StatusOr<FileLock> Acquire(const std::filesystem::path& path);
  // Returns the lock if free now, std::nullopt if another holder has it. NotFound when the file
  // does not exist (it is not created).
  static absl::StatusOr<std::optional<FileLock>> TryAcquireExisting(
      const std::filesystem::path& path);

  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// A name unique across hosts, processes and calls: "<host>-<pid>-<counter>-<random>".
std::string UniqueName();

// Reads a whole file of at most `max_bytes`. NotFound if missing; Internal otherwise.
absl::StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path,
                                          size_t max_bytes = 16 << 20);

// Reads a whole file of any size, sized up front. NotFound if missing; Internal otherwise.
absl::StatusOr<std::string> ReadFileBytes(const std::filesystem::path& path);

// Writes `contents` to `path`, fsyncs it, and optionally makes it read-only (0444).
absl::Status WriteFileDurably(const std::filesystem::path& path, const std::string& contents,
                              bool read_only);

// Replaces `path` by `contents` atomically (temporary file, fsync, rename, fsync of the folder):
// readers see the old or the new file, never a mix.
absl::Status ReplaceFileAtomically(const std::filesystem::path& path, const std::string& contents);

// Flushes a folder's entries (after a rename or create) to stable storage.
absl::Status SyncFolder(const std::filesystem::path& folder);

struct CopyResult {
  std::string sha256;
  int64_t size_bytes = 0;
};
// Copies `from` to `to` (a new file, made read-only), hashing the bytes written, and fsyncs it.
absl::StatusOr<CopyResult> CopyAndHash(const std::filesystem::path& from,
                                       const std::filesystem::path& to);

// Resolves every link in `path` and checks that the result lies inside `root` (canonical).
// Returns the canonical path. NotFound if it does not exist; FailedPrecondition naming the link
// target when it leaves the root.
absl::StatusOr<std::filesystem::path> ResolveInside(const std::filesystem::path& root,
                                                    const std::filesystem::path& path);

// rename(2), through the fault-injection seam (file_faults.h): 0 or -1 with errno.
int RenameFile(const std::filesystem::path& from, const std::filesystem::path& to);

// Shorthand for an Internal error naming an operation, a path and errno/error_code text.
absl::Status FileError(std::string_view operation, const std::filesystem::path& path,
                       const std::error_code& ec);

}  // namespace maas::internal

#endif  // MAAS_LIB_STORE_FILES_H_
