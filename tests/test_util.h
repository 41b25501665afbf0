// Helpers shared by the tests: scratch folders, TorchScript fixtures built in C++ (no Python),
// and child processes running this same test binary.
#ifndef MAAS_TESTS_TEST_UTIL_H_
#define MAAS_TESTS_TEST_UTIL_H_

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "maas/model_store.h"
#include "maas/types.h"

namespace maas::testing {

// A new empty folder under the system's temporary folder, deleted with its contents on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Saves a TorchScript module computing `x @ w + b` with w of shape [in, out] filled from
// `seed`, so that different seeds give different artifacts. forward(self, x: Tensor) -> Tensor.
void SaveLinearModel(const std::filesystem::path& path, int64_t in = 4, int64_t out = 2,
                     int seed = 0);

// Saves a TorchScript module with the given parameters and `source` (its methods).
void SaveScript(const std::filesystem::path& path, const std::string& source,
                const std::vector<std::pair<std::string, at::Tensor>>& parameters = {});

// The signature of SaveLinearModel's module: input "x" float32 [in], output "y" float32 [out].
ModelSignature LinearSignature(int64_t in = 4, int64_t out = 2);

// Saves a module that answers every row of x (float32 [2]) with [tag, tag]: a model that says
// which version answered. Signature: TaggedSignature().
void SaveTaggedModel(const std::filesystem::path& path, float tag);
ModelSignature TaggedSignature();

void WriteBytes(const std::filesystem::path& path, const std::string& bytes);
std::string ReadBytes(const std::filesystem::path& path);

// Lists a folder's entry names (not recursive), sorted.
std::vector<std::string> ListNames(const std::filesystem::path& folder);

// File helpers for the tests, on POSIX calls: like the library, the tests call no
// std::filesystem operation (see lib/util/posix_files.h); they fail the test on error.
bool Exists(const std::filesystem::path& path);
bool IsDirectory(const std::filesystem::path& path);
int64_t FileSize(const std::filesystem::path& path);
void MakeFolders(const std::filesystem::path& path);
void RemoveFile(const std::filesystem::path& path);
// Makes a file writable by its owner (store artifacts and manifests are read-only).
void MakeWritable(const std::filesystem::path& path);
// Creates the link `link` leading to `target` (as written: relative targets stay relative).
void MakeSymlink(const std::filesystem::path& target, const std::filesystem::path& link);

// A one-shot event, on std primitives so that ThreadSanitizer sees its ordering (Debian's
// Abseil, and so absl::Notification, is not built for TSan).
class Notification {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    cv_.notify_all();
  }
  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

struct ChildResult {
  int exit_code = -1;   // When it exited normally.
  int term_signal = 0;  // When a signal killed it.
  std::string output;   // Its standard output.
};

// Runs a store operation on model "m" (its versions 1 and 2, "stable" -> 1, the artifact file
// linear.pt beside the store's root): "publish" a new version, "set-alias" stable -> 2, or
// "remove" version 2. Shared by the fault-injection tests and their child processes.
absl::Status RunStoreOperation(ModelStore& store, const std::string& operation);

// Runs this test binary as `<self> --maas-child <args...>` and waits for it.
ChildResult RunChild(const std::vector<std::string>& args);

// Starts the same without waiting; returns the pid. Pair with WaitChild.
int StartChild(const std::vector<std::string>& args, int* stdout_fd);
ChildResult WaitChild(int pid, int stdout_fd);

// Runs a child command (the part after --maas-child); called from main. Returns the exit code.
int RunChildCommand(const std::vector<std::string>& args);

}  // namespace maas::testing

#endif  // MAAS_TESTS_TEST_UTIL_H_
