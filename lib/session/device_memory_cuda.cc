// DeviceReservedBytes for a LibTorch built with CUDA (compiled only then: lib/CMakeLists.txt).
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include "session/device_memory.h"

namespace maas::internal {

int64_t DeviceReservedBytes(c10::Device device) {
  if (!device.is_cuda()) return 0;
  try {
    const c10::DeviceIndex index =
        device.has_index() ? device.index() : c10::cuda::current_device();
    // Index 0 is StatType::AGGREGATE in every LibTorch version; the enum itself moved from
    // c10::cuda::CUDACachingAllocator to c10::CachingDeviceAllocator in 2.6, the struct stayed.
    return c10::cuda::CUDACachingAllocator::getDeviceStats(index).reserved_bytes[0].current;
  } catch (...) {
    return 0;
  }
}

}  // namespace maas::internal
