#include "maas/session.h"

#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>
#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <caffe2/serialize/in_memory_adapter.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/codegen/fuser/interface.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <map>
#include <optional>
#include <thread>
#include <unordered_set>

#include "session/aoti_package.h"
#include "store/archive_check.h"
#include "session/device_memory.h"
#include "fmt/core.h"
#include "store/integrity.h"
#include "session/module_weights.h"
#include "session/package_loader.h"
#include "store/sha256.h"
#include "util/status_macros.h"
#include "store/store_files.h"
#include "session/tensor_checks.h"
#include "session/torch_errors.h"
#include "session/torch_runtime.h"
#include "session/torch_warnings.h"

namespace maas {
namespace {

using internal::CheckDevice;
using internal::ComputeDtype;
using internal::ConvertFloatingWeights;
using internal::LoadedPackage;
using internal::LoadPackage;
using internal::ThreadStream;
using internal::TurnOffCpuFusion;
using internal::UseIntraOpThreads;
using internal::WeightBytes;

constexpr int kWarmUpRuns = 3;

// Whether a prepared graph reproduces the reference outputs: floating-point outputs within the
// rounding of a reordered computation in the session's precision, everything else exactly.
bool SameResults(const absl::StatusOr<std::vector<at::Tensor>>& got,
                 const std::vector<at::Tensor>& want, Precision precision, bool on_gpu) {
  // float32: a few hundred ulps; float16 (10-bit mantissa) and bfloat16 (7-bit) likewise. On
  // a GPU, float32 convolutions and matmuls may run in TF32 (10-bit mantissa) by default.
  const double rtol = precision == Precision::kFloat16    ? 1e-2
                      : precision == Precision::kBFloat16 ? 5e-2
                      : on_gpu                            ? 2e-3
                                                          : 1e-4;
  const double atol = rtol / 10;
  if (!got.ok() || got->size() != want.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    const at::Tensor& a = (*got)[i];
    const at::Tensor& b = want[i];
    if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
    bool same = a.is_floating_point()
                    ? at::allclose(a.to(at::kFloat), b.to(at::kFloat), rtol, atol, true)
                    : at::equal(a, b);
    if (!same) return false;
  }
  return true;
}

// `tensor` with its rows (dimension 0) made up to `rows` by repeating its last row: inputs a
// model accepts, whatever it computes (a repeated real row is valid where zeros may not be).
at::Tensor PadRows(const at::Tensor& tensor, int64_t rows) {
  std::vector<int64_t> sizes = tensor.sizes().vec();
  const int64_t missing = rows - sizes[0];
  sizes[0] = missing;
  return at::cat({tensor, tensor.narrow(0, tensor.size(0) - 1, 1).expand(sizes)}, 0);
}

}  // namespace

struct Session::Impl {
  ModelInfo info;
  std::string label;  // "model 'mlp' version 3", for messages
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  int intra_op_threads = 1;
  bool keep_outputs_on_device = false;
  GraphOptimization optimization = GraphOptimization::kNone;
  int64_t memory_bytes = 0;
  int64_t device_reserved_bytes = 0;
  Precision precision = Precision::kAsSaved;
  std::optional<c10::ScalarType> compute_dtype;  // of kFloat16 and kBFloat16
  JitExecutor jit_executor = JitExecutor::kStatic;
  // Module::forward is not const but is safe to call concurrently: the graph executor is
  // thread-safe and the module's weights are only read. Unused for a package.
  torch::jit::Module module;
  // An AOTInductor package, when info.format says so. Its run is thread-safe: the container
  // holds several model instances (one per concurrent caller, up to the count it was made
  // with) over one set of weights.
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;
  // Receives LibTorch's warnings on every thread while the session loads or runs there.
  std::shared_ptr<internal::TorchWarnings> warnings;
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

const ModelInfo& Session::info() const { return impl_->info; }
c10::Device Session::device() const { return impl_->device; }
GraphOptimization Session::optimization() const { return impl_->optimization; }
ModelFormat Session::format() const { return impl_->info.format; }
int Session::intra_op_threads() const { return impl_->intra_op_threads; }
int64_t Session::memory_bytes() const { return impl_->memory_bytes; }
int64_t Session::device_reserved_bytes() const { return impl_->device_reserved_bytes; }
Precision Session::precision() const { return impl_->precision; }
int64_t Session::torch_warnings() const { return impl_->warnings->count(); }

absl::StatusOr<std::unique_ptr<Session>> Session::Create(const ModelStore& store,
                                                         std::string_view name,
                                                         SessionOptions options) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (options.intra_op_threads < 1 || options.intra_op_threads > cores) {
    return absl::InvalidArgumentError(
        fmt::format("intra_op_threads is {}; expected 1 to {} (the cores of this machine)",
                    options.intra_op_threads, cores));
  }
  // Enums from a cast integer (a config file, another language) must name a real value.
  switch (options.optimization) {
    case GraphOptimization::kNone:
    case GraphOptimization::kFreeze:
    case GraphOptimization::kForInference:
      break;
    default:
      return absl::InvalidArgumentError(
          fmt::format("optimization is {}; expected kNone (0), kFreeze (1) or kForInference (2)",
                      static_cast<int>(options.optimization)));
  }
  switch (options.precision) {
    case Precision::kAsSaved:
    case Precision::kFloat16:
    case Precision::kBFloat16:
      break;
    default:
      return absl::InvalidArgumentError(
          fmt::format("precision is {}; expected kAsSaved (0), kFloat16 (1) or kBFloat16 (2)",
                      static_cast<int>(options.precision)));
  }
  switch (options.jit_executor) {
    case JitExecutor::kStatic:
    case JitExecutor::kProfiling:
      break;
    default:
      return absl::InvalidArgumentError(
          fmt::format("jit_executor is {}; expected kStatic (0) or kProfiling (1)",
                      static_cast<int>(options.jit_executor)));
  }
  TurnOffCpuFusion();
  auto impl = std::make_unique<Impl>();
  MAAS_ASSIGN_OR_RETURN(impl->device, CheckDevice(options.device));
  MAAS_ASSIGN_OR_RETURN(impl->info, store.Get(name, options.version));
  impl->label = fmt::format("model '{}' version {}", impl->info.name, impl->info.version);
  impl->warnings = std::make_shared<internal::TorchWarnings>(
      fmt::format("{} on {}", impl->label, impl->device.str()));
  // Outlives the scope, which outlives a session destroyed on an error below.
  const std::shared_ptr<internal::TorchWarnings> warnings = impl->warnings;
  internal::TorchWarnings::Scope warnings_scope(warnings.get());
  impl->intra_op_threads = options.intra_op_threads;
  impl->keep_outputs_on_device = options.keep_outputs_on_device;
  impl->jit_executor = options.jit_executor;
  const ModelInfo& info = impl->info;
  if (info.format == ModelFormat::kAotInductor && options.precision != Precision::kAsSaved) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: precision {} asked for an AOTInductor package, which computes in the dtypes it was "
        "compiled with; export it in that precision instead",
        impl->label, static_cast<int>(options.precision)));
  }

  // Read the artifact once, check those bytes, and load exactly those bytes.
  MAAS_ASSIGN_OR_RETURN(std::string bytes, internal::ReadFileBytes(info.artifact_path));
  internal::Sha256 hash;
  hash.Update(bytes);
  MAAS_RETURN_IF_ERROR(
      internal::CheckArtifact(info, static_cast<int64_t>(bytes.size()), hash.HexDigest()));
  MAAS_RETURN_IF_ERROR(internal::CheckZipArchive(bytes, info.artifact_path.string()).status());

  UseIntraOpThreads(impl->intra_op_threads);
  const int64_t reserved_before = internal::DeviceReservedBytes(impl->device);
  if (info.format == ModelFormat::kAotInductor) {
    MAAS_ASSIGN_OR_RETURN(LoadedPackage loaded,
                          LoadPackage(info, bytes, impl->device, impl->label));
    impl->package = std::move(loaded.loader);
    impl->memory_bytes = loaded.weight_bytes;
  } else {
    try {
      auto reader = std::make_shared<caffe2::serialize::MemoryReadAdapter>(
          bytes.data(), static_cast<off_t>(bytes.size()));
      impl->module = torch::jit::load(reader, impl->device);
      impl->module.eval();
      impl->precision = options.precision;
      impl->compute_dtype = ComputeDtype(options.precision);
      if (impl->compute_dtype) ConvertFloatingWeights(impl->module, *impl->compute_dtype);
      impl->memory_bytes = WeightBytes(impl->module);
    } catch (...) {
      return internal::StatusFromCurrentException(
          absl::StatusCode::kFailedPrecondition,
          fmt::format("{}: LibTorch cannot load {}", impl->label, info.artifact_path.string()));
    }
  }
  bytes = std::string();  // The module or package holds its own copy of the weights now.

  std::unique_ptr<Session> session(new Session(std::move(impl)));
  MAAS_RETURN_IF_ERROR(session->PrepareGraph(options));
  if (!session->device().is_cpu()) {
    // Converted and frozen weights are made on this thread's stream; let them be complete
    // before any stream of any thread runs the model.
    try {
      c10::impl::VirtualGuardImpl guard_impl(session->device().type());
      guard_impl.synchronizeStream(guard_impl.getStream(session->device()));
    } catch (...) {
      return internal::StatusFromCurrentException(
          absl::StatusCode::kInternal,
          fmt::format("{}: cannot synchronize the device", session->info().name));
    }
  }
  session->impl_->device_reserved_bytes =
      std::max<int64_t>(0, internal::DeviceReservedBytes(session->device()) - reserved_before);
  return session;
}

