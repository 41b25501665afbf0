// Gives freed memory back to the operating system when much of it has piled up.
//
// glibc's malloc returns large blocks (above its mmap threshold) at free, but keeps the pages
// of small freed blocks in its heaps. A burst of small allocations, such as gRPC's per-stream
// state when a client opens and cancels thousands of streams (HTTP/2 "rapid reset"), leaves
// hundreds of MiB resident though free. malloc_trim(0) returns those pages; this calls it
// when the free bytes in malloc's heaps have grown by `growth_bytes` since the last trim
// (mallinfo2, checked once a `period`). A no-op where malloc is not glibc's (a sanitizer's allocator returns memory on
// its own schedule).
#ifndef MAASD_MEMORY_TRIM_H_
#define MAASD_MEMORY_TRIM_H_

#include <cstdint>
#include <thread>

#include "absl/time/time.h"
#include "util/mutex.h"

namespace maasd {

// This class is thread-compatible; its thread only asks malloc for statistics and trims.
class MemoryTrimmer {
 public:
  MemoryTrimmer(absl::Duration period, int64_t growth_bytes);
  ~MemoryTrimmer();  // Stops the thread.
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

 private:
  void Loop(absl::Duration period, int64_t growth_bytes);

  maas::internal::Mutex mu_;
  maas::internal::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace maasd

#endif  // MAASD_MEMORY_TRIM_H_
