// SHA-256, streaming, by OpenSSL's libcrypto (SHA-NI / AVX2 code paths: several times our own
// implementation's speed, docs/performance.md). Used to fingerprint artifacts in the store.
#ifndef MAAS_LIB_SHA256_H_
#define MAAS_LIB_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header.

namespace maas::internal {

// Incremental SHA-256. This class is thread-compatible. Move-only.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the digest as 64 lower-case hex characters. Call once.
  std::string HexDigest();

 private:
  evp_md_ctx_st* context_;
};

// Returns the hex SHA-256 of a whole file. Internal naming the file if it cannot be read.
absl::StatusOr<std::string> Sha256OfFile(const std::filesystem::path& path);

}  // namespace maas::internal

#endif  // MAAS_LIB_SHA256_H_
