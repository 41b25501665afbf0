#include "serving/input_names.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "fmt/core.h"

namespace maas::internal {

absl::StatusOr<std::vector<at::Tensor>> ArrangeByName(const std::vector<at::Tensor>& inputs,
                                                      const std::vector<std::string>& names,
                                                      const ModelSignature& signature,
                                                      int64_t version, std::string_view label) {
  std::vector<std::string> expected;
  for (const TensorSpec& spec : signature.inputs) expected.push_back(spec.name);
  const auto refuse = [&](std::string what) {
    return absl::InvalidArgumentError(fmt::format("{} version {}: {}; its inputs are {}", label,
                                                  version, what, absl::StrJoin(expected, ", ")));
  };
  if (names.size() != inputs.size()) {
    return refuse(fmt::format("{} input names for {} inputs", names.size(), inputs.size()));
  }
  std::vector<at::Tensor> arranged(signature.inputs.size());
  std::vector<bool> given(signature.inputs.size(), false);
  for (size_t i = 0; i < names.size(); ++i) {
    const auto found = std::find(expected.begin(), expected.end(), names[i]);
    if (found == expected.end()) return refuse(fmt::format("no input is named '{}'", names[i]));
    const size_t position = static_cast<size_t>(found - expected.begin());
    if (given[position]) return refuse(fmt::format("input '{}' is given twice", names[i]));
    given[position] = true;
    arranged[position] = inputs[i];
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!given[i]) return refuse(fmt::format("input '{}' is missing", expected[i]));
  }
  return arranged;
}

}  // namespace maas::internal
