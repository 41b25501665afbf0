// Value types shared by the ModelStore, Session and Scheduler: what a model takes and returns
// (its signature) and what the store knows about one published version (ModelInfo).
#ifndef MAAS_TYPES_H_
#define MAAS_TYPES_H_

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace maas {

// Marks a dimension of TensorSpec::shape that may take any size.
inline constexpr int64_t kAnyDim = -1;

// One named tensor of a model's inputs or outputs.
//
// `dtype` is the LibTorch scalar type (c10::ScalarType is torch::ScalarType, so torch::kFloat32
// works). `shape` is the shape of ONE item, without the batch dimension when the model is
// batchable; kAnyDim (-1) marks a dimension of any size. An empty shape is a scalar per item.
struct TensorSpec {
  std::string name;
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<int64_t> shape;

  friend bool operator==(const TensorSpec& a, const TensorSpec& b) {
    return a.name == b.name && a.dtype == b.dtype && a.shape == b.shape;
  }
  friend bool operator!=(const TensorSpec& a, const TensorSpec& b) { return !(a == b); }
};

// What a model takes and returns, positionally, in order.
//
// When `batchable` is true (the default), dimension 0 of every input and output is the batch
// dimension and is not written in TensorSpec::shape; the Scheduler may then concatenate requests.
// When false, the shapes are the whole tensors' shapes and every request runs alone.
struct ModelSignature {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  bool batchable = true;

  // The batch sizes one run of the model accepts (batchable models only). A Session pads a
  // smaller batch up to min_batch_size by repeating its last item, and drops the extra rows
  // from the outputs; a larger batch than max_batch_size is InvalidArgument, and a Scheduler
  // forms no larger batch. Publishing an AOTInductor package sets both from the package (a
  // package exported with a dynamic batch dimension usually accepts 2 to its Dim's max; one
  // exported with a static batch, exactly that size). Defaults: 1 and 0 (no limit).
  int64_t min_batch_size = 1;
  int64_t max_batch_size = 0;

  friend bool operator==(const ModelSignature& a, const ModelSignature& b) {
    return a.inputs == b.inputs && a.outputs == b.outputs && a.batchable == b.batchable &&
           a.min_batch_size == b.min_batch_size && a.max_batch_size == b.max_batch_size;
  }
  friend bool operator!=(const ModelSignature& a, const ModelSignature& b) { return !(a == b); }
};

// The file format of a model version's artifact.
enum class ModelFormat {
  // A TorchScript archive (torch.jit.save or torch::jit::Module::save), stored as model.pt.
  kTorchScript,
  // An AOTInductor package: a torch.export program compiled by
  // torch._inductor.aoti_compile_and_package, stored as model.pt2. Runs on the device it was
  // compiled for, in the dtypes it was compiled with.
  kAotInductor,
};

// "torchscript" or "aot_inductor", as manifests and messages write it.
std::string_view ModelFormatName(ModelFormat format);

// What the ModelStore records about one immutable published version of a model.
struct ModelInfo {
  std::string name;
  int64_t version = 0;     // 1, 2, 3, ... per model name; never reused.
  std::string sha256;      // Lower-case hex SHA-256 of the artifact.
  int64_t size_bytes = 0;  // Size of the artifact in bytes.
  ModelSignature signature;
  absl::Time created;                         // When the version was published.
  std::string description;                    // Free text given at publish time; may be empty.
  std::map<std::string, std::string> labels;  // Free key/value pairs given at publish time.
  ModelFormat format = ModelFormat::kTorchScript;  // Found by Publish from the file's contents.
  std::filesystem::path artifact_path;  // Absolute path of the artifact in the store.
};

// Returns the lower-case name used for `dtype` in manifests and messages ("float32", "int64",
// "bool", ...), or "unsupported(<c10 name>)" for a type maas does not serve.
std::string DtypeName(c10::ScalarType dtype);

// The Open Inference Protocol's (KServe v2, Triton) name of `dtype`: "FP32", "INT64", "BOOL",
// ...; "BF16" for bfloat16, as Triton names it. Empty for a type maas does not serve.
std::string_view DtypeDatatypeName(c10::ScalarType dtype);

// Parses a name produced by DtypeName ("float32") or DtypeDatatypeName ("FP32"), as users of
// PyTorch and of KServe know them. InvalidArgument, listing the accepted names, otherwise.
absl::StatusOr<c10::ScalarType> ParseDtype(std::string_view name);

// Formats a per-item shape as "[3, -1, 224]".
std::string ShapeString(const std::vector<int64_t>& shape);

// Checks that `signature` is well formed: at least one input and one output; tensor names
// non-empty, at most 128 characters of [A-Za-z0-9._:-] and unique within inputs and within
// outputs; supported dtypes; every dimension positive or kAnyDim; at most 16 dimensions;
// min_batch_size at least 1 and max_batch_size 0 or at least min_batch_size (both at their
// defaults when not batchable).
// InvalidArgument naming the offending tensor otherwise.
absl::Status ValidateSignature(const ModelSignature& signature);

}  // namespace maas

#endif  // MAAS_TYPES_H_
