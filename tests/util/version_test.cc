// The library's version as its headers and its binary say it.
#include "gtest/gtest.h"
#include "maas/version.h"

namespace maas {
namespace {

TEST(VersionTest, RuntimeVersionMatchesHeaders) {
  EXPECT_STREQ(Version(), MAAS_VERSION_STRING);
  EXPECT_EQ(std::string(Version()), std::to_string(MAAS_VERSION_MAJOR) + "." +
                                        std::to_string(MAAS_VERSION_MINOR) + "." +
                                        std::to_string(MAAS_VERSION_PATCH));
}

}  // namespace
}  // namespace maas
