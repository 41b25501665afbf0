// Request bodies sent compressed (Content-Encoding: gzip or deflate, as tritonclient's
// request_compression_algorithm sends them), inflated under a size limit.
#ifndef MAASD_CONTENT_CODING_H_
#define MAASD_CONTENT_CODING_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace maasd {

// Inflates `body`, coded as `coding` ("gzip", "x-gzip" or "deflate", any case; deflate as
// zlib's format or raw, as clients send either), to at most `max_bytes`.
// ResourceExhausted as soon as the output would pass `max_bytes` (a decompression bomb is
// stopped there, not after); InvalidArgument for data that is not in that coding, or for a
// coding other than those (the caller answers 415 for those: see IsSupportedCoding).
absl::StatusOr<std::string> Inflate(std::string_view body, std::string_view coding,
                                    size_t max_bytes);

// Whether Inflate takes `coding`.
bool IsSupportedCoding(std::string_view coding);

}  // namespace maasd

#endif  // MAASD_CONTENT_CODING_H_
