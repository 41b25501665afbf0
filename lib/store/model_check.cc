#include "store/model_check.h"

#include <torch/script.h>

#include <string>

#include "util/absl_compat.h"
#include "session/aoti_package.h"
#include "store/archive_check.h"
#include "fmt/core.h"
#include "util/status_macros.h"
#include "store/store_files.h"
#include "session/torch_errors.h"

namespace maas::internal {

namespace {

absl::Status CheckTorchScript(const std::filesystem::path& path, const ModelSignature& signature) {
  try {
    torch::jit::Module module = torch::jit::load(path.string(), torch::kCPU);
    auto forward = module.find_method("forward");
    if (!forward) {
      return absl::InvalidArgumentError(
          fmt::format("{} is a TorchScript module without a forward method", path.string()));
    }
    const std::vector<c10::Argument>& arguments = forward->function().getSchema().arguments();
    size_t total = arguments.empty() ? 0 : arguments.size() - 1;  // minus self
    size_t required = 0;
    for (size_t i = 1; i < arguments.size(); ++i) {
      if (!arguments[i].default_value()) ++required;
    }
    size_t given = signature.inputs.size();
    if (given < required || given > total) {
      return absl::InvalidArgumentError(fmt::format(
          "the signature declares {} input(s) but forward{} takes {}", given,
          c10::toString(forward->function().getSchema())
              .substr(forward->function().getSchema().name().size()),
          required == total ? std::to_string(total) : fmt::format("{} to {}", required, total)));
    }
    return absl::OkStatus();
  } catch (...) {
    return StatusFromCurrentException(
        absl::StatusCode::kInvalidArgument,
        fmt::format("{} is not a loadable TorchScript archive", path.string()));
  }
}

}  // namespace

absl::StatusOr<CheckedModel> CheckModelFile(const std::filesystem::path& path,
                                            const ModelSignature& signature) {
  CheckedModel checked;
  checked.signature = signature;
  {
    // Refuse a damaged or hostile archive before LibTorch allocates for what it declares.
    MAAS_ASSIGN_OR_RETURN(std::string bytes, ReadFileBytes(path));
    MAAS_ASSIGN_OR_RETURN(std::vector<std::string> entries, CheckZipArchive(bytes, path.string()));
    if (IsAotiPackage(entries)) {
      checked.format = ModelFormat::kAotInductor;
      MAAS_ASSIGN_OR_RETURN(PackageDescription package, InspectPackage(bytes, path.string()));
      absl::StatusOr<ModelSignature> reconciled = ReconcileSignature(package, signature);
      if (!reconciled.ok()) {
        return absl::InvalidArgumentError(fmt::format(
            "the AOTInductor package and the signature disagree: {}", reconciled.status().message()));
      }
      checked.signature = *std::move(reconciled);
      return checked;
    }
  }
  MAAS_RETURN_IF_ERROR(CheckTorchScript(path, signature));
  return checked;
}

}  // namespace maas::internal
