// The PEM files of maasd's TLS (--tls-cert, --tls-key, --tls-client-ca), read once for both
// protocols.
#ifndef MAASD_TLS_FILES_H_
#define MAASD_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"

namespace maasd {

struct TlsFiles {
  std::string cert;       // PEM: the server's certificate, then its chain.
  std::string key;        // PEM: its private key.
  std::string client_ca;  // PEM: the CAs that sign client certificates; empty: no mutual TLS.
};

// Reads the files (`client_ca_file` may be empty). InvalidArgument naming the flag and the
// file that cannot be read, or is not PEM.
absl::StatusOr<TlsFiles> ReadTlsFiles(const std::string& cert_file, const std::string& key_file,
                                      const std::string& client_ca_file);

}  // namespace maasd

#endif  // MAASD_TLS_FILES_H_
