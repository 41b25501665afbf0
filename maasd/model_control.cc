#include "model_control.h"

#include <algorithm>
#include <optional>
#include <set>

#include "util/absl_compat.h"
#include "fmt/core.h"
#include "util/posix_files.h"

namespace maasd {

using maas::internal::MutexLock;

ModelControl::ModelControl(ModelControlOptions options) : options_(std::move(options)) {
  std::error_code ignored;  // What cannot be resolved is not replaced.
  for (const std::filesystem::path& path :
       {options_.store_root, maas::internal::posix::Absolute(options_.store_root, ignored),
        maas::internal::posix::Canonical(options_.store_root, ignored)}) {
    std::string text = path.string();
    while (text.size() > 1 && text.back() == '/') text.pop_back();
    if (text.size() > 1 && text != "." &&
        std::find(store_paths_.begin(), store_paths_.end(), text) == store_paths_.end()) {
      store_paths_.push_back(std::move(text));
    }
  }
  // The longest first: a path that contains another is replaced whole.
  std::sort(store_paths_.begin(), store_paths_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

absl::Status ModelControl::ForClients(const absl::Status& status) const {
  if (status.ok()) return status;
  const std::string_view message = maas::internal::FromAbsl(status.message());
  std::string redacted = ForClients(message);
  if (redacted == message) return status;
  return absl::Status(status.code(), maas::internal::ToAbsl(redacted));
}

std::string ModelControl::ForClients(std::string_view message) const {
  std::string text(message);
  for (const std::string& path : store_paths_) {
    for (size_t at = text.find(path); at != std::string::npos; at = text.find(path, at + 1)) {
      text.replace(at, path.size(), "<model-store>");
    }
  }
  return text;
}

absl::StatusOr<std::unique_ptr<ModelControl>> ModelControl::Start(ModelControlOptions options) {
  std::unique_ptr<ModelControl> control(new ModelControl(std::move(options)));
  const ModelControlOptions& opts = control->options_;
  maas::ModelStoreOptions store_options;
  store_options.create_if_missing = false;
  store_options.read_only = true;
  absl::StatusOr<std::unique_ptr<maas::ModelStore>> store =
      maas::ModelStore::Open(opts.store_root, store_options);
  if (!store.ok()) return store.status();
  control->store_ = *std::move(store);
  maas::ServerOptions server_options = opts.server;
  // Only poll mode follows the store; the others serve what they loaded.
  server_options.watch_interval =
      opts.mode == ModelControlMode::kPoll ? opts.poll_interval : absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<maas::Server>> server =
      maas::Server::Create(opts.store_root, server_options);
  if (!server.ok()) return server.status();
  control->server_ = *std::move(server);

  std::vector<std::string> models = opts.models;
  if (models.empty() && opts.mode != ModelControlMode::kExplicit) {
    absl::StatusOr<std::vector<std::string>> all = control->store_->Models();
    if (!all.ok()) return all.status();
    models = *std::move(all);
  }
  for (const std::string& spec : models) {
    absl::Status deployed = control->Deploy(spec);
    // A model that fails to load stays deployed and reported (its status says why); a malformed
    // request of the operator stops the start.
    if (absl::IsInvalidArgument(deployed)) return deployed;
  }
  control->thread_ = std::thread([raw = control.get()] { raw->ControlLoop(); });
  return control;
}

ModelControl::~ModelControl() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.SignalAll();
  if (thread_.joinable()) thread_.join();
  // Loads and unloads not begun are answered: their callers wait for an answer.
  std::deque<Change> left;
  {
    MutexLock lock(&mu_);
    left.swap(work_);
  }
  for (Change& change : left) change.done(absl::CancelledError("maasd is stopping"));
  server_.reset();  // Answers what is queued, joins the workers.
}

absl::Status ModelControl::Deploy(const std::string& spec) {
  const size_t at = spec.find('@');
  const std::string name = spec.substr(0, at);
  maas::DeployOptions options;
  if (at != std::string::npos) {
    const std::string selector = spec.substr(at + 1);
    if (selector.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("--model {}: expected NAME or NAME@VERSION-OR-ALIAS", spec));
    }
    options.policy = maas::VersionPolicy::Specific({selector});
  }
  return server_->Deploy(name, options);
}

bool ModelControl::Ready() const {
  for (const std::string& model : server_->Models()) {
    absl::StatusOr<maas::ModelStatus> status = server_->Describe(model);
    if (!status.ok() || !status->ready) return false;
  }
  return true;
}

absl::StatusOr<ModelControl::VersionFacts> ModelControl::Facts(const std::string& model,
                                                               int64_t version) {
  const auto key = std::make_pair(model, version);
  {
    MutexLock lock(&signatures_mu_);
    if (auto found = signatures_.find(key); found != signatures_.end()) return found->second;
  }
  absl::StatusOr<maas::ModelInfo> info = store_->Get(model, std::to_string(version));
  if (!info.ok()) return info.status();
  MutexLock lock(&signatures_mu_);
  return signatures_.emplace(key, VersionFacts{info->signature, info->format}).first->second;
}

absl::StatusOr<maas::ModelSignature> ModelControl::Signature(const std::string& model,
                                                             int64_t version) {
  absl::StatusOr<VersionFacts> facts = Facts(model, version);
  if (!facts.ok()) return facts.status();
  return std::move(facts->signature);
}

absl::StatusOr<maas::ModelFormat> ModelControl::Format(const std::string& model, int64_t version) {
  absl::StatusOr<VersionFacts> facts = Facts(model, version);
  if (!facts.ok()) return facts.status();
  return facts->format;
}

absl::StatusOr<int64_t> ModelControl::ServedVersion(const std::string& model,
                                                    const std::string& selector) {
  // The Server resolves it as its routing does: one meaning of "latest" (the newest ready).
  absl::StatusOr<int64_t> version = server_->ResolveVersion(model, selector);
  if (!absl::IsUnavailable(version.status())) return version;
  // Nothing ready yet: the protocols call that an unknown version, with the reason.
  return absl::NotFoundError(std::string(version.status().message()));
}

void ModelControl::Load(std::string model, std::function<void(absl::Status)> done) {
  OnControlThread([this, model = std::move(model)] { return Deploy(model); }, std::move(done));
}

void ModelControl::Unload(std::string model, std::function<void(absl::Status)> done) {
  OnControlThread([this, model = std::move(model)] { return server_->Undeploy(model); },
                  std::move(done));
}

void ModelControl::OnControlThread(std::function<absl::Status()> change,
                                   std::function<void(absl::Status)> done) {
  if (options_.mode != ModelControlMode::kExplicit) {
    return done(absl::FailedPreconditionError(
        "loading and unloading models is only allowed with --model-control-mode=explicit"));
  }
  MutexLock lock(&mu_);
  work_.push_back({std::move(change), std::move(done)});
  wake_.Signal();
}

void ModelControl::ControlLoop() {
  absl::Time next_poll = absl::Now() + options_.poll_interval;
  while (true) {
    std::optional<Change> job;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && work_.empty()) {
        if (options_.mode == ModelControlMode::kPoll &&
            options_.poll_interval > absl::ZeroDuration()) {
          if (absl::Now() >= next_poll) break;
          wake_.WaitUntil(&mu_, next_poll);
        } else {
          wake_.Wait(&mu_);
        }
      }
      if (stopping_) return;
      if (!work_.empty()) {
        job = std::move(work_.front());
        work_.pop_front();
      }
    }
    if (job) {
      job->done(job->apply());
      continue;
    }
    next_poll = absl::Now() + options_.poll_interval;
    PollModels();
  }
}

// Poll mode: the store's models are the served models (or those of --model that exist).
void ModelControl::PollModels() {
  absl::StatusOr<std::vector<std::string>> in_store = store_->Models();
  if (!in_store.ok()) return;  // Unreadable now: try again next time, change nothing.
  std::set<std::string> wanted(in_store->begin(), in_store->end());
  if (!options_.models.empty()) {
    std::set<std::string> named;
    for (const std::string& spec : options_.models) named.insert(spec.substr(0, spec.find('@')));
    std::set<std::string> both;
    std::set_intersection(wanted.begin(), wanted.end(), named.begin(), named.end(),
                          std::inserter(both, both.begin()));
    wanted = std::move(both);
  }
  const std::vector<std::string> served = server_->Models();
  for (const std::string& model : served) {
    if (!wanted.count(model)) (void)server_->Undeploy(model);
  }
  for (const std::string& model : wanted) {
    if (std::find(served.begin(), served.end(), model) != served.end()) continue;
    std::string spec = model;
    for (const std::string& s : options_.models) {
      if (s.substr(0, s.find('@')) == model) spec = s;
    }
    (void)Deploy(spec);
  }
}

}  // namespace maasd
