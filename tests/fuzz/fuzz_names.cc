// Fuzzes model names, aliases and version selectors (what requests and store folders carry):
// never a crash, a version number reads back as exactly the text it came from, and no text is
// both an alias and a version number.
//   scripts/fuzz [seconds]   (docs/building.md, "Fuzzing")
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "store/names.h"

namespace {

void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_names: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace maas::internal;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const bool name_ok = ValidateModelName(text).ok();
  const bool alias_ok = ValidateAlias(text).ok();
  if (alias_ok && !name_ok) Fail("an alias that is not a valid name");
  const int64_t folder = ParseVersionFolderName(text);
  if (folder > 0 && (folder > kMaxVersion || std::to_string(folder) != text)) {
    Fail("a version folder name that does not read back as itself");
  }
  if (alias_ok && folder > 0) Fail("text that is both an alias and a version number");
  if (absl::StatusOr<VersionSelector> selector = ParseVersionSelector(text); selector.ok()) {
    if (const int64_t* number = std::get_if<int64_t>(&*selector)) {
      if (*number != folder) Fail("a selector's number differs from the folder rule's");
    } else if (const std::string* alias = std::get_if<std::string>(&*selector)) {
      if (!alias_ok || *alias != text) Fail("a selector's alias is not a valid alias");
    } else if (text != "latest") {
      Fail("only \"latest\" means latest");
    }
  }
  return 0;
}
