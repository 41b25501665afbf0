#include "session/torch_runtime.h"

#include <ATen/Parallel.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/jit/codegen/fuser/interface.h>
#include <torch/cuda.h>

#include <map>
#include <utility>

#include "fmt/core.h"

namespace maas::internal {

// Sets the calling thread's intra-op thread count for LibTorch (and, with the OpenMP build of
// OpenBLAS, for BLAS) unless it already has it. LibTorch has no scoped setting; at::
// set_num_threads is per thread for OpenMP but also rebuilds a global pthreadpool when the count
// changes, so it is called only on a change.
void UseIntraOpThreads(int threads) {
  thread_local int current = 0;
  if (current == threads) return;
  // The first parallel region of a thread lazily re-applies the process-wide default; trigger
  // that now so that it cannot override the count set below.
  (void)at::get_num_threads();
  at::set_num_threads(threads);
  current = threads;
}

// A stream from LibTorch's pool for the calling thread on `device`, the same on every call.
// Device-generic (c10::Stream), so that this file needs no CUDA headers.
c10::Stream ThreadStream(c10::Device device) {
  thread_local std::map<std::pair<int, int>, c10::Stream> streams;
  const std::pair<int, int> key(static_cast<int>(device.type()), device.index());
  auto it = streams.find(key);
  if (it == streams.end()) {
    c10::impl::VirtualGuardImpl guard_impl(device.type());
    it = streams.emplace(key, guard_impl.getStreamFromGlobalPool(device)).first;
  }
  return it->second;
}

absl::StatusOr<c10::Device> CheckDevice(c10::Device device) {
  if (device.is_cpu()) return c10::Device(c10::DeviceType::CPU);
  if (!device.is_cuda()) {
    return absl::InvalidArgumentError(
        fmt::format("device '{}' is not supported; use the CPU or a CUDA device", device.str()));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(fmt::format(
        "device '{}' requested, but CUDA is not available: this LibTorch was built without CUDA "
        "or no GPU is visible",
        device.str()));
  }
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  const int64_t index = device.has_index() ? device.index() : 0;
  if (index >= count) {
    return absl::InvalidArgumentError(fmt::format(
        "device '{}' requested, but only {} CUDA device(s) are visible", device.str(), count));
  }
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
}

// TorchScript's CPU fusion compiles kernels with LLVM at run time in LibTorch builds that have it
// (the official builds do not): minutes for a small MLP on one thread. Off for the process, once,
// before the first session runs, so that kProfiling means the same on every LibTorch.
void TurnOffCpuFusion() {
  static const bool done = [] {
    torch::jit::overrideCanFuseOnCPU(false);
    return true;
  }();
  (void)done;
}

}  // namespace maas::internal
