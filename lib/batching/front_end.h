// What the two request front ends, Scheduler and Server, share: the models they serve by name,
// and the request entry points that do not depend on how a model is served.
#ifndef MAAS_LIB_FRONT_END_H_
#define MAAS_LIB_FRONT_END_H_

#include <future>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "fmt/core.h"
#include "maas/request.h"
#include "util/mutex.h"

namespace maas::internal {

// The models of a front end by name: ModelExecutors for a Scheduler, Deployments for a Server.
// The request path only looks a name up (a shared pointer copied under a short lock).
// This class is thread-safe.
template <typename Model>
class ModelRegistry {
 public:
  // Messages say "model 'x' is not <state> (<listed>: a, b)", e.g. state "served by this
  // scheduler" and listed "served".
  ModelRegistry(std::string state, std::string listed)
      : state_(std::move(state)), listed_(std::move(listed)) {}

  std::shared_ptr<Model> Find(std::string_view name) const {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    return it == models_.end() ? nullptr : it->second;
  }

  // NotFound naming the model and listing those that are served.
  absl::Status NotFound(std::string_view name) const {
    std::vector<std::string> names = Names();
    return absl::NotFoundError(fmt::format("model '{}' is not {} ({}: {})", name, state_, listed_,
                                           names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }

  // Adds `model` unless the name is taken; returns whether it did.
  bool Add(std::string_view name, std::shared_ptr<Model> model) {
    MutexLock lock(&mu_);
    return models_.emplace(std::string(name), std::move(model)).second;
  }

  // Puts `model` in the place of the model of that name and returns the one it replaced, or
  // null (and changes nothing) when there is none.
  std::shared_ptr<Model> Replace(std::string_view name, std::shared_ptr<Model> model) {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return nullptr;
    return std::exchange(it->second, std::move(model));
  }

  // Removes the model of that name and returns it, or null when there is none.
  std::shared_ptr<Model> Remove(std::string_view name) {
    MutexLock lock(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return nullptr;
    std::shared_ptr<Model> model = std::move(it->second);
    models_.erase(it);
    return model;
  }

  // Every model, by name; TakeAll also empties the registry.
  std::vector<std::shared_ptr<Model>> All() const {
    MutexLock lock(&mu_);
    std::vector<std::shared_ptr<Model>> all;
    for (const auto& [name, model] : models_) all.push_back(model);
    return all;
  }
  std::vector<std::shared_ptr<Model>> TakeAll() {
    MutexLock lock(&mu_);
    std::vector<std::shared_ptr<Model>> all;
    for (auto& [name, model] : models_) all.push_back(std::move(model));
    models_.clear();
    return all;
  }

  // The names, sorted.
  std::vector<std::string> Names() const {
    MutexLock lock(&mu_);
    std::vector<std::string> names;
    for (const auto& [name, model] : models_) names.push_back(name);
    return names;
  }

 private:
  const std::string state_;
  const std::string listed_;
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Model>, std::less<>> models_ ABSL_GUARDED_BY(mu_);
};

// InvalidArgument for a Submit without a callback (an InferenceCallback or ServedCallback).
template <typename Callback>
absl::Status CheckCallback(const Callback& done) {
  if (done) return absl::OkStatus();
  return absl::InvalidArgumentError("Submit needs a completion callback");
}

// The future form of Submit: `submit(callback)` submits with that callback; the future holds
// the answer, or Submit's own error.
template <typename SubmitWithCallback>
std::future<InferenceResult> SubmitForFuture(SubmitWithCallback submit) {
  auto promise = std::make_shared<std::promise<InferenceResult>>();
  std::future<InferenceResult> future = promise->get_future();
  absl::Status submitted =
      submit([promise](InferenceResult result) { promise->set_value(std::move(result)); });
  if (!submitted.ok()) promise->set_value(std::move(submitted));
  return future;
}

}  // namespace maas::internal

#endif  // MAAS_LIB_FRONT_END_H_
