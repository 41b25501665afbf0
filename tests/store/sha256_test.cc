// SHA-256, the store's integrity check.
#include <string>

#include "gtest/gtest.h"
#include "store/sha256.h"
#include "test_util.h"

namespace maas {
namespace {

std::string Sha(const std::string& data) {
  internal::Sha256 hash;
  hash.Update(data);
  return hash.HexDigest();
}

TEST(Sha256Test, MatchesFipsVectors) {
  EXPECT_EQ(Sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, StreamingEqualsOneShotAtEveryBlockBoundary) {
  std::string data;
  for (int i = 0; i < 300; ++i) data += static_cast<char>(i * 7 + 3);
  for (size_t split = 0; split <= data.size(); split += 13) {
    internal::Sha256 hash;
    hash.Update(data.substr(0, split));
    hash.Update(data.substr(split));
    EXPECT_EQ(hash.HexDigest(), Sha(data)) << "split at " << split;
  }
}

TEST(Sha256Test, HashesFiles) {
  testing::TempDir dir;
  testing::WriteBytes(dir.path() / "f", "abc");
  EXPECT_EQ(*internal::Sha256OfFile(dir.path() / "f"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(internal::Sha256OfFile(dir.path() / "missing").ok());
}

}  // namespace
}  // namespace maas
