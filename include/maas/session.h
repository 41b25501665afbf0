// Session: one model version from a ModelStore, loaded on one device, validated and run.
#ifndef MAAS_SESSION_H_
#define MAAS_SESSION_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "maas/model_store.h"
#include "maas/types.h"

namespace maas {

// How a Session prepares the TorchScript graph after loading it. Each level includes the one
// before it. Create verifies the prepared graph against the module as saved on the warm-up
// inputs and falls back to a milder level when preparation fails or changes results beyond
// float32 rounding (relative 1e-4); Session::optimization() tells what was applied.
enum class GraphOptimization {
  // Run the module as saved.
  kNone,
  // torch::jit::freeze: parameters and attributes become constants, submodule calls are
  // inlined, conv + batch-norm pairs are folded.
  kFreeze,
  // torch::jit::optimize_for_inference: freezing plus oneDNN convolutions and fusions on CPU,
  // cuDNN-friendly fusions on CUDA. Measured here: resnet18 30% faster, a transformer encoder
  // 3-15% faster, MLPs unchanged (docs/performance.md).
  kForInference,
};

// The floating-point precision a Session computes in. Inputs and outputs keep the dtypes of the
// signature: floating-point inputs are converted on the way in and floating-point outputs on
// the way out, so callers see no difference but the numbers.
enum class Precision {
  // The module's own dtypes, as saved (usually float32).
  kAsSaved,
  // Floating-point parameters and buffers converted to float16. For CUDA; LibTorch's CPU float16
  // kernels are slow or missing for many operators (a missing one fails Create's warm-up,
  // naming the operator).
  kFloat16,
  // Converted to bfloat16: float32's range with 8 bits of mantissa. CUDA (Ampere and later),
  // and CPUs with AVX-512 BF16 or AMX through oneDNN.
  kBFloat16,
};

// How LibTorch's TorchScript graph executor runs a Session's module. LibTorch keeps its executor
// settings process-wide and they differ between builds (a LibTorch built with LLVM fuses CPU
// kernels at run time, the official builds do not); a Session sets the executor for each of its
// own runs instead, so that it behaves the same on every LibTorch. Not used for AOTInductor
// packages, which are compiled ahead of time.
enum class JitExecutor {
  // The prepared graph (see GraphOptimization) runs as prepared: no profiling runs, no
  // specialization to the shapes seen, no kernels fused and compiled at run time. Latency is
  // the same from the first request to the last, whatever batch sizes arrive.
  kStatic,
  // LibTorch's profiling executor: it profiles the first runs, specializes the graph to the
  // shapes seen and fuses what its fusers can (NNC on CUDA; on the CPU, CPU fusion is turned
  // off by maas, as in the official builds, since an LLVM build's can compile for minutes). New
  // batch sizes can cost a re-specialization. Try it for CUDA models with many elementwise ops.
  kProfiling,
};

// Options for Session::Create.
struct SessionOptions {
  // Which version to load: "latest", a number such as "3", or an alias such as "stable".
  // Default: "latest".
  std::string version = "latest";

  // The device to run on: CPU, or CUDA with an index (c10::Device(c10::kCUDA, 0)). Default: CPU.
  c10::Device device = c10::Device(c10::DeviceType::CPU);

  // Intra-op threads of every Run, whichever thread calls it (on CPU: the OpenMP team that
  // LibTorch and OpenBLAS use inside one operator). Between 1 and the machine's cores.
  // Default: 1, the right value when several threads or Scheduler workers run at once; raise it
  // for a large model served one call at a time. Keep callers x threads <= cores.
  int intra_op_threads = 1;

  // Run the model a few times at Create on inputs built from the signature (wildcard
  // dimensions as 1, batch of 1; floating-point values spread over [0, 1], integers and
  // booleans zero), so that the first real request does not pay for lazy
  // initialization and graph specialization, and so that a model whose outputs contradict its
  // signature is refused at once. Default: true.
  bool warm_up = true;

  // The strongest graph preparation to try; see GraphOptimization. Without warm_up it is
  // applied unverified. Default: kForInference.
  GraphOptimization optimization = GraphOptimization::kForInference;

  // Leave outputs on the session's device instead of copying them to the CPU. Only matters for
  // CUDA sessions. The outputs are complete when Run returns; their memory belongs to the
  // stream of the thread that ran them, so before dropping the last reference to one that
  // another stream still uses, call record_stream on it or synchronize that stream.
  // Default: false (outputs come back in host memory).
  bool keep_outputs_on_device = false;

  // The precision the model computes in; see Precision. The graph preparation is then verified
  // with that precision's tolerance. TorchScript only: an AOTInductor package computes in the
  // dtypes it was compiled with (anything but kAsSaved is InvalidArgument). Default: kAsSaved.
  Precision precision = Precision::kAsSaved;

  // How TorchScript's executor runs the module; see JitExecutor. Default: kStatic.
  JitExecutor jit_executor = JitExecutor::kStatic;

