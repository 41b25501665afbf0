// What maas reads from an AOTInductor package (.pt2) without loading it: the device it was
// compiled for and the input constraints compiled into it, so that a package that disagrees with
// its declared signature is refused at publish, and batches stay within what it accepts.
#ifndef MAAS_LIB_AOTI_PACKAGE_H_
#define MAAS_LIB_AOTI_PACKAGE_H_

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "maas/types.h"

namespace maas::internal {

// The sizes one dimension of a package's input may take: min == max for a static dimension;
// max == kUnbounded when the export gave no upper bound.
struct DimRange {
  static constexpr int64_t kUnbounded = INT64_MAX;
  int64_t min = 0;
  int64_t max = kUnbounded;
  bool is_static() const { return min == max; }
};

// One input as the package's compiled input checks describe it.
struct PackageInput {
  std::optional<c10::ScalarType> dtype;  // nullopt when the package does not check it
  std::vector<DimRange> dims;            // rank = dims.size()
};

// What a package holds, read from its archive.
struct PackageDescription {
  std::string model_name;       // the folder under data/aotinductor/ ("model" by default)
  std::string device;           // "cpu" or "cuda" (AOTI_DEVICE_KEY)
  std::string cpu_isa;          // e.g. "AVX512 AVX512_VNNI" (AOTI_CPU_ISA); may be empty
  int64_t num_outputs = 0;
  std::vector<PackageInput> inputs;
};

// Whether a zip archive's entry names are those of an AOTInductor package (a
// <archive>/data/aotinductor/ folder), as opposed to a TorchScript archive. Works on the names
// alone: no LibTorch, no decompression.
bool IsAotiPackage(const std::vector<std::string>& zip_entry_names);

// Reads `bytes` (a whole .pt2 file that passed CheckZipArchive) and describes the package.
// InvalidArgument naming `what` when it is not an AOTInductor package maas can read: no model
// folder, several models and none named "model", no generated wrapper source (maas reads the
// input checks compiled into it), unreadable metadata. Never throws.
absl::StatusOr<PackageDescription> InspectPackage(std::string_view bytes, std::string_view what);

// Checks `signature` (declared at publish) against the package and returns it with the batch
// bounds the package imposes (ModelSignature::min_batch_size / max_batch_size, intersected with
// any declared ones). InvalidArgument naming the input and the dimension when they disagree:
// counts, dtypes, ranks, fixed sizes; a dynamic non-batch dimension declared as any size (maas
// checks ranges of the batch dimension only: declare the size you serve); a batch range that the
// declared bounds leave empty.
absl::StatusOr<ModelSignature> ReconcileSignature(const PackageDescription& package,
                                                  ModelSignature signature);

}  // namespace maas::internal

#endif  // MAAS_LIB_AOTI_PACKAGE_H_
