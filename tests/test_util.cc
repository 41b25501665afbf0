#include "test_util.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <torch/script.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "store/file_faults.h"
#include "gtest/gtest.h"
#include "maas/model_store.h"
#include "util/posix_files.h"
#include "store/publish_hook.h"

namespace maas::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (internal::posix::TempDirectory() / "maas-test-XXXXXX").string();
  char* made = ::mkdtemp(pattern.data());
  if (made == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Store artifacts are read-only; their folders are not, so they can be removed.
  internal::posix::RemoveAll(path_, ec);
}

void SaveLinearModel(const fs::path& path, int64_t in, int64_t out, int seed) {
  torch::jit::Module module("Linear");
  torch::Tensor w = torch::arange(in * out, torch::kFloat32).reshape({in, out}) / 10.0 + seed;
  module.register_parameter("w", w, /*is_buffer=*/false);
  module.register_parameter("b", torch::full({out}, 0.5f * seed), false);
  module.define(R"(
    def forward(self, x: Tensor) -> Tensor:
      return torch.matmul(x, self.w) + self.b
  )");
  module.save(path.string());
}

void SaveScript(const fs::path& path, const std::string& source,
                const std::vector<std::pair<std::string, at::Tensor>>& parameters) {
  torch::jit::Module module("Fixture");
  for (const auto& [name, value] : parameters) module.register_parameter(name, value, false);
  module.define(source);
  module.save(path.string());
}

ModelSignature LinearSignature(int64_t in, int64_t out) {
  return ModelSignature{{{"x", torch::kFloat32, {in}}}, {{"y", torch::kFloat32, {out}}}};
}

void SaveTaggedModel(const fs::path& path, float tag) {
  torch::jit::Module module("Tagged");
  module.register_buffer("tag", torch::full({1}, tag));
  module.define(R"(
    def forward(self, x: Tensor) -> Tensor:
      return x * 0.0 + self.tag
  )");
  module.save(path.string());
}

ModelSignature TaggedSignature() {
  return ModelSignature{{{"x", torch::kFloat32, {2}}}, {{"y", torch::kFloat32, {2}}}};
}

void WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << bytes;
  ASSERT_TRUE(file.good()) << "cannot write " << path;
}

std::string ReadBytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

std::vector<std::string> ListNames(const fs::path& folder) {
  std::error_code ec;
  std::vector<std::string> names = internal::posix::ListFolder(folder, ec);
  EXPECT_FALSE(ec) << "cannot list " << folder << ": " << ec.message();
  std::sort(names.begin(), names.end());
  return names;
}

bool Exists(const fs::path& path) {
  std::error_code ec;
  const bool exists = internal::posix::Exists(path, ec);
  EXPECT_FALSE(ec) << path << ": " << ec.message();
  return exists;
}

bool IsDirectory(const fs::path& path) {
  std::error_code ec;
  const bool is_directory = internal::posix::IsDirectory(path, ec);
  EXPECT_FALSE(ec) << path << ": " << ec.message();
  return is_directory;
}

int64_t FileSize(const fs::path& path) {
  std::error_code ec;
  const auto size = internal::posix::FileSize(path, ec);
  EXPECT_FALSE(ec) << path << ": " << ec.message();
  return static_cast<int64_t>(size);
}

void MakeFolders(const fs::path& path) {
  std::error_code ec;
  internal::posix::CreateDirectories(path, ec);
  EXPECT_FALSE(ec) << "cannot create " << path << ": " << ec.message();
}

void RemoveFile(const fs::path& path) {
  std::error_code ec;
  EXPECT_TRUE(internal::posix::Remove(path, ec))
      << "cannot remove " << path << ": " << ec.message();
}

void MakeWritable(const fs::path& path) {
  struct stat info;
  ASSERT_EQ(::stat(path.c_str(), &info), 0) << path << ": " << std::strerror(errno);
  EXPECT_EQ(::chmod(path.c_str(), info.st_mode | S_IWUSR), 0)
      << path << ": " << std::strerror(errno);
}

void MakeSymlink(const fs::path& target, const fs::path& link) {
  EXPECT_EQ(::symlink(target.c_str(), link.c_str()), 0)
      << link << " -> " << target << ": " << std::strerror(errno);
}

int StartChild(const std::vector<std::string>& args, int* stdout_fd) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return -1;
  std::vector<std::string> argv_strings = {"/proc/self/exe", "--maas-child"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  *stdout_fd = pipe_fds[0];
  return pid;
}

