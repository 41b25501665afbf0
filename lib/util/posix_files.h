// The file operations maas needs (types, sizes, folders, removal, paths), on POSIX calls.
//
// Why not std::filesystem's operations: the official LibTorch builds export their own copies of
// libstdc++'s std::filesystem functions, and in a process that links them a call may resolve to
// those copies instead of the system's (seen on a GPU machine: std::filesystem::remove_all jumped
// to address 0; PyTorch issue 133437). A library linked into other people's processes must not
// depend on which copy of such a symbol wins, so maas calls none of them: the tests run in a
// process where every one of them aborts (tests/poisoned_filesystem.cmake) and a build check
// lists any that creep back (tests/check_symbols.cmake).
//
// std::filesystem::path is still used as a value (joining, splitting, comparing): its members
// compute on strings only and behave the same in every copy.
#ifndef MAAS_LIB_POSIX_FILES_H_
#define MAAS_LIB_POSIX_FILES_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace maas::internal::posix {

enum class FileType { kNone, kRegular, kDirectory, kSymlink, kOther };

// The type of `path`, following links; kNone when it does not exist (`ec` is then clear).
// Other failures (permissions, I/O) set `ec`.
FileType TypeOf(const std::filesystem::path& path, std::error_code& ec);
// As TypeOf, but a link is kSymlink, not what it leads to.
FileType LinkTypeOf(const std::filesystem::path& path, std::error_code& ec);

inline bool Exists(const std::filesystem::path& path, std::error_code& ec) {
  return TypeOf(path, ec) != FileType::kNone;
}
inline bool IsDirectory(const std::filesystem::path& path, std::error_code& ec) {
  return TypeOf(path, ec) == FileType::kDirectory;
}
inline bool IsRegularFile(const std::filesystem::path& path, std::error_code& ec) {
  return TypeOf(path, ec) == FileType::kRegular;
}

// The size in bytes of the file `path` leads to.
std::uintmax_t FileSize(const std::filesystem::path& path, std::error_code& ec);

// Creates one folder (mode 0755 less the umask). Returns false, with `ec` clear, when a folder
// was already there.
bool CreateDirectory(const std::filesystem::path& path, std::error_code& ec);

// Creates a folder and any missing parents.
void CreateDirectories(const std::filesystem::path& path, std::error_code& ec);

// Removes a file, a link or an empty folder. Returns false, with `ec` clear, when it was absent.
bool Remove(const std::filesystem::path& path, std::error_code& ec);

// Removes `path` and, for a folder, everything in it. Links are removed, never followed.
// Absent is not an error.
void RemoveAll(const std::filesystem::path& path, std::error_code& ec);

// The names of a folder's entries (not "." and ".."), in no particular order.
std::vector<std::string> ListFolder(const std::filesystem::path& folder, std::error_code& ec);

// `path` made absolute against the working folder (not normalized, links not resolved).
std::filesystem::path Absolute(const std::filesystem::path& path, std::error_code& ec);

// `path` absolute, with every link, "." and ".." resolved (realpath(3)); it must exist.
std::filesystem::path Canonical(const std::filesystem::path& path, std::error_code& ec);

// The folder for temporary files: $TMPDIR when set, else /tmp.
std::filesystem::path TempDirectory();

}  // namespace maas::internal::posix

#endif  // MAAS_LIB_POSIX_FILES_H_
