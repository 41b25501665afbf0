#include "util/cpu_cores.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace maas::internal {
namespace {

// The whole of a small file (the kernel's pseudo-files), or an empty string.
std::string ReadSmallFile(const char* path) {
  std::string text;
  if (FILE* file = std::fopen(path, "r")) {
    char buffer[256];
    for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, file)) > 0;) text.append(buffer, n);
    std::fclose(file);
  }
  return text;
}

std::optional<long long> Number(std::string_view text) {
  const absl::string_view stripped =
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  long long value = 0;
  const auto [end, error] =
      std::from_chars(stripped.data(), stripped.data() + stripped.size(), value);
  if (error != std::errc() || end != stripped.data() + stripped.size()) return std::nullopt;
  return value;
}

std::optional<int> Cores(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<int>(std::max(1LL, (quota + period - 1) / period));
}

// The quota of this process's cgroup: v2 (the unified hierarchy, where a container sees its
// own cgroup at the root), else v1's cpu controller.
std::optional<int> CgroupCores() {
  std::optional<int> cores = CoresOfCpuMax(ReadSmallFile("/sys/fs/cgroup/cpu.max"));
  // Outside a cgroup namespace, the process's own cgroup is further down the hierarchy.
  for (absl::string_view line : absl::StrSplit(ReadSmallFile("/proc/self/cgroup"), '\n')) {
    if (line.substr(0, 3) != "0::" || line.size() <= 4) continue;
    const std::string path = "/sys/fs/cgroup" + std::string(line.substr(3)) + "/cpu.max";
    if (std::optional<int> own = CoresOfCpuMax(ReadSmallFile(path.c_str()))) {
      cores = cores ? std::min(*cores, *own) : *own;
    }
  }
  if (cores) return cores;
  for (const char* folder : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
    const std::string base = folder;
    if (std::optional<int> v1 =
            CoresOfCfsQuota(ReadSmallFile((base + "/cpu.cfs_quota_us").c_str()),
                            ReadSmallFile((base + "/cpu.cfs_period_us").c_str()))) {
      return v1;
    }
  }
  return std::nullopt;
}

int ComputeAvailableCores() {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
    cores = std::max(1, std::min(cores, CPU_COUNT(&mask)));
  }
  if (std::optional<int> quota = CgroupCores()) cores = std::min(cores, *quota);
  return cores;
}

}  // namespace

std::optional<int> CoresOfCpuMax(std::string_view text) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())), ' ',
                     absl::SkipEmpty());
  if (fields.size() != 2) return std::nullopt;
  const std::optional<long long> quota = Number({fields[0].data(), fields[0].size()});
  const std::optional<long long> period = Number({fields[1].data(), fields[1].size()});
  if (!quota || !period) return std::nullopt;  // "max": no limit
  return Cores(*quota, *period);
}

std::optional<int> CoresOfCfsQuota(std::string_view quota, std::string_view period) {
  const std::optional<long long> q = Number(quota);
  const std::optional<long long> p = Number(period);
  if (!q || !p) return std::nullopt;
  return Cores(*q, *p);
}

int AvailableCores() {
  static const int cores = ComputeAvailableCores();
  return cores;
}

}  // namespace maas::internal