  friend bool operator==(const SessionOptions& a, const SessionOptions& b) {
    return a.version == b.version && a.device == b.device &&
           a.intra_op_threads == b.intra_op_threads && a.warm_up == b.warm_up &&
           a.optimization == b.optimization &&
           a.keep_outputs_on_device == b.keep_outputs_on_device && a.precision == b.precision &&
           a.jit_executor == b.jit_executor;
  }
  friend bool operator!=(const SessionOptions& a, const SessionOptions& b) { return !(a == b); }
};

// A Session is one immutable model version loaded on one device, ready to run.
//
// Create reads the artifact once and checks its SHA-256 against the manifest. A TorchScript
// archive is loaded from the verified bytes, moved to the device, put in eval mode and its graph
// prepared; an AOTInductor package is loaded with LibTorch's AOTIModelPackageLoader on the
// device it was compiled for. Then the session warms up. Run validates inputs against the signature before running, so a malformed request gets an
// InvalidArgument naming the input instead of an exception from deep inside LibTorch.
//
// This class is thread-safe: Run may be called from many threads at once; each call runs under
// c10::InferenceMode with the session's intra-op thread count. Concurrent calls share the
// module's weights (no copy per thread). Caveat: a model whose forward mutates its own
// attributes (a counter, a cache) is not safe to run concurrently; such models need one Session
// per calling thread or a Scheduler with one instance.
//
// Example:
//   maas::SessionOptions options;
//   options.version = "stable";
//   absl::StatusOr<std::unique_ptr<maas::Session>> session =
//       maas::Session::Create(*store, "mlp", options);
//   if (!session.ok()) return session.status();
//   absl::StatusOr<std::vector<torch::Tensor>> out = (*session)->Run({torch::randn({8, 512})});
class Session {
 public:
  // Loads version `options.version` of model `name` from `store` onto `options.device`.
  // NotFound / InvalidArgument: as ModelStore::Get. DataLoss: the artifact's SHA-256 or size
  // differs from its manifest. InvalidArgument: bad options (thread count, device index).
  // FailedPrecondition: CUDA requested but not available; warm-up failed (the message says how:
  // the model threw, or its outputs contradict the signature); a package compiled for another
  // device or CPU instruction set, or one LibTorch's loader refuses (its reason follows).
  static absl::StatusOr<std::unique_ptr<Session>> Create(const ModelStore& store,
                                                         std::string_view name,
                                                         SessionOptions options = {});

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Runs the model on `inputs`, given positionally in the signature's order (at::Tensor is
  // torch::Tensor). For a batchable model, dimension 0 of every input is the batch, equal across
  // inputs and at least 1. Inputs on another device are moved; any strides work.
  // Returns the outputs in the signature's order, whatever the model returns (a Tensor, a tuple
  // or list of Tensors, or a dict from output name to Tensor).
  // InvalidArgument: wrong input count, dtype, rank, fixed dimension or batch sizes, a layout
  // other than dense (sparse, mkldnn) or a device other than the CPU or CUDA (meta), naming the
  // input, what was expected and what came. Internal: the model threw (its message follows),
  // or its outputs contradict the signature. The session stays usable after any error.
  absl::StatusOr<std::vector<at::Tensor>> Run(const std::vector<at::Tensor>& inputs) const;

  // As Run, with `intra_op_threads` threads for this call instead of the session's own count:
  // for callers that keep threads of different widths over one session (the Scheduler's
  // workers). A calling thread keeps the count it last ran with, and changing it rebuilds the
  // thread's OpenMP team (slow on CPU): give each calling thread one count.
  // InvalidArgument: `intra_op_threads` below 1, or as Run.
  absl::StatusOr<std::vector<at::Tensor>> Run(const std::vector<at::Tensor>& inputs,
                                              int intra_op_threads) const;

  // The version that was loaded, as recorded in the store.
  const ModelInfo& info() const;
  // The device the model runs on.
  c10::Device device() const;
  // The intra-op thread count of every Run.
  int intra_op_threads() const;
  // The graph preparation actually applied (possibly milder than requested; kNone for a
  // package).
  GraphOptimization optimization() const;
  // The artifact's format (TorchScript or AOTInductor package).
  ModelFormat format() const;
  // Bytes of the model's weights (parameters and buffers, each storage counted once) on its
  // device, as loaded (and converted to the session's precision).
  int64_t memory_bytes() const;
  // Bytes by which the device's memory allocator grew while the session loaded, prepared and
  // warmed up: the weights, the warm-up's workspace and the allocator's caching (CUDA only; 0
  // on the CPU). Later batches may grow the allocator's cache further; it is shared by
  // everything on the device, so this is the session's own share only when nothing else
  // allocated there during its load.
  int64_t device_reserved_bytes() const;
  // The precision it computes in.
  Precision precision() const;
  // LibTorch warnings raised on the calling threads while this session loaded or ran. They do
  // not go to stderr as LibTorch prints them: each warning (each place in LibTorch that warns)
  // goes once per session to the library's log (maas/log.h), naming the session; all are
  // counted here. Warnings from LibTorch's own intra-op threads are printed as LibTorch does.
  int64_t torch_warnings() const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  absl::Status PrepareGraph(const SessionOptions& options);
  // Run after CheckInputs; may throw (Run turns that into a Status).
  absl::StatusOr<std::vector<at::Tensor>> RunValidated(const std::vector<at::Tensor>& inputs,
                                                       int64_t batch, int intra_op_threads) const;

  std::unique_ptr<Impl> impl_;
};

}  // namespace maas

#endif  // MAAS_SESSION_H_
