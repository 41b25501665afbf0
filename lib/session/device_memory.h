// What a device's memory allocator holds, for the statistics (CUDA only; the CPU reports 0).
#ifndef MAAS_LIB_DEVICE_MEMORY_H_
#define MAAS_LIB_DEVICE_MEMORY_H_

#include <c10/core/Device.h>

#include <cstdint>

namespace maas::internal {

// Bytes that LibTorch's CUDA caching allocator holds reserved on `device` now (memory taken
// from the driver: live tensors and cached free blocks). 0 for the CPU, and where LibTorch was
// built without CUDA. Never throws.
int64_t DeviceReservedBytes(c10::Device device);

}  // namespace maas::internal

#endif  // MAAS_LIB_DEVICE_MEMORY_H_
