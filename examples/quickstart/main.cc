// maas quickstart: create a model store, publish a model into it, look inside, and run it.
//
//   scripts/demo                 # builds everything, then runs this in ./maas-demo-store
//   build/examples/quickstart [store-folder]
//
// Every run publishes a new version, points the "stable" alias at it and keeps the three
// newest versions, so running it twice shows versioning at work.
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/time/time.h"
#include "maas/maas.h"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kIn = 512, kHidden = 1024, kOut = 10;

// Builds the MLP 512-1024-1024-10 as a TorchScript module, in C++, with random weights.
torch::jit::Module BuildMlp() {
  torch::jit::Module mlp("Mlp");
  auto layer = [&](const std::string& name, int64_t in, int64_t out) {
    mlp.register_parameter(name + "_w", torch::randn({out, in}) / std::sqrt(double(in)), false);
    mlp.register_parameter(name + "_b", torch::zeros({out}), false);
  };
  layer("fc1", kIn, kHidden);
  layer("fc2", kHidden, kHidden);
  layer("fc3", kHidden, kOut);
  mlp.define(R"(
    def forward(self, x: Tensor) -> Tensor:
      x = torch.relu(torch.linear(x, self.fc1_w, self.fc1_b))
      x = torch.relu(torch.linear(x, self.fc2_w, self.fc2_b))
      return torch.linear(x, self.fc3_w, self.fc3_b)
  )");
  return mlp;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path root = argc > 1 ? fs::path(argv[1]) : fs::current_path() / "maas-demo-store";
  std::printf("maas %s quickstart\n\n", maas::Version());

  // 1. Open (or create) the store.
  absl::StatusOr<std::unique_ptr<maas::ModelStore>> store = maas::ModelStore::Open(root);
  if (!store.ok()) return Fail(store.status());
  std::printf("store   %s\n", (*store)->root().c_str());

  // 2. Build a model and publish it with its signature: one float32 input of 512 features per
  //    item, one output of 10 scores per item; dimension 0 is the batch.
  fs::path artifact = fs::temp_directory_path() / "maas-quickstart-mlp.pt";
  BuildMlp().save(artifact.string());
  maas::ModelSignature signature{{{"features", torch::kFloat32, {kIn}}},
                                 {{"scores", torch::kFloat32, {kOut}}}};
  maas::PublishOptions publish_options;
  publish_options.description = "MLP 512-1024-1024-10 with random weights, from the quickstart";
  publish_options.labels = {{"source", "examples/quickstart"}};
  absl::StatusOr<maas::ModelInfo> published =
      (*store)->Publish("mlp", artifact, signature, publish_options);
  fs::remove(artifact);
  if (!published.ok()) return Fail(published.status());
  std::printf("publish mlp -> version %lld (%.1f MB, sha256 %.16s...)\n",
              static_cast<long long>(published->version), published->size_bytes / 1e6,
              published->sha256.c_str());

  // 3. Point "stable" at it and keep the three newest versions.
  if (absl::Status s = (*store)->SetAlias("mlp", "stable", published->version); !s.ok()) {
    return Fail(s);
  }
  absl::StatusOr<std::vector<int64_t>> versions = (*store)->Versions("mlp");
  if (!versions.ok()) return Fail(versions.status());
  for (size_t i = 0; i + 3 < versions->size(); ++i) {
    if (absl::Status s = (*store)->Remove("mlp", (*versions)[i]); !s.ok()) return Fail(s);
    std::printf("remove  mlp version %lld (keeping the three newest)\n",
                static_cast<long long>((*versions)[i]));
  }

  // 4. List what the store holds.
  std::printf("\n%-12s %-8s %-10s %-20s %s\n", "MODEL", "VERSION", "SIZE", "CREATED (UTC)",
              "ALIASES");
  absl::StatusOr<std::vector<std::string>> models = (*store)->Models();
  if (!models.ok()) return Fail(models.status());
  for (const std::string& name : *models) {
    absl::StatusOr<std::map<std::string, int64_t>> aliases = (*store)->Aliases(name);
    absl::StatusOr<std::vector<int64_t>> model_versions = (*store)->Versions(name);
    if (!aliases.ok()) return Fail(aliases.status());
    if (!model_versions.ok()) return Fail(model_versions.status());
    for (int64_t version : *model_versions) {
      absl::StatusOr<maas::ModelInfo> info = (*store)->Get(name, std::to_string(version));
      if (!info.ok()) return Fail(info.status());
      std::string alias_list;
      for (const auto& [alias, target] : *aliases) {
        if (target == version) alias_list += (alias_list.empty() ? "" : ", ") + alias;
      }
      std::printf("%-12s %-8lld %-10s %-20s %s\n", name.c_str(), static_cast<long long>(version),
                  (std::to_string(info->size_bytes / 1024) + " KiB").c_str(),
                  absl::FormatTime("%Y-%m-%d %H:%M:%S", info->created, absl::UTCTimeZone()).c_str(),
                  alias_list.c_str());
    }
  }

  // 5. Verify the stable version's integrity, load it in a Session and run it on 4 items.
  if (absl::Status s = (*store)->Verify("mlp", "stable"); !s.ok()) return Fail(s);
  maas::SessionOptions session_options;
  session_options.version = "stable";
  absl::StatusOr<std::unique_ptr<maas::Session>> session =
      maas::Session::Create(**store, "mlp", session_options);
  if (!session.ok()) return Fail(session.status());
  const maas::ModelInfo& stable = (*session)->info();
  std::printf("\nverify  mlp@stable (version %lld): sha256 matches the manifest\n",
              static_cast<long long>(stable.version));
  absl::StatusOr<std::vector<torch::Tensor>> scores = (*session)->Run({torch::randn({4, kIn})});
  if (!scores.ok()) return Fail(scores.status());
  torch::Tensor best = (*scores)[0].argmax(1).contiguous();
  std::vector<int64_t> best_class(best.data_ptr<int64_t>(),
                                  best.data_ptr<int64_t>() + best.numel());
  std::printf("run     mlp@stable on a batch of 4: output %s, best class per item %s\n",
              maas::ShapeString((*scores)[0].sizes().vec()).c_str(),
              maas::ShapeString(best_class).c_str());

  // 6. A malformed request gets a clear error, not a crash.
  absl::StatusOr<std::vector<torch::Tensor>> bad = (*session)->Run({torch::randn({4, 100})});
  std::printf("run     with 100 features instead of 512: %s\n", bad.status().ToString().c_str());

  std::printf(
      "\nLook inside: %s/mlp/%lld/manifest.json holds the signature, size, sha256 and time.\n"
      "Next: read docs/model-store.md and docs/session.md; run again to publish version %lld.\n",
      (*store)->root().c_str(), static_cast<long long>(stable.version),
      static_cast<long long>(stable.version + 1));
  return 0;
}
