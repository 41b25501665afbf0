// LibTorch's warnings, routed to the library's log instead of stderr.
#ifndef MAAS_LIB_TORCH_WARNINGS_H_
#define MAAS_LIB_TORCH_WARNINGS_H_

#include <c10/util/Exception.h>
#include <torch/version.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_set>

#include "util/mutex.h"

namespace maas::internal {

// Receives the LibTorch warnings raised on a thread while a Session runs there (c10's warning
// handler is per thread): counts them all and logs each warning site once, naming the session.
// Why once per site and not per message: the most common warning while serving ("An output
// with one or more elements was resized since it had shape [16, 10] ...") names the shapes, so
// each new batch size would make a new message. At most kMaxSites sites are remembered; later
// ones are only counted.
//
// This class is thread-safe.
class TorchWarnings final : public c10::WarningHandler {
 public:
  static constexpr size_t kMaxSites = 64;

  // `label` names the session in messages ("model 'mlp' version 3 on cpu").
  explicit TorchWarnings(std::string label) : label_(std::move(label)) {}

  int64_t count() const { return count_.load(std::memory_order_relaxed); }

#if TORCH_VERSION_MAJOR >= 2
  void process(const c10::Warning& warning) override;
#else
  void process(const c10::SourceLocation& source_location, const std::string& msg,
               bool verbatim) override;
#endif

  // Makes `warnings` the calling thread's warning handler for the guard's life.
  class Scope {
   public:
    explicit Scope(TorchWarnings* warnings);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    c10::WarningHandler* const previous_;
  };

 private:
  void Receive(const c10::SourceLocation& where, const std::string& message);

  const std::string label_;
  std::atomic<int64_t> count_{0};
  Mutex mu_;
  std::unordered_set<std::string> sites_ ABSL_GUARDED_BY(mu_);  // "file:line"
};

}  // namespace maas::internal

#endif  // MAAS_LIB_TORCH_WARNINGS_H_
