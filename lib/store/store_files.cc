#include "store/store_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <random>
#include <vector>

#include "store/file_faults.h"
#include "fmt/core.h"
#include "util/posix_files.h"
#include "store/sha256.h"

namespace maas::internal {
namespace fs = std::filesystem;
namespace {

std::error_code LastError() { return std::error_code(errno, std::generic_category()); }

int OpenRetrying(const fs::path& path, int flags, mode_t mode = 0) {
  if ((flags & (O_WRONLY | O_RDWR | O_CREAT)) != 0) {
    if (int fault = InjectedFileFault()) {
      errno = fault;
      return -1;
    }
  }
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

absl::Status WriteAll(int fd, const char* data, size_t size, const fs::path& path) {
  while (size > 0) {
    const int fault = InjectedFileFault();
    ssize_t n = fault != 0 ? (errno = fault, -1) : ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError("write", path, LastError());
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SyncAndClose(int fd, const fs::path& path) {
  const int fault = InjectedFileFault();
  if (fault != 0 ? (errno = fault, true) : ::fsync(fd) != 0) {
    std::error_code ec = LastError();
    ::close(fd);
    return FileError("fsync", path, ec);
  }
  if (::close(fd) != 0) return FileError("close", path, LastError());
  return absl::OkStatus();
}

}  // namespace

int RenameFile(const fs::path& from, const fs::path& to) {
  if (int fault = InjectedFileFault()) {
    errno = fault;
    return -1;
  }
  return ::rename(from.c_str(), to.c_str());
}

absl::Status FileError(std::string_view operation, const fs::path& path,
                       const std::error_code& ec) {
  return absl::InternalError(
      fmt::format("cannot {} {}: {}", operation, path.string(), ec.message()));
}

absl::StatusOr<FileLock> FileLock::Acquire(const fs::path& path) {
  int fd = OpenRetrying(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) return FileError("open lock file", path, LastError());
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    std::error_code ec = LastError();
    ::close(fd);
    return FileError("lock", path, ec);
  }
  return FileLock(fd);
}

absl::StatusOr<std::optional<FileLock>> FileLock::TryAcquireExisting(const fs::path& path) {
  int fd = OpenRetrying(path, O_RDWR);
  if (fd < 0 && errno == ENOENT) return absl::NotFoundError(path.string());
  if (fd < 0) return FileError("open lock file", path, LastError());
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    std::error_code ec = LastError();
    ::close(fd);
    if (ec.value() == EWOULDBLOCK) return std::optional<FileLock>();
    return FileError("lock", path, ec);
  }
  return std::optional<FileLock>(FileLock(fd));
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // Closing the last descriptor releases the flock.
}

std::string UniqueName() {
  static std::atomic<uint64_t> counter{0};
  char host[64] = "host";
  ::gethostname(host, sizeof(host) - 1);
  host[sizeof(host) - 1] = '\0';
  for (char* c = host; *c; ++c) {
    if (!std::isalnum(static_cast<unsigned char>(*c)) && *c != '-') *c = '_';
  }
  thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{}-{}-{}-{:08x}", host, ::getpid(), counter.fetch_add(1),
                     static_cast<uint32_t>(rng()));
}

absl::StatusOr<std::string> ReadSmallFile(const fs::path& path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; it is refused below.
  int fd = OpenRetrying(path, O_RDONLY | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT) {
    return absl::NotFoundError(fmt::format("{} does not exist", path.string()));
  }
  if (fd < 0) return FileError("open", path, LastError());
  std::string contents;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    std::error_code ec = LastError();
    ::close(fd);
    return FileError("stat", path, ec);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(
        fmt::format("{} is not a regular file; a store holds only regular files", path.string()));
  }
  if (st.st_size > 0) contents.reserve(std::min(static_cast<size_t>(st.st_size), max_bytes));
  char buffer[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::error_code ec = LastError();
      ::close(fd);
      return FileError("read", path, ec);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
    if (contents.size() > max_bytes) {
      ::close(fd);
      return absl::InternalError(
          fmt::format("{} is larger than {} bytes; not a store file", path.string(), max_bytes));
    }
  }
  ::close(fd);
  return contents;
}

