// Cheap structural checks of a TorchScript archive (a zip file) before LibTorch reads it.
#ifndef MAAS_LIB_ARCHIVE_CHECK_H_
#define MAAS_LIB_ARCHIVE_CHECK_H_

#include <string_view>

#include "absl/status/status.h"

namespace maas::internal {

// Checks that `bytes` is a zip archive whose directory and entries lie within it, as LibTorch's
// reader expects, so that a damaged or hostile file is refused before LibTorch allocates for
// sizes it declares: an end-of-directory record (zip64 too) within the file, a central
// directory within the file, every entry's local header and data within the file, stored
// entries (what PyTorch writes) exactly as large as declared and deflated ones at most 1032
// times larger (deflate's limit), no other compression, at most 2^20 entries.
// InvalidArgument naming `what` (e.g. the artifact's path), the entry and the sizes otherwise.
// This is not a full zip validation (CRCs are LibTorch's to check, and the SHA-256 of the
// store covers corruption at rest); see docs/session.md on untrusted models.
absl::Status CheckZipArchive(std::string_view bytes, std::string_view what);

}  // namespace maas::internal

#endif  // MAAS_LIB_ARCHIVE_CHECK_H_