ChildResult WaitChild(int pid, int stdout_fd) {
  ChildResult result;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(stdout_fd, buffer, sizeof(buffer))) > 0) {
    result.output.append(buffer, static_cast<size_t>(n));
  }
  ::close(stdout_fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

ChildResult RunChild(const std::vector<std::string>& args) {
  int fd = -1;
  int pid = StartChild(args, &fd);
  return WaitChild(pid, fd);
}

namespace {

std::string crash_point;

void KillAtCrashPoint(std::string_view point) {
  if (point == crash_point) ::raise(SIGKILL);
}

}  // namespace

absl::Status RunStoreOperation(ModelStore& store, const std::string& operation) {
  if (operation == "publish") {
    return store.Publish("m", store.root().parent_path() / "linear.pt", LinearSignature()).status();
  }
  if (operation == "set-alias") return store.SetAlias("m", "stable", 2);
  if (operation == "remove") return store.Remove("m", 2);
  return absl::InvalidArgumentError("unknown store operation " + operation);
}

int RunChildCommand(const std::vector<std::string>& args) {
  // publish <root> <name> <file> <count>: prints each version published, one per line.
  if (args.size() == 5 && args[0] == "publish") {
    auto store = ModelStore::Open(args[1]);
    if (!store.ok()) {
      std::cerr << store.status() << "\n";
      return 1;
    }
    for (int i = 0; i < std::stoi(args[4]); ++i) {
      absl::StatusOr<ModelInfo> info = (*store)->Publish(args[2], args[3], LinearSignature());
      if (!info.ok()) {
        std::cerr << info.status() << "\n";
        return 1;
      }
      std::cout << info->version << std::endl;
    }
    return 0;
  }
  // store-op-killed <root> <op> <n>: runs `op` (publish, set-alias or remove) on model "m" of
  // the store at <root>, and dies by SIGKILL at its n-th file fault point (file_faults.h).
  if (args.size() == 4 && args[0] == "store-op-killed") {
    auto store = ModelStore::Open(args[1]);
    if (!store.ok()) return 1;
    internal::SetFileFaultForTesting(std::stoll(args[3]), internal::kKillProcess);
    absl::Status status = RunStoreOperation(**store, args[2]);
    std::cerr << args[2] << " was not killed at point " << args[3] << ": " << status << "\n";
    return 3;
  }
  // publish-crash <root> <name> <file> <point>: dies by SIGKILL at a publish hook point.
  if (args.size() == 5 && args[0] == "publish-crash") {
    crash_point = args[4];
    internal::SetPublishHookForTesting(&KillAtCrashPoint);
    auto store = ModelStore::Open(args[1]);
    if (!store.ok()) return 1;
    absl::StatusOr<ModelInfo> info = (*store)->Publish(args[2], args[3], LinearSignature());
    std::cerr << "publish did not crash at " << crash_point << ": " << info.status() << "\n";
    return 3;
  }
  // publish-tagged <root> <name> <tag> [alias]: publishes a tagged model (SaveTaggedModel),
  // points `alias` at it when given, and prints the version.
  if ((args.size() == 4 || args.size() == 5) && args[0] == "publish-tagged") {
    auto store = ModelStore::Open(args[1]);
    if (!store.ok()) return 1;
    fs::path file = fs::path(args[1]).parent_path() / ("child-" + args[3] + ".pt");
    SaveTaggedModel(file, std::stof(args[3]));
    absl::StatusOr<ModelInfo> info = (*store)->Publish(args[2], file, TaggedSignature());
    if (!info.ok()) {
      std::cerr << info.status() << "\n";
      return 1;
    }
    if (args.size() == 5) {
      if (absl::Status s = (*store)->SetAlias(args[2], args[4], info->version); !s.ok()) {
        std::cerr << s << "\n";
        return 1;
      }
    }
    std::cout << info->version << std::endl;
    return 0;
  }
  // package-dir: prints the folder of the test packages (tests/models/make_packages.py).
  if (args.size() == 1 && args[0] == "package-dir") {
#ifdef MAAS_TEST_PACKAGES_DIR
    std::cout << MAAS_TEST_PACKAGES_DIR << std::endl;
#endif
    return 0;
  }
  // maasd-store <root>: the models maasd's conformance tests (tests/maasd) serve.
  if (args.size() == 2 && args[0] == "maasd-store") {
    auto store = ModelStore::Open(args[1]);
    if (!store.ok()) return 1;
    const fs::path scratch = fs::path(args[1]).parent_path();
    const auto publish = [&](const std::string& name, const std::string& source,
                             const ModelSignature& signature,
                             const std::vector<std::pair<std::string, at::Tensor>>& parameters =
                                 {}) {
      const fs::path file = scratch / (name + ".pt");
      SaveScript(file, source, parameters);
      absl::StatusOr<ModelInfo> info = (*store)->Publish(name, file, signature);
      if (!info.ok()) std::cerr << name << ": " << info.status() << "\n";
      return info.ok();
    };
    bool ok = publish("identity", "def forward(self, x: Tensor) -> Tensor:\n  return x\n",
                      {{{"x", torch::kFloat32, {4}}}, {{"y", torch::kFloat32, {4}}}});
    // One echo model per datatype the protocol and LibTorch share.
    const std::vector<std::pair<std::string, c10::ScalarType>> dtypes = {
        {"bool", torch::kBool},   {"uint8", torch::kUInt8},  {"int8", torch::kInt8},
        {"int16", torch::kInt16}, {"int32", torch::kInt32},  {"int64", torch::kInt64},
        {"fp16", torch::kHalf},   {"bf16", torch::kBFloat16}, {"fp32", torch::kFloat32},
        {"fp64", torch::kFloat64}};
    for (const auto& [suffix, dtype] : dtypes) {
      ok &= publish("echo_" + suffix, "def forward(self, x: Tensor) -> Tensor:\n  return x\n",
                    {{{"x", dtype, {3}}}, {{"y", dtype, {3}}}});
    }
    ok &= publish("pair",
                  "def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:\n"
                  "  return (a + b.float(), a - b.float())\n",
                  {{{"a", torch::kFloat32, {2}}, {"b", torch::kInt64, {2}}},
                   {{"sum", torch::kFloat32, {2}}, {"difference", torch::kFloat32, {2}}}});
    ok &= publish("picky",
                  "def forward(self, x: Tensor) -> Tensor:\n"
                  "  assert bool(torch.all(x >= 0)), 'negative input is not allowed'\n"
                  "  return x * 2.0\n",
                  {{{"x", torch::kFloat32, {2}}}, {{"y", torch::kFloat32, {2}}}});
    // About 30-60 ms per call (forty products of 384x384 matrices; LibTorch 2.15 with MKL on
    // one or two cores), whatever the batch.
    ok &= publish("slow",
                  "def forward(self, x: Tensor) -> Tensor:\n"
                  "  h = self.w\n"
                  "  for i in range(40):\n"
                  "    h = torch.tanh(torch.mm(h, self.w))\n"
                  "  return x + h.sum() * 0.0\n",
                  {{{"x", torch::kFloat32, {2}}}, {{"y", torch::kFloat32, {2}}}},
                  {{"w", torch::full({384, 384}, 0.001f)}});
    // Time in proportion to the rows: well under 1 ms for one, tens of ms for 256 (maasd's
    // hostile-client suite: a batch far larger than any measured must not run on a network
    // thread).
    ok &= publish("rows",
                  "def forward(self, x: Tensor) -> Tensor:\n"
                  "  h = x\n"
                  "  for i in range(10):\n"
                  "    h = torch.tanh(torch.mm(h, self.w))\n"
                  "  return h\n",
                  {{{"x", torch::kFloat32, {512}}}, {{"y", torch::kFloat32, {512}}}},
                  {{"w", torch::full({512, 512}, 0.001f)}});
    fs::path tagged = scratch / "tagged-1.pt";
    SaveTaggedModel(tagged, 1.0f);
    ok &= (*store)->Publish("tagged", tagged, TaggedSignature()).ok();
    return ok ? 0 : 1;
  }
  // publish-mlp <root>: the MLP 512-1024-1024-10 of maasd_bench (random weights), as "mlp", for
  // scripts/perf-analyzer.
  if (args.size() == 2 && args[0] == "publish-mlp") {
    auto store = ModelStore::Open(args[1]);
    if (!store.ok()) return 1;
    const fs::path file = fs::path(args[1]).parent_path() / "mlp.pt";
    torch::manual_seed(0);
    SaveScript(file,
               "def forward(self, x: Tensor) -> Tensor:\n"
               "  h = torch.relu(torch.addmm(self.b1, x, self.w1))\n"
               "  h = torch.relu(torch.addmm(self.b2, h, self.w2))\n"
               "  return torch.addmm(self.b3, h, self.w3)\n",
               {{"w1", torch::randn({512, 1024}) * 0.03}, {"b1", torch::zeros({1024})},
                {"w2", torch::randn({1024, 1024}) * 0.03}, {"b2", torch::zeros({1024})},
                {"w3", torch::randn({1024, 10}) * 0.03}, {"b3", torch::zeros({10})}});
    absl::StatusOr<ModelInfo> info = (*store)->Publish(
        "mlp", file, {{{"x", torch::kFloat32, {512}}}, {{"y", torch::kFloat32, {10}}}});
    if (!info.ok()) std::cerr << info.status() << "\n";
    return info.ok() ? 0 : 1;
  }
  // set-alias <root> <name> <alias> <version>
  if (args.size() == 5 && args[0] == "set-alias") {
    auto store = ModelStore::Open(args[1]);
    if (!store.ok()) return 1;
    absl::Status s = (*store)->SetAlias(args[2], args[3], std::stoll(args[4]));
    if (!s.ok()) std::cerr << s << "\n";
    return s.ok() ? 0 : 1;
  }
  std::cerr << "unknown child command\n";
  return 2;
}

}  // namespace maas::testing
