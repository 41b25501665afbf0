#include "util/posix_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>

#include "store/file_faults.h"

namespace maas::internal::posix {
namespace fs = std::filesystem;
namespace {

std::error_code LastError() { return std::error_code(errno, std::generic_category()); }

FileType TypeOfMode(mode_t mode) {
  if (S_ISREG(mode)) return FileType::kRegular;
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  return FileType::kOther;
}

FileType TypeFromStat(int result, const struct stat& info, std::error_code& ec) {
  ec.clear();
  if (result == 0) return TypeOfMode(info.st_mode);
  if (errno == ENOENT || errno == ENOTDIR) return FileType::kNone;
  ec = LastError();
  return FileType::kNone;
}

// Removes `name` (relative to the folder `dir_fd`) and, for a folder, what it holds, without
// following links: a link inside the tree is removed, not what it leads to.
void RemoveAllAt(int dir_fd, const char* name, std::error_code& ec) {
  if (int fault = InjectedFileFault()) {
    ec = std::error_code(fault, std::generic_category());
    return;
  }
  if (::unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) {
    ec = LastError();
    return;
  }
  int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    ec = LastError();
    return;
  }
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), &::closedir);
  if (dir == nullptr) {
    ec = LastError();
    ::close(fd);
    return;
  }
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string child = entry->d_name;
    if (child == "." || child == "..") continue;
    RemoveAllAt(::dirfd(dir.get()), child.c_str(), ec);
    if (ec) return;
  }
  dir.reset();
  if (::unlinkat(dir_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) ec = LastError();
}

}  // namespace

FileType TypeOf(const fs::path& path, std::error_code& ec) {
  struct stat info;
  const int result = ::stat(path.c_str(), &info);
  return TypeFromStat(result, info, ec);
}

FileType LinkTypeOf(const fs::path& path, std::error_code& ec) {
  struct stat info;
  const int result = ::lstat(path.c_str(), &info);
  return TypeFromStat(result, info, ec);
}

std::uintmax_t FileSize(const fs::path& path, std::error_code& ec) {
  ec.clear();
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    ec = LastError();
    return 0;
  }
  if (!S_ISREG(info.st_mode)) {
    ec = std::make_error_code(std::errc::is_a_directory);
    return 0;
  }
  return static_cast<std::uintmax_t>(info.st_size);
}

bool CreateDirectory(const fs::path& path, std::error_code& ec) {
  ec.clear();
  if (int fault = InjectedFileFault()) {
    ec = std::error_code(fault, std::generic_category());
    return false;
  }
  if (::mkdir(path.c_str(), 0755) == 0) return true;
  const std::error_code error = LastError();
  if (error.value() == EEXIST && TypeOf(path, ec) == FileType::kDirectory) return false;
  ec = error;
  return false;
}

void CreateDirectories(const fs::path& path, std::error_code& ec) {
  ec.clear();
  const std::string& text = path.native();
  // Each prefix ending before a '/', then the whole path.
  for (size_t slash = text.find('/', 1);; slash = text.find('/', slash + 1)) {
    const std::string prefix = text.substr(0, slash);
    if (!prefix.empty() && prefix.back() != '/') {
      CreateDirectory(prefix, ec);
      if (ec) return;
    }
    if (slash == std::string::npos) return;
  }
}

bool Remove(const fs::path& path, std::error_code& ec) {
  ec.clear();
  if (int fault = InjectedFileFault()) {
    ec = std::error_code(fault, std::generic_category());
    return false;
  }
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  if (errno != EISDIR && errno != EPERM) {
    ec = LastError();
    return false;
  }
  if (::rmdir(path.c_str()) == 0) return true;
  ec = LastError();
  return false;
}

void RemoveAll(const fs::path& path, std::error_code& ec) {
  ec.clear();
  RemoveAllAt(AT_FDCWD, path.c_str(), ec);
}

std::vector<std::string> ListFolder(const fs::path& folder, std::error_code& ec) {
  ec.clear();
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(folder.c_str()), &::closedir);
  if (dir == nullptr) {
    ec = LastError();
    return names;
  }
  errno = 0;
  while (const dirent* entry = ::readdir(dir.get())) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  if (errno != 0) ec = LastError();
  return names;
}

fs::path Absolute(const fs::path& path, std::error_code& ec) {
  ec.clear();
  if (path.is_absolute()) return path;
  char buffer[PATH_MAX];
  if (::getcwd(buffer, sizeof buffer) == nullptr) {
    ec = LastError();
    return {};
  }
  return fs::path(buffer) / path;
}

fs::path Canonical(const fs::path& path, std::error_code& ec) {
  ec.clear();
  std::unique_ptr<char, void (*)(void*)> resolved(::realpath(path.c_str(), nullptr), &std::free);
  if (resolved == nullptr) {
    ec = LastError();
    return {};
  }
  return fs::path(resolved.get());
}

fs::path TempDirectory() {
  const char* tmpdir = std::getenv("TMPDIR");
  return fs::path(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp");
}

}  // namespace maas::internal::posix
