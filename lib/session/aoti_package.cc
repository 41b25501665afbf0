#include "session/aoti_package.h"

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/export/pt2_archive_constants.h>

#include <algorithm>
#include <map>
#include <regex>

#include "fmt/core.h"
#include "util/json.h"
#include "session/torch_errors.h"

namespace maas::internal {
namespace {

constexpr std::string_view kModelsFolder = "data/aotinductor/";

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}
bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string RangeText(int64_t min, int64_t max) {
  if (min == max) return std::to_string(min);
  return max == DimRange::kUnbounded ? fmt::format("{} or more", min)
                                     : fmt::format("{} to {}", min, max);
}

std::string DeclaredText(int64_t size) { return size == kAnyDim ? "any size (-1)" : std::to_string(size); }

// LibTorch's C++ names of dtypes, as the generated checks print them ("at::kFloat").
std::optional<c10::ScalarType> DtypeFromCppName(std::string_view name) {
  static const std::map<std::string, c10::ScalarType, std::less<>> kNames = [] {
    std::map<std::string, c10::ScalarType, std::less<>> names;
#define MAAS_ADD_DTYPE(_, type) names[std::string("k") + #type] = c10::ScalarType::type;
    AT_FORALL_SCALAR_TYPES_WITH_COMPLEX_AND_QINTS(MAAS_ADD_DTYPE)
#undef MAAS_ADD_DTYPE
    names["kBool"] = c10::ScalarType::Bool;
    names["kHalf"] = c10::ScalarType::Half;
    names["kBFloat16"] = c10::ScalarType::BFloat16;
    return names;
  }();
  auto it = kNames.find(name);
  if (it == kNames.end()) return std::nullopt;
  return it->second;
}

int64_t ToInt(const std::ssub_match& match) { return std::stoll(match.str()); }

// Reads the input checks that AOTInductor generates into the wrapper source of every package
// (check_input_N: dtype, each dimension's fixed size or range, strides).
absl::Status ParseInputChecks(const std::string& source, PackageDescription& package) {
  static const std::regex kCounts(R"(AOTInductorModelBase\(\s*(\d+),\s*(\d+),)");
  std::smatch counts;
  if (!std::regex_search(source, counts, kCounts)) {
    return absl::InvalidArgumentError("its wrapper source has no AOTInductorModelBase(inputs, outputs, ...)");
  }
  const int64_t num_inputs = ToInt(counts[1]);
  package.num_outputs = ToInt(counts[2]);
  if (num_inputs > 4096) {
    return absl::InvalidArgumentError(fmt::format("it declares {} inputs", num_inputs));
  }
  package.inputs.assign(static_cast<size_t>(num_inputs), PackageInput{});

  // Each dimension's checks, by input and dimension; the rank is one past the highest dimension
  // any size or stride check names.
  struct DimChecks {
    std::optional<int64_t> min, max, exact;
  };
  std::vector<std::map<int64_t, DimChecks>> dims(package.inputs.size());
  auto input_at = [&](const std::ssub_match& index, size_t& out) -> absl::Status {
    const int64_t i = ToInt(index);
    if (i < 0 || i >= num_inputs) {
      return absl::InvalidArgumentError(
          fmt::format("its input checks name input {} of {}", i, num_inputs));
    }
    out = static_cast<size_t>(i);
    return absl::OkStatus();
  };
  auto dim_at = [](const std::ssub_match& index, int64_t& out) -> absl::Status {
    out = ToInt(index);
    if (out < 0 || out >= 64) {
      return absl::InvalidArgumentError(fmt::format("its input checks name dimension {}", out));
    }
    return absl::OkStatus();
  };

  static const std::regex kDtype(
      R"re(input_handles\[(\d+)\]: unmatched dtype, "\s*<<\s*"expected: "\s*<<\s*\w+\s*<<\s*"\(at::(\w+)\))re");
  static const std::regex kTooSmall(
      R"re(input_handles\[(\d+)\]: dim value is too small at (\d+), "\s*<<\s*"expected it to be >= (-?\d+), )re");
  static const std::regex kTooLarge(
      R"re(input_handles\[(\d+)\]: dim value is too large at (\d+), "\s*<<\s*"expected to be <= (-?\d+), )re");
  static const std::regex kExact(
      R"re(input_handles\[(\d+)\]: unmatched dim value at (\d+), "\s*<<\s*"expected: (-?\d+), )re");
  static const std::regex kStride(R"re(input_handles\[(\d+)\]: unmatched stride value at (\d+), )re");

  try {
    for (auto it = std::sregex_iterator(source.begin(), source.end(), kDtype);
         it != std::sregex_iterator(); ++it) {
      size_t i = 0;
      if (absl::Status s = input_at((*it)[1], i); !s.ok()) return s;
      std::optional<c10::ScalarType> dtype = DtypeFromCppName((*it)[2].str());
      if (!dtype) {
        return absl::InvalidArgumentError(
            fmt::format("input {} has a dtype maas does not know (at::{})", i, (*it)[2].str()));
      }
      package.inputs[i].dtype = dtype;
    }
    struct Kind {
      const std::regex* pattern;
      std::optional<int64_t> DimChecks::*field;
    };
    for (const Kind& kind : {Kind{&kTooSmall, &DimChecks::min}, Kind{&kTooLarge, &DimChecks::max},
                             Kind{&kExact, &DimChecks::exact}, Kind{&kStride, nullptr}}) {
      for (auto it = std::sregex_iterator(source.begin(), source.end(), *kind.pattern);
           it != std::sregex_iterator(); ++it) {
        size_t i = 0;
        int64_t d = 0;
        if (absl::Status s = input_at((*it)[1], i); !s.ok()) return s;
        if (absl::Status s = dim_at((*it)[2], d); !s.ok()) return s;
        DimChecks& checks = dims[i][d];
        if (kind.field != nullptr) checks.*kind.field = ToInt((*it)[3]);
      }
    }
  } catch (const std::exception& e) {  // std::regex_error, std::out_of_range from stoll
    return absl::InvalidArgumentError(fmt::format("its input checks cannot be read: {}", e.what()));
  }

  for (size_t i = 0; i < package.inputs.size(); ++i) {
    const int64_t rank = dims[i].empty() ? 0 : dims[i].rbegin()->first + 1;
    std::vector<DimRange>& ranges = package.inputs[i].dims;
    ranges.assign(static_cast<size_t>(rank), DimRange{});
    for (const auto& [d, checks] : dims[i]) {
      DimRange& range = ranges[static_cast<size_t>(d)];
      if (checks.exact) {
        range.min = range.max = *checks.exact;
        continue;
      }
      if (checks.min) range.min = *checks.min;
      if (checks.max) range.max = *checks.max;
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsAotiPackage(const std::vector<std::string>& zip_entry_names) {
  return std::any_of(zip_entry_names.begin(), zip_entry_names.end(), [](const std::string& name) {
    const size_t slash = name.find('/');
    return slash != std::string::npos &&
           std::string_view(name).substr(slash + 1, kModelsFolder.size()) == kModelsFolder;
  });
}

absl::StatusOr<PackageDescription> InspectPackage(std::string_view bytes, std::string_view what) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        fmt::format("{} is not an AOTInductor package maas can serve: {}", what, why));
  };
  PackageDescription package;
  std::string wrapper_source;
  std::string metadata_text;
  try {
    auto adapter = std::make_shared<caffe2::serialize::MemoryReadAdapter>(
        bytes.data(), static_cast<off_t>(bytes.size()));
    caffe2::serialize::PyTorchStreamReader reader(adapter);
    auto read = [&](const std::string& record) {
      auto [data, size] = reader.getRecord(record);
      return std::string(static_cast<const char*>(data.get()), size);
    };
    // The archive's layout version: LibTorch's C++ loader does not check it (Python's does), and
    // a layout it does not know would fail later, or worse.
    namespace spec = torch::_export::archive_spec;
    const std::string version_path(spec::ARCHIVE_VERSION_PATH);
    if (reader.hasRecord(version_path)) {
      const std::string version = read(version_path);
      if (version != spec::ARCHIVE_VERSION_VALUE) {
        return invalid(fmt::format(
            "it has archive version {}, and the LibTorch maas runs on reads version {}: export it "
            "with the torch version whose LibTorch serves it",
            version.substr(0, 32), spec::ARCHIVE_VERSION_VALUE));
      }
    }
    // Models by folder, each with its wrapper source and metadata.
    std::map<std::string, std::pair<std::string, std::string>> models;
    for (const std::string& record : reader.getAllRecords()) {
      if (!StartsWith(record, kModelsFolder)) continue;
      const std::string_view rest = std::string_view(record).substr(kModelsFolder.size());
      const size_t slash = rest.find('/');
      if (slash == std::string_view::npos) continue;
      const std::string model(rest.substr(0, slash));
      const std::string_view file = rest.substr(slash + 1);
      if (file.find('/') != std::string_view::npos) continue;
      if (EndsWith(file, ".wrapper.cpp")) models[model].first = record;
      if (EndsWith(file, ".wrapper_metadata.json")) models[model].second = record;
      models.try_emplace(model);
    }
    if (models.empty()) return invalid("it has no data/aotinductor/<model>/ folder");
    auto chosen = models.find("model");
    if (chosen == models.end()) {
      if (models.size() > 1) {
        return invalid(fmt::format("it holds {} models and none is named 'model'", models.size()));
      }
      chosen = models.begin();
    }
    package.model_name = chosen->first;
    const auto& [wrapper, metadata] = chosen->second;
    if (wrapper.empty()) {
      return invalid(fmt::format(
          "model '{}' has no generated wrapper source (*.wrapper.cpp), from which maas reads the "
          "input checks; package it with torch._inductor.aoti_compile_and_package's defaults",
          package.model_name));
    }
    wrapper_source = read(wrapper);
    if (!metadata.empty()) metadata_text = read(metadata);
  } catch (...) {
    return StatusFromCurrentException(absl::StatusCode::kInvalidArgument,
                                      fmt::format("{} cannot be read as a package", what));
  }

  if (absl::Status s = ParseInputChecks(wrapper_source, package); !s.ok()) {
    return invalid(std::string(s.message()));
  }
  package.device = "cpu";
  if (!metadata_text.empty()) {
    absl::StatusOr<Json> metadata = ParseJson(metadata_text);
    if (!metadata.ok() || !metadata->is_object()) {
      return invalid("its wrapper metadata is not a JSON object");
    }
    if (auto key = metadata->find("AOTI_DEVICE_KEY"); key != metadata->end() && key->is_string()) {
      package.device = key->get<std::string>();
    }
    if (auto isa = metadata->find("AOTI_CPU_ISA"); isa != metadata->end() && isa->is_string()) {
      package.cpu_isa = isa->get<std::string>();
    }
  }
  return package;
}

absl::StatusOr<ModelSignature> ReconcileSignature(const PackageDescription& package,
                                                  ModelSignature signature) {
  auto invalid = [](std::string why) { return absl::InvalidArgumentError(std::move(why)); };
  if (package.inputs.size() != signature.inputs.size()) {
    return invalid(fmt::format("the package takes {} input(s); the signature declares {}",
                               package.inputs.size(), signature.inputs.size()));
  }
  if (package.num_outputs != static_cast<int64_t>(signature.outputs.size())) {
    return invalid(fmt::format("the package returns {} output(s); the signature declares {}",
                               package.num_outputs, signature.outputs.size()));
  }
  const size_t batch_dims = signature.batchable ? 1 : 0;
  int64_t min_batch = 1;
  int64_t max_batch = DimRange::kUnbounded;
  for (size_t i = 0; i < package.inputs.size(); ++i) {
    const PackageInput& input = package.inputs[i];
    const TensorSpec& spec = signature.inputs[i];
    if (input.dtype && *input.dtype != spec.dtype) {
      return invalid(fmt::format("input '{}': the package expects {}, the signature declares {}",
                                 spec.name, DtypeName(*input.dtype), DtypeName(spec.dtype)));
    }
    if (input.dims.size() != spec.shape.size() + batch_dims) {
      return invalid(fmt::format(
          "input '{}': the package expects {} dimension(s), the signature declares {}{}",
          spec.name, input.dims.size(), spec.shape.size(),
          signature.batchable ? " per item plus the batch" : ""));
    }
    for (size_t d = 0; d < input.dims.size(); ++d) {
      const DimRange& range = input.dims[d];
      if (signature.batchable && d == 0) {
        min_batch = std::max(min_batch, range.min);
        max_batch = std::min(max_batch, range.max);
        continue;
      }
      const int64_t declared = spec.shape[d - batch_dims];
      const std::string where = fmt::format("input '{}' dimension {}", spec.name, d);
      if (range.is_static() && declared != range.min) {
        return invalid(fmt::format("{}: the package fixes it at {}, the signature declares {}",
                                   where, range.min, DeclaredText(declared)));
      }
      if (!range.is_static() && declared == kAnyDim) {
        return invalid(fmt::format(
            "{}: the package accepts sizes {}, the signature declares any size (-1); maas checks "
            "ranges of the batch dimension only, so declare the size you serve",
            where, RangeText(range.min, range.max)));
      }
      if (declared < range.min || declared > range.max) {
        return invalid(fmt::format("{}: the package accepts sizes {}, the signature declares {}",
                                   where, RangeText(range.min, range.max), declared));
      }
    }
  }
  if (!signature.batchable) return signature;
  const int64_t declared_max =
      signature.max_batch_size > 0 ? signature.max_batch_size : DimRange::kUnbounded;
  const int64_t lo = std::max(min_batch, signature.min_batch_size);
  const int64_t hi = std::min(max_batch, declared_max);
  if (lo > hi) {
    return invalid(fmt::format(
        "the package accepts batches of {} item(s), the signature declares {}: no batch size "
        "fits both",
        RangeText(min_batch, max_batch), RangeText(signature.min_batch_size, declared_max)));
  }
  signature.min_batch_size = lo;
  signature.max_batch_size = hi == DimRange::kUnbounded ? 0 : hi;
  return signature;
}

}  // namespace maas::internal
