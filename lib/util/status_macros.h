// Early-return helpers for absl::Status and absl::StatusOr (Abseil 20220623 has none).
#ifndef MAAS_LIB_STATUS_MACROS_H_
#define MAAS_LIB_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define MAAS_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status maas_status_ = (expr);        \
    if (!maas_status_.ok()) return maas_status_; \
  } while (false)

#define MAAS_STATUS_CONCAT_INNER_(a, b) a##b
#define MAAS_STATUS_CONCAT_(a, b) MAAS_STATUS_CONCAT_INNER_(a, b)

// `MAAS_ASSIGN_OR_RETURN(auto x, StatusOrExpr());` assigns the value or returns the error.
#define MAAS_ASSIGN_OR_RETURN(lhs, expr) \
  MAAS_ASSIGN_OR_RETURN_IMPL_(MAAS_STATUS_CONCAT_(maas_statusor_, __LINE__), lhs, expr)

#define MAAS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // MAAS_LIB_STATUS_MACROS_H_
