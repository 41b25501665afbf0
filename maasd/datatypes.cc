#include "datatypes.h"

#include <array>
#include <utility>

namespace maasd {
namespace {

// BF16 is not in the protocol's table, but Triton and KServe clients send it.
constexpr std::array<std::pair<std::string_view, c10::ScalarType>, 10> kDatatypes = {{
    {"BOOL", c10::ScalarType::Bool},
    {"UINT8", c10::ScalarType::Byte},
    {"INT8", c10::ScalarType::Char},
    {"INT16", c10::ScalarType::Short},
    {"INT32", c10::ScalarType::Int},
    {"INT64", c10::ScalarType::Long},
    {"FP16", c10::ScalarType::Half},
    {"BF16", c10::ScalarType::BFloat16},
    {"FP32", c10::ScalarType::Float},
    {"FP64", c10::ScalarType::Double},
}};

}  // namespace

std::optional<c10::ScalarType> DtypeFromDatatype(std::string_view datatype) {
  for (const auto& [name, dtype] : kDatatypes) {
    if (name == datatype) return dtype;
  }
  return std::nullopt;
}

std::string_view DatatypeOf(c10::ScalarType dtype) {
  for (const auto& [name, known] : kDatatypes) {
    if (known == dtype) return name;
  }
  return {};
}

}  // namespace maasd
