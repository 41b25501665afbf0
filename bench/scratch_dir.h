// A fresh temporary folder for a benchmark's store and files, removed with its contents on
// destruction. On POSIX calls (lib/util/posix_files.h), like the library: no std::filesystem
// operation, whose copy in the official LibTorch builds may win over the system's.
#ifndef MAAS_BENCH_SCRATCH_DIR_H_
#define MAAS_BENCH_SCRATCH_DIR_H_

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include "util/posix_files.h"

namespace maas::bench {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix) {
    std::string pattern = (internal::posix::TempDirectory() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    internal::posix::RemoveAll(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace maas::bench

#endif  // MAAS_BENCH_SCRATCH_DIR_H_
