#include "tls_files.h"

#include <fstream>
#include <sstream>

#include "fmt/core.h"

namespace maasd {
namespace {

absl::StatusOr<std::string> ReadPem(std::string_view flag, const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  if (!file) {
    return absl::InvalidArgumentError(fmt::format("--{}={}: cannot read the file", flag, path));
  }
  std::string text = contents.str();
  if (text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        fmt::format("--{}={}: not a PEM file (no -----BEGIN line)", flag, path));
  }
  return text;
}

}  // namespace

absl::StatusOr<TlsFiles> ReadTlsFiles(const std::string& cert_file, const std::string& key_file,
                                      const std::string& client_ca_file) {
  TlsFiles files;
  absl::StatusOr<std::string> cert = ReadPem("tls-cert", cert_file);
  if (!cert.ok()) return cert.status();
  files.cert = *std::move(cert);
  absl::StatusOr<std::string> key = ReadPem("tls-key", key_file);
  if (!key.ok()) return key.status();
  files.key = *std::move(key);
  if (!client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("tls-client-ca", client_ca_file);
    if (!ca.ok()) return ca.status();
    files.client_ca = *std::move(ca);
  }
  return files;
}

}  // namespace maasd
