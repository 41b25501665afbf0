// Fuzzes the parsers of the store's files: whatever bytes a manifest.json, model.json or the
// store marker holds (a corrupt disk, a hostile writer), parsing returns a status and never
// crashes, and what parses is written back as text that parses to the same thing.
//   scripts/fuzz [seconds]   (docs/building.md, "Fuzzing")
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "store/archive_check.h"
#include "util/json.h"
#include "store/manifest.h"

namespace {

void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_store_files: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace maas::internal;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // The TorchScript archive check must answer, whatever the bytes.
  (void)CheckZipArchive(text, "fuzzed archive");
  if (absl::StatusOr<Json> json = ParseJson(text); json.ok()) {
    absl::StatusOr<Json> again = ParseJson(DumpJson(*json));
    if (!again.ok() || *again != *json) Fail("JSON does not survive a dump and a parse");
  }
  if (absl::StatusOr<maas::ModelInfo> info = ManifestFromText(text); info.ok()) {
    absl::StatusOr<maas::ModelInfo> again = ManifestFromText(ManifestToText(*info));
    if (!again.ok() || again->name != info->name || again->version != info->version ||
        again->sha256 != info->sha256 || again->size_bytes != info->size_bytes ||
        again->signature != info->signature || again->labels != info->labels) {
      Fail("a manifest does not survive a write and a read");
    }
  }
  if (absl::StatusOr<ModelMeta> meta = ModelMetaFromText(text); meta.ok()) {
    absl::StatusOr<ModelMeta> again = ModelMetaFromText(ModelMetaToText("m", *meta));
    if (!again.ok() || again->last_version != meta->last_version ||
        again->aliases != meta->aliases) {
      Fail("a model.json does not survive a write and a read");
    }
  }
  return 0;
}
