// SHA-256 (FIPS 180-4), streaming. Used to fingerprint artifacts in the store.
#ifndef MAAS_LIB_SHA256_H_
#define MAAS_LIB_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace maas::internal {

// Incremental SHA-256. This class is thread-compatible.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the digest as 64 lower-case hex characters. Call once.
  std::string HexDigest();

 private:
  void Compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Returns the hex SHA-256 of a whole file. Internal naming the file if it cannot be read.
absl::StatusOr<std::string> Sha256OfFile(const std::filesystem::path& path);

}  // namespace maas::internal

#endif  // MAAS_LIB_SHA256_H_
