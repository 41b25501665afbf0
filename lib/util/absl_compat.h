// Bridges between std::string_view and Debian's Abseil, whose absl::string_view is its own
// type (built with ABSL_OPTION_USE_STD_STRING_VIEW 0), so the two do not convert implicitly.
#ifndef MAAS_LIB_ABSL_COMPAT_H_
#define MAAS_LIB_ABSL_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"
#include "fmt/format.h"

namespace maas::internal {

inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view FromAbsl(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace maas::internal

#ifndef ABSL_USES_STD_STRING_VIEW
// Lets fmt print absl::string_view, such as absl::Status::message().
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};
#endif

#endif  // MAAS_LIB_ABSL_COMPAT_H_
