// The Open Inference Protocol's tensor datatypes ("FP32", "INT64", ...) and LibTorch's dtypes.
#ifndef MAASD_DATATYPES_H_
#define MAASD_DATATYPES_H_

#include <c10/core/ScalarType.h>

#include <optional>
#include <string_view>

namespace maasd {

// The dtype a protocol datatype names, or nullopt for one that no LibTorch dtype holds (BYTES,
// UINT16, UINT32, UINT64) or an unknown name.
std::optional<c10::ScalarType> DtypeFromDatatype(std::string_view datatype);

// The protocol's name of `dtype` ("FP32"), or an empty view for a dtype it cannot carry.
std::string_view DatatypeOf(c10::ScalarType dtype);

}  // namespace maasd

#endif  // MAASD_DATATYPES_H_
