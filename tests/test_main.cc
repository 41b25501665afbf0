// The tests' main: runs GoogleTest, or, with --maas-child, a helper command that tests start as a
// separate process (concurrent publishers, a publisher killed mid-way).
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "test_util.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--maas-child") == 0) {
    return maas::testing::RunChildCommand(std::vector<std::string>(argv + 2, argv + argc));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