absl::StatusOr<std::string> ReadFileBytes(const fs::path& path) {
  std::error_code ec;
  uintmax_t size = posix::FileSize(path, ec);
  if (ec == std::errc::no_such_file_or_directory) {
    return absl::NotFoundError(fmt::format("{} does not exist", path.string()));
  }
  if (ec) return FileError("read the size of", path, ec);
  return ReadSmallFile(path, static_cast<size_t>(size));
}

absl::Status WriteFileDurably(const fs::path& path, const std::string& contents, bool read_only) {
  int fd = OpenRetrying(path, O_WRONLY | O_CREAT | O_EXCL, read_only ? 0444 : 0644);
  if (fd < 0) return FileError("create", path, LastError());
  if (absl::Status s = WriteAll(fd, contents.data(), contents.size(), path); !s.ok()) {
    ::close(fd);
    return s;
  }
  return SyncAndClose(fd, path);
}

absl::Status SyncFolder(const fs::path& folder) {
  int fd = OpenRetrying(folder, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return FileError("open folder", folder, LastError());
  return SyncAndClose(fd, folder);
}

absl::Status ReplaceFileAtomically(const fs::path& path, const std::string& contents) {
  fs::path temporary = path;
  temporary += ".tmp-" + UniqueName();
  if (absl::Status s = WriteFileDurably(temporary, contents, /*read_only=*/false); !s.ok()) {
    std::error_code ignored;
    posix::Remove(temporary, ignored);
    return s;
  }
  if (RenameFile(temporary, path) != 0) {
    std::error_code ec = LastError();
    std::error_code ignored;
    posix::Remove(temporary, ignored);
    return FileError("rename onto", path, ec);
  }
  return SyncFolder(path.parent_path());
}

absl::StatusOr<CopyResult> CopyAndHash(const fs::path& from, const fs::path& to) {
  int in = OpenRetrying(from, O_RDONLY);
  if (in < 0 && errno == ENOENT) {
    return absl::NotFoundError(fmt::format("{} does not exist", from.string()));
  }
  if (in < 0) return FileError("open", from, LastError());
  int out = OpenRetrying(to, O_WRONLY | O_CREAT | O_EXCL, 0444);
  if (out < 0) {
    std::error_code ec = LastError();
    ::close(in);
    return FileError("create", to, ec);
  }
  Sha256 hash;
  CopyResult result;
  std::vector<char> buffer(1 << 20);
  absl::Status status;
  while (status.ok()) {
    ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = FileError("read", from, LastError());
      break;
    }
    if (n == 0) break;
    hash.Update(buffer.data(), static_cast<size_t>(n));
    result.size_bytes += n;
    status = WriteAll(out, buffer.data(), static_cast<size_t>(n), to);
  }
  ::close(in);
  if (!status.ok()) {
    ::close(out);
    return status;
  }
  if (absl::Status s = SyncAndClose(out, to); !s.ok()) return s;
  result.sha256 = hash.HexDigest();
  return result;
}

absl::StatusOr<fs::path> ResolveInside(const fs::path& root, const fs::path& path) {
  std::error_code ec;
  fs::path resolved = posix::Canonical(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) {
      return absl::NotFoundError(fmt::format("{} does not exist", path.string()));
    }
    return FileError("resolve", path, ec);
  }
  auto [root_end, unused] =
      std::mismatch(root.begin(), root.end(), resolved.begin(), resolved.end());
  if (root_end != root.end()) {
    return absl::FailedPreconditionError(fmt::format(
        "{} leads to {}, outside the store root {}; links that leave the store are not followed",
        path.string(), resolved.string(), root.string()));
  }
  return resolved;
}

}  // namespace maas::internal
