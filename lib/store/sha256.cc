#include "store/sha256.h"

#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
  // O_NONBLOCK: a FIFO in a store must not hang the reader; it is refused below.
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    return absl::InternalError(
        fmt::format("cannot open {} for reading: {}", path.string(), std::strerror(errno)));
  }
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(
        fmt::format("{} is not a regular file; a store holds only regular files", path.string()));
  }
  Sha256 hash;
  std::vector<char> chunk(1 << 20);
  while (true) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return absl::InternalError(
          fmt::format("error reading {}: {}", path.string(), std::strerror(error)));
    }
    if (n == 0) break;
    hash.Update(chunk.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return hash.HexDigest();
}

}  // namespace maas::internal
