// Cheap structural checks of a model archive (a zip file: TorchScript or an AOTInductor package)
// before LibTorch reads it.
#ifndef MAAS_LIB_ARCHIVE_CHECK_H_
#define MAAS_LIB_ARCHIVE_CHECK_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace maas::internal {

// Checks that `bytes` is a zip archive whose directory and entries lie within it, as LibTorch's
// reader expects, so that a damaged or hostile file is refused before LibTorch allocates for
// sizes it declares: an end-of-directory record (zip64 too) within the file, a central
// directory within the file, every entry's local header and data within the file, stored
// entries (what PyTorch writes) exactly as large as declared and deflated ones at most 1032
// times larger (deflate's limit), no other compression, at most 2^20 entries.
// Returns the entries' names, in the directory's order. InvalidArgument naming `what` (e.g. the
// artifact's path), the entry and the sizes otherwise.
// This is not a full zip validation (CRCs are LibTorch's to check, and the SHA-256 of the
// store covers corruption at rest); see docs/session.md on untrusted models.
absl::StatusOr<std::vector<std::string>> CheckZipArchive(std::string_view bytes,
                                                         std::string_view what);

}  // namespace maas::internal

#endif  // MAAS_LIB_ARCHIVE_CHECK_H_
