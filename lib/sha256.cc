#include "sha256.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <utility>
#include <vector>

#include "fmt/core.h"

namespace maas::internal {
namespace {

// OpenSSL fails these calls only when out of memory or misconfigured beyond repair (no SHA-256
// in libcrypto); there is no sensible way on, and a wrong hash would be worse.
void Check(int ok, const char* what) {
  if (ok == 1) return;
  std::fprintf(stderr, "maas: OpenSSL %s failed for SHA-256\n", what);
  std::abort();
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (context_ == nullptr) Check(0, "EVP_MD_CTX_new");
  Check(EVP_DigestInit_ex(context_, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_); }

Sha256::Sha256(Sha256&& other) noexcept : context_(std::exchange(other.context_, nullptr)) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  std::swap(context_, other.context_);
  return *this;
}

void Sha256::Update(const void* data, size_t size) {
  Check(EVP_DigestUpdate(context_, data, size), "EVP_DigestUpdate");
}

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  Check(EVP_DigestFinal_ex(context_, digest, &length), "EVP_DigestFinal_ex");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

absl::StatusOr<std::string> Sha256OfFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(fmt::format("cannot open {} for reading", path.string()));
  Sha256 hash;
  std::vector<char> chunk(1 << 20);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    hash.Update(chunk.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return absl::InternalError(fmt::format("error reading {}", path.string()));
  return hash.HexDigest();
}

}  // namespace maas::internal
