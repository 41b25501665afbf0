// Inputs given by name (ServerRequestOptions::input_names), arranged in a model's order.
#ifndef MAAS_LIB_INPUT_NAMES_H_
#define MAAS_LIB_INPUT_NAMES_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "maas/types.h"

namespace maas::internal {

// `inputs`, named by `names`, in the order of `signature` (of `version` of the model `label`).
// InvalidArgument, listing the model's inputs, when a name is unknown, repeated or missing, or
// the counts differ. Arranged after routing, since versions of a split may order their inputs
// differently.
absl::StatusOr<std::vector<at::Tensor>> ArrangeByName(const std::vector<at::Tensor>& inputs,
                                                      const std::vector<std::string>& names,
                                                      const ModelSignature& signature,
                                                      int64_t version, std::string_view label);

}  // namespace maas::internal

#endif  // MAAS_LIB_INPUT_NAMES_H_