absl::Status Session::PrepareGraph(const SessionOptions& options) {
  Impl& impl = *impl_;
  std::vector<at::Tensor> example;
  try {
    example = internal::ExampleInputs(impl.info.signature, impl.device);
  } catch (...) {
    return internal::StatusFromCurrentException(
        absl::StatusCode::kFailedPrecondition,
        fmt::format("{}: cannot build warm-up inputs", impl.label));
  }
  // The module as saved is the reference: it also proves the signature on the first run.
  std::optional<std::vector<at::Tensor>> expected;
  if (options.warm_up) {
    absl::StatusOr<std::vector<at::Tensor>> outputs = Run(example);
    if (!outputs.ok()) {
      return absl::FailedPreconditionError(
          fmt::format("warm-up failed (on inputs shaped as the signature, batch of 1): {}",
                      std::string(outputs.status().message())));
    }
    expected = std::move(*outputs);
  }

  // Try the requested preparation, then the milder ones; keep the first that builds and, when
  // the reference ran, gives the reference's results. A package was prepared when compiled.
  const torch::jit::Module reference = impl.module;
  for (GraphOptimization level : {GraphOptimization::kForInference, GraphOptimization::kFreeze}) {
    if (impl.package) break;  // (a package has no graph to prepare)
    if (static_cast<int>(level) > static_cast<int>(options.optimization)) continue;
    try {
      torch::jit::Module prepared = reference;  // a handle; freeze clones
      impl.module = level == GraphOptimization::kFreeze
                        ? torch::jit::freeze(prepared)
                        : torch::jit::optimize_for_inference(prepared);
    } catch (...) {
      impl.module = reference;  // Some modules cannot be frozen; try the next level.
      continue;
    }
    if (!expected || SameResults(Run(example), *expected, impl.precision, !impl.device.is_cpu())) {
      impl.optimization = level;
      break;
    }
    impl.module = reference;
  }

  if (options.warm_up) {
    for (int i = 0; i < kWarmUpRuns; ++i) {
      absl::StatusOr<std::vector<at::Tensor>> outputs = Run(example);
      if (!outputs.ok()) {
        return absl::FailedPreconditionError(fmt::format(
            "warm-up failed after graph preparation: {}", std::string(outputs.status().message())));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<at::Tensor>> Session::Run(const std::vector<at::Tensor>& inputs) const {
  return Run(inputs, impl_->intra_op_threads);
}

absl::StatusOr<std::vector<at::Tensor>> Session::Run(const std::vector<at::Tensor>& inputs,
                                                     int intra_op_threads) const {
  const Impl& impl = *impl_;
  if (intra_op_threads < 1) {
    return absl::InvalidArgumentError(fmt::format("{}: intra_op_threads must be at least 1, got {}",
                                                  impl.label, intra_op_threads));
  }
  MAAS_ASSIGN_OR_RETURN(int64_t batch,
                        internal::CheckInputs(impl.info.signature, inputs, impl.label));
  internal::TorchWarnings::Scope warnings_scope(impl.warnings.get());
  absl::StatusOr<std::vector<at::Tensor>> outputs;
  try {
    outputs = RunValidated(inputs, batch, intra_op_threads);
  } catch (...) {
    outputs = internal::StatusFromCurrentException(absl::StatusCode::kInternal,
                                                   fmt::format("{} failed", impl.label));
  }
  if (!outputs.ok() && !impl.device.is_cpu()) {
    // The caller may reuse or free the inputs at once: no copy or kernel of the failed run may
    // still be reading them.
    try {
      ThreadStream(impl.device).synchronize();
    } catch (...) {
    }
  }
  return outputs;
}

absl::StatusOr<std::vector<at::Tensor>> Session::RunValidated(const std::vector<at::Tensor>& inputs,
                                                              int64_t batch,
                                                              int intra_op_threads) const {
  const Impl& impl = *impl_;
  UseIntraOpThreads(intra_op_threads);
  c10::InferenceMode inference_mode;
  c10::OptionalDeviceGuard device_guard;
  // On a GPU each calling thread (each Scheduler worker) runs on a stream of its own, so that
  // instances overlap their copies and kernels instead of queueing on one stream.
  std::optional<c10::StreamGuard> stream_guard;
  if (!impl.device.is_cpu()) {
    device_guard.reset_device(impl.device);
    const c10::Stream own = ThreadStream(impl.device);
    // Pool streams do not wait for other streams: order this run after what the caller's
    // current stream has queued (weights converted and frozen at Create, batches assembled or
    // inputs made on the device by the caller).
    const c10::Stream caller =
        c10::impl::VirtualGuardImpl(impl.device.type()).getStream(impl.device);
    if (caller != own) {
      c10::Event queued(impl.device.type());
      queued.record(caller);
      queued.block(own);
    }
    stream_guard.emplace(own);
  }

  // A batch below the model's smallest is padded; the padding's rows are dropped below.
  const int64_t run_batch =
      impl.info.signature.batchable ? std::max(batch, impl.info.signature.min_batch_size) : batch;
  std::vector<at::Tensor> arguments;
  arguments.reserve(inputs.size());
  for (const at::Tensor& given : inputs) {
    const at::Tensor input = run_batch > batch ? PadRows(given, run_batch) : given;
    const c10::ScalarType dtype =
        impl.compute_dtype && input.is_floating_point() ? *impl.compute_dtype : input.scalar_type();
    if (impl.device.is_cpu() || !input.is_cpu()) {
      arguments.push_back(input.to(impl.device, dtype));  // No copy when nothing changes.
    } else {
      // Host to device through page-locked memory, asynchronously on the thread's stream (a
      // batch the Scheduler assembled is already page-locked: no extra copy); the dtype changes
      // on the device, where it is cheap.
      const at::Tensor staged = input.is_pinned() ? input : input.contiguous().pin_memory();
      arguments.push_back(
          staged.to(impl.device, staged.scalar_type(), /*non_blocking=*/true).to(dtype));
    }
    // A package's kernels were compiled for contiguous inputs and do not check strides.
    if (impl.package) arguments.back() = arguments.back().contiguous();
  }
  c10::IValue returned;
  if (impl.package) {
    void* stream = impl.device.is_cpu() ? nullptr : stream_guard->current_stream().native_handle();
    std::vector<at::Tensor> results = impl.package->boxed_run(std::move(arguments), stream);
    returned = c10::ivalue::Tuple::create(std::vector<c10::IValue>(
        std::make_move_iterator(results.begin()), std::make_move_iterator(results.end())));
  } else {
    // The executor for this run only (the setting is per thread): see JitExecutor.
    torch::jit::GraphOptimizerEnabledGuard executor(impl.jit_executor == JitExecutor::kProfiling);
    returned = impl_->module.forward(std::vector<c10::IValue>(
        std::make_move_iterator(arguments.begin()), std::make_move_iterator(arguments.end())));
  }
  MAAS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs,
                        internal::CollectOutputs(impl.info.signature, std::move(returned),
                                                 run_batch, impl.label, impl.compute_dtype));
  if (run_batch > batch) {
    for (at::Tensor& output : outputs) output = output.narrow(0, 0, batch);
  }
  if (!impl.device.is_cpu()) {
    if (impl.keep_outputs_on_device) {
      // Callers use the outputs on their own streams: the work must be done first.
      stream_guard->current_stream().synchronize();
    } else {
      // A copy to pageable host memory waits for the stream's work.
      for (at::Tensor& output : outputs) output = output.to(c10::Device(c10::DeviceType::CPU));
    }
  }
  return outputs;
}

}  // namespace maas
