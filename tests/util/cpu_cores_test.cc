// The cores the process may use, from its affinity and its cgroup's CPU quota.
#include <thread>

#include "gtest/gtest.h"
#include "util/cpu_cores.h"

namespace maas {
namespace {

using internal::AvailableCores;
using internal::CoresOfCfsQuota;
using internal::CoresOfCpuMax;

// A container's CPU limit, as cgroups write it, becomes the default core count.
TEST(CpuCoresTest, ReadsCgroupQuotas) {
  EXPECT_EQ(CoresOfCpuMax("400000 100000\n"), 4);
  EXPECT_EQ(CoresOfCpuMax("150000 100000"), 2);  // 1.5 cores: rounded up
  EXPECT_EQ(CoresOfCpuMax("50000 100000"), 1);
  EXPECT_EQ(CoresOfCpuMax("max 100000\n"), std::nullopt);  // no limit
  EXPECT_EQ(CoresOfCpuMax(""), std::nullopt);              // no such file
  EXPECT_EQ(CoresOfCpuMax("garbage"), std::nullopt);
  EXPECT_EQ(CoresOfCfsQuota("200000\n", "100000\n"), 2);
  EXPECT_EQ(CoresOfCfsQuota("-1", "100000"), std::nullopt);  // v1's "no limit"
  const int cores = AvailableCores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace maas
