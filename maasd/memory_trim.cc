#include "memory_trim.h"

#include <algorithm>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace maasd {

using maas::internal::MutexLock;

MemoryTrimmer::MemoryTrimmer(absl::Duration period, int64_t growth_bytes)
    : thread_([this, period, growth_bytes] { Loop(period, growth_bytes); }) {}

MemoryTrimmer::~MemoryTrimmer() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  thread_.join();
}

void MemoryTrimmer::Loop(absl::Duration period, int64_t growth_bytes) {
#if defined(__GLIBC__)
  // Free bytes held in malloc's heaps, the lowest since the last trim: what grew above it
  // was freed since (a trim does not lower the count: the pages it returns stay counted as
  // free chunks).
  const auto free_in_heaps = [] { return static_cast<int64_t>(mallinfo2().fordblks); };
  int64_t low_water = free_in_heaps();
  MutexLock lock(&mu_);
  while (!stopping_) {
    wake_.WaitUntil(&mu_, absl::Now() + period);
    if (stopping_) break;
    const int64_t free_now = free_in_heaps();
    if (free_now > low_water + growth_bytes) {
      malloc_trim(0);
      low_water = free_in_heaps();
    } else {
      low_water = std::min(low_water, free_now);
    }
  }
#else
  (void)period;
  (void)growth_bytes;
#endif
}

}  // namespace maasd
