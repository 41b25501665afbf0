// DeviceReservedBytes for a LibTorch built without CUDA: no device allocator to ask.
#include "session/device_memory.h"

namespace maas::internal {

int64_t DeviceReservedBytes(c10::Device) { return 0; }

}  // namespace maas::internal
