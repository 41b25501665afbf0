// LibTorch's per-process and per-thread settings that sessions rely on: intra-op threads,
// streams, devices, and TorchScript's CPU fusion.
#ifndef MAAS_LIB_TORCH_RUNTIME_H_
#define MAAS_LIB_TORCH_RUNTIME_H_

#include <c10/core/Device.h>
#include <c10/core/Stream.h>

#include "absl/status/statusor.h"

namespace maas::internal {

// Sets the calling thread's intra-op thread count for LibTorch (and, with the OpenMP build of
// OpenBLAS, for BLAS) unless it already has it. LibTorch has no scoped setting; at::
// set_num_threads is per thread for OpenMP but also rebuilds a global pthreadpool when the count
// changes, so it is called only on a change.
void UseIntraOpThreads(int threads);

// A stream from LibTorch's pool for the calling thread on `device`, the same on every call.
// Device-generic (c10::Stream), so that this file needs no CUDA headers.
c10::Stream ThreadStream(c10::Device device);

// `device` as a session uses it (the CPU, or a CUDA device with its index: cuda means cuda:0).
// InvalidArgument for another kind of device or an index beyond the visible GPUs;
// FailedPrecondition when CUDA is not available.
absl::StatusOr<c10::Device> CheckDevice(c10::Device device);

// TorchScript's CPU fusion compiles kernels with LLVM at run time in LibTorch builds that have it
// (the official builds do not): minutes for a small MLP on one thread. Off for the process, once,
// before the first session runs, so that kProfiling means the same on every LibTorch.
void TurnOffCpuFusion();

}  // namespace maas::internal

#endif  // MAAS_LIB_TORCH_RUNTIME_H_
