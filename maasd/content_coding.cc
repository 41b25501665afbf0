#include "content_coding.h"

#include <zlib.h>

#include <boost/beast/core/string.hpp>

#include "fmt/core.h"

namespace maasd {
namespace {

enum class Result { kDone, kTooLarge, kBadData };

// Inflates with zlib's `window_bits` (15 + 32: zlib or gzip, detected; -15: raw deflate).
Result InflateWith(std::string_view body, int window_bits, size_t max_bytes, std::string* out,
                   std::string* error) {
  z_stream stream{};
  if (inflateInit2(&stream, window_bits) != Z_OK) {
    *error = "zlib cannot start";
    return Result::kBadData;
  }
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());  // The body limit keeps it under 4 GiB.
  out->clear();
  constexpr size_t kChunk = size_t{64} << 10;
  int code = Z_OK;
  while (code != Z_STREAM_END) {
    if (out->size() >= max_bytes + 1) {
      inflateEnd(&stream);
      return Result::kTooLarge;
    }
    // Never more than one byte past the limit: enough to know it was passed.
    const size_t room = std::min(kChunk, max_bytes + 1 - out->size());
    const size_t before = out->size();
    out->resize(before + room);
    stream.next_out = reinterpret_cast<Bytef*>(out->data() + before);
    stream.avail_out = static_cast<uInt>(room);
    code = inflate(&stream, Z_NO_FLUSH);
    out->resize(before + room - stream.avail_out);
    if (code == Z_BUF_ERROR && stream.avail_in == 0) code = Z_DATA_ERROR;  // Truncated.
    if (code != Z_OK && code != Z_STREAM_END && code != Z_BUF_ERROR) {
      *error = stream.msg != nullptr ? stream.msg : "invalid data";
      inflateEnd(&stream);
      return Result::kBadData;
    }
  }
  inflateEnd(&stream);
  if (out->size() > max_bytes) return Result::kTooLarge;
  if (stream.avail_in != 0) {
    *error = fmt::format("{} bytes follow the end of the compressed data", stream.avail_in);
    return Result::kBadData;
  }
  return Result::kDone;
}

bool Is(std::string_view a, std::string_view b) { return boost::beast::iequals(a, b); }

}  // namespace

bool IsSupportedCoding(std::string_view coding) {
  return Is(coding, "gzip") || Is(coding, "x-gzip") || Is(coding, "deflate");
}

absl::StatusOr<std::string> Inflate(std::string_view body, std::string_view coding,
                                    size_t max_bytes) {
  if (!IsSupportedCoding(coding)) {
    return absl::InvalidArgumentError(fmt::format(
        "Content-Encoding '{}' is not supported; send gzip, deflate or no encoding", coding));
  }
  std::string out, error;
  Result result = InflateWith(body, 15 + 32, max_bytes, &out, &error);
  if (result == Result::kBadData && Is(coding, "deflate")) {
    std::string raw_error;  // "deflate" sent raw, without zlib's header, as some clients do.
    result = InflateWith(body, -15, max_bytes, &out, &raw_error);
  }
  switch (result) {
    case Result::kDone:
      return out;
    case Result::kTooLarge:
      return absl::ResourceExhaustedError(fmt::format(
          "the request body inflates ({}) to more than the limit of {} bytes", coding,
          max_bytes));
    case Result::kBadData:
      break;
  }
  return absl::InvalidArgumentError(
      fmt::format("the request body is not valid {} data: {}", coding, error));
}

}  // namespace maasd
