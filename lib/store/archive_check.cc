#include "store/archive_check.h"

#include <cstdint>
#include <optional>
#include <string>

#include "fmt/core.h"

namespace maas::internal {
namespace {

constexpr uint32_t kEndOfDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfDirectory = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kDirectoryEntry = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint64_t kMaxEntries = uint64_t{1} << 20;
constexpr uint64_t kDeflateMaxRatio = 1032;

// Little-endian reads within `bytes`; nullopt past its end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  std::optional<uint64_t> Get(uint64_t at, int size) const {
    if (at > bytes_.size() || static_cast<uint64_t>(size) > bytes_.size() - at) return std::nullopt;
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; --i) {
      value = (value << 8) | static_cast<unsigned char>(bytes_[at + static_cast<uint64_t>(i)]);
    }
    return value;
  }
  uint64_t size() const { return bytes_.size(); }
  std::string_view Slice(uint64_t at, uint64_t size) const { return bytes_.substr(at, size); }

 private:
  std::string_view bytes_;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> CheckZipArchive(std::string_view bytes,
                                                         std::string_view what) {
  auto refuse = [&](const std::string& why) {
    return absl::InvalidArgumentError(fmt::format(
        "{} is not a valid model archive (TorchScript or AOTInductor package): {}", what, why));
  };
  const Reader in(bytes);
  const uint64_t size = in.size();
  if (size < 22) return refuse(fmt::format("{} bytes, too short for a zip file", size));

  // The end-of-directory record: within the last 22 + 65535 bytes (its comment's maximum).
  std::optional<uint64_t> end;
  for (uint64_t at = size - 22;; --at) {
    if (in.Get(at, 4) == kEndOfDirectory) {
      end = at;
      break;
    }
    if (at == 0 || size - 22 - at >= 65535) break;
  }
  if (!end) return refuse("no zip end-of-directory record");
  uint64_t entries = *in.Get(*end + 10, 2);
  uint64_t directory_size = *in.Get(*end + 12, 4);
  uint64_t directory_at = *in.Get(*end + 16, 4);
  uint64_t directory_limit = *end;  // The directory ends before the record(s) that locate it.
  if (*end >= 20 && in.Get(*end - 20, 4) == kZip64Locator) {
    const uint64_t zip64_at = *in.Get(*end - 20 + 8, 8);
    if (zip64_at > *end - 20 || in.Get(zip64_at, 4) != kZip64EndOfDirectory ||
        !in.Get(zip64_at + 48, 8)) {
      return refuse("its zip64 end-of-directory record is missing or outside the file");
    }
    entries = *in.Get(zip64_at + 32, 8);
    directory_size = *in.Get(zip64_at + 40, 8);
    directory_at = *in.Get(zip64_at + 48, 8);
    directory_limit = zip64_at;
  }
  if (entries > kMaxEntries) {
    return refuse(
        fmt::format("it declares {} entries; at most {} are accepted", entries, kMaxEntries));
  }
  if (directory_at > directory_limit || directory_size > directory_limit - directory_at) {
    return refuse(
        fmt::format("its directory ({} bytes at offset {}) lies outside the file ({} bytes)",
                    directory_size, directory_at, size));
  }
  if (entries * 46 > directory_size) {
    return refuse(
        fmt::format("{} entries cannot fit a directory of {} bytes", entries, directory_size));
  }

  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(entries));
  uint64_t at = directory_at;
  const uint64_t directory_end = directory_at + directory_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (at + 46 > directory_end || in.Get(at, 4) != kDirectoryEntry) {
      return refuse(fmt::format("directory entry {} is damaged", i));
    }
    const uint64_t method = *in.Get(at + 10, 2);
    uint64_t compressed = *in.Get(at + 20, 4);
    uint64_t uncompressed = *in.Get(at + 24, 4);
    const uint64_t name_length = *in.Get(at + 28, 2);
    const uint64_t extra_length = *in.Get(at + 30, 2);
    const uint64_t comment_length = *in.Get(at + 32, 2);
    uint64_t local_at = *in.Get(at + 42, 4);
    const uint64_t next = at + 46 + name_length + extra_length + comment_length;
    if (next > directory_end) return refuse(fmt::format("directory entry {} is damaged", i));
    const std::string name(in.Slice(at + 46, name_length));
    // Zip64 sizes and offset, for the fields saturated in the entry, in this order.
    for (uint64_t extra = at + 46 + name_length;
         extra + 4 <= at + 46 + name_length + extra_length;) {
      const uint64_t id = *in.Get(extra, 2), length = *in.Get(extra + 2, 2);
      if (id == 0x0001) {
        uint64_t field = extra + 4;
        for (uint64_t* value : {&uncompressed, &compressed, &local_at}) {
          if (*value != 0xFFFFFFFF) continue;
          if (field + 8 > extra + 4 + length)
            return refuse(fmt::format("entry '{}' is damaged", name));
          *value = *in.Get(field, 8);
          field += 8;
        }
      }
      extra += 4 + length;
    }
    if (method != 0 && method != 8) {
      return refuse(
          fmt::format("entry '{}' uses compression method {}; expected 0 (stored) or 8 "
                      "(deflate)",
                      name, method));
    }
    if (method == 0 && uncompressed != compressed) {
      return refuse(fmt::format("stored entry '{}' declares {} bytes but holds {}", name,
                                uncompressed, compressed));
    }
    if (method == 8 && uncompressed / kDeflateMaxRatio > compressed) {
      return refuse(
          fmt::format("deflated entry '{}' declares {} bytes from {}, more than deflate "
                      "can expand",
                      name, uncompressed, compressed));
    }
    // Its local header and data must lie before the directory.
    if (local_at > directory_at || in.Get(local_at, 4) != kLocalHeader ||
        local_at + 30 > directory_at) {
      return refuse(fmt::format("entry '{}' points outside the file (offset {})", name, local_at));
    }
    const uint64_t data_at = local_at + 30 + *in.Get(local_at + 26, 2) + *in.Get(local_at + 28, 2);
    if (data_at > directory_at || compressed > directory_at - data_at) {
      return refuse(
          fmt::format("entry '{}' declares {} bytes at offset {}, beyond the {} bytes of "
                      "the file",
                      name, compressed, data_at, size));
    }
    names.push_back(name);
    at = next;
  }
  return names;
}

}  // namespace maas::internal
