// The one place where exceptions from LibTorch (and anything else) become absl::Status.
#ifndef MAAS_LIB_TORCH_ERRORS_H_
#define MAAS_LIB_TORCH_ERRORS_H_

#include <string_view>

#include "absl/status/status.h"

namespace maas::internal {

// Call only inside a catch block. Returns a Status with `code` and the message
// "<context>: <what the exception said>", keeping LibTorch's message but not its C++ backtrace.
absl::Status StatusFromCurrentException(absl::StatusCode code, std::string_view context);

}  // namespace maas::internal

#endif  // MAAS_LIB_TORCH_ERRORS_H_
