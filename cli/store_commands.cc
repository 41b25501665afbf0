#include "store_commands.h"

#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "util/json.h"
#include "store/manifest.h"
#include "util/utf8.h"

namespace maas::cli {
namespace {

using internal::Json;

// `text` safe for a terminal: what comes from a store's files (descriptions, tensor names)
// could hold escape sequences that move the cursor, retitle the window or worse. Control
// characters other than newline and tab, and bytes that are not UTF-8, are shown escaped
// (\x1b), the way Python's repr shows them.
std::string TerminalSafe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t length = internal::Utf8SequenceLength(text.substr(i));
    const bool c1_control = length == 2 && c == 0xC2 &&
                            static_cast<unsigned char>(text[i + 1]) < 0xA0;  // U+0080-U+009F
    if (length == 0 || c1_control || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
      const size_t bytes = length == 0 ? 1 : length;
      for (size_t k = 0; k < bytes; ++k) {
        out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[i + k]));
      }
      i += bytes;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

// Human-readable output. (JSON output escapes control characters itself.)
void Print(const std::string& text) {
  const std::string safe = TerminalSafe(text);
  std::fwrite(safe.data(), 1, safe.size(), stdout);
}

void PrintRaw(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

void PrintJson(const Json& json) { PrintRaw(internal::DumpJson(json)); }

std::string Time(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string Size(int64_t bytes) {
  if (bytes < 10 * 1024) return fmt::format("{} B", bytes);
  if (bytes < 10 * 1024 * 1024) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024.0));
}

absl::StatusOr<int64_t> VersionNumber(std::string_view text) {
  int64_t number = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc() || end != text.data() + text.size() || number < 1) {
    return absl::InvalidArgumentError(
        fmt::format("'{}' is not a version number (1, 2, 3, ...)", text));
  }
  return number;
}

// "name:dtype:dims", the name possibly holding colons itself.
absl::StatusOr<TensorSpec> ParseTensor(std::string_view text) {
  const size_t last = text.rfind(':');
  const size_t middle = last == std::string_view::npos || last == 0 ? std::string_view::npos
                                                                    : text.rfind(':', last - 1);
  if (middle == std::string_view::npos || middle == 0) {
    return absl::InvalidArgumentError(fmt::format(
        "'{}' is not NAME:DTYPE:DIMS (e.g. image:float32:3,224,224, or x:int64: for a scalar)",
        text));
  }
  TensorSpec spec;
  spec.name = std::string(text.substr(0, middle));
  absl::StatusOr<c10::ScalarType> dtype = ParseDtype(text.substr(middle + 1, last - middle - 1));
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("'{}': {}", text, internal::FromAbsl(dtype.status().message())));
  }
  spec.dtype = *dtype;
  const std::string_view dims = text.substr(last + 1);
  if (!dims.empty()) {
    for (absl::string_view dim : absl::StrSplit(absl::string_view(dims.data(), dims.size()), ',')) {
      int64_t size = 0;
      const auto [end, error] = std::from_chars(dim.data(), dim.data() + dim.size(), size);
      if (error != std::errc() || end != dim.data() + dim.size() || size < kAnyDim) {
        return absl::InvalidArgumentError(fmt::format(
            "'{}': dimension '{}' is not a size (a non-negative integer, or -1 for any)", text,
            std::string_view(dim.data(), dim.size())));
      }
      spec.shape.push_back(size);
    }
  }
  return spec;
}

absl::StatusOr<ModelSignature> SignatureOf(const PublishRequest& request) {
  if (!request.signature_file.empty()) {
    if (!request.inputs.empty() || !request.outputs.empty()) {
      return absl::InvalidArgumentError(
          "give either --signature or --input and --output, not both");
    }
    std::ifstream file(request.signature_file);
    if (!file) {
      return absl::NotFoundError(fmt::format("cannot read {}", request.signature_file));
    }
    std::stringstream text;
    text << file.rdbuf();
    absl::StatusOr<Json> json = internal::ParseJson(text.str());
    if (!json.ok()) {
      return absl::InvalidArgumentError(fmt::format("{}: {}", request.signature_file,
                                                    internal::FromAbsl(json.status().message())));
    }
    return internal::SignatureFromJson(*json, request.signature_file);
  }
  if (request.inputs.empty() || request.outputs.empty()) {
    return absl::InvalidArgumentError(
        "the signature is needed: --input and --output (each at least once), or --signature");
  }
  ModelSignature signature;
  signature.batchable = !request.not_batchable;
  for (const std::string& input : request.inputs) {
    absl::StatusOr<TensorSpec> spec = ParseTensor(input);
    if (!spec.ok()) return spec.status();
    signature.inputs.push_back(*std::move(spec));
  }
  for (const std::string& output : request.outputs) {
    absl::StatusOr<TensorSpec> spec = ParseTensor(output);
    if (!spec.ok()) return spec.status();
    signature.outputs.push_back(*std::move(spec));
  }
  return signature;
}

Json InfoJson(const ModelInfo& info) {
  Json json;
  json["name"] = info.name;
  json["version"] = info.version;
  json["sha256"] = info.sha256;
  json["size_bytes"] = info.size_bytes;
  json["model_format"] = std::string(ModelFormatName(info.format));
  json["created"] = absl::FormatTime(absl::RFC3339_full, info.created, absl::UTCTimeZone());
  json["description"] = info.description;
  json["labels"] = Json::object();
  for (const auto& [key, value] : info.labels) json["labels"][key] = value;
  json["signature"] = internal::SignatureToJson(info.signature);
  json["artifact"] = info.artifact_path.string();
  return json;
}

std::string TensorsText(const std::vector<TensorSpec>& tensors) {
  std::vector<std::string> parts;
  for (const TensorSpec& t : tensors) {
    parts.push_back(fmt::format("{} {} {}", t.name, DtypeName(t.dtype), ShapeString(t.shape)));
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

absl::Status Publish(ModelStore& store, const PublishRequest& request, bool json) {
  absl::StatusOr<ModelSignature> signature = SignatureOf(request);
  if (!signature.ok()) return signature.status();
  PublishOptions options;
  options.description = request.description;
  for (const std::string& label : request.labels) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(fmt::format("--label '{}' is not KEY=VALUE", label));
    }
    options.labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  absl::StatusOr<ModelInfo> info = store.Publish(request.model, request.file, *signature, options);
  if (!info.ok()) return info.status();
  for (const std::string& alias : request.aliases) {
    if (absl::Status s = store.SetAlias(request.model, alias, info->version); !s.ok()) {
      return absl::Status(s.code(), fmt::format("published {} version {}, but: {}", request.model,
                                                info->version, internal::FromAbsl(s.message())));
    }
  }
  if (json) {
    PrintJson(InfoJson(*info));
  } else {
    Print(fmt::format(
        "published {} version {} ({}, sha256 {}){}\n", info->name, info->version,
        Size(info->size_bytes), info->sha256,
        request.aliases.empty()
            ? ""
            : fmt::format("; {} -> {}", absl::StrJoin(request.aliases, ", "), info->version)));
  }
  return absl::OkStatus();
}

absl::Status List(const ModelStore& store, bool json) {
  absl::StatusOr<std::vector<std::string>> models = store.Models();
  if (!models.ok()) return models.status();
  Json list = Json::array();
  std::string text =
      fmt::format("{:<24} {:>8} {:>7}  {}\n", "MODEL", "VERSIONS", "LATEST", "ALIASES");
  for (const std::string& model : *models) {
    absl::StatusOr<std::vector<int64_t>> versions = store.Versions(model);
    absl::StatusOr<std::map<std::string, int64_t>> aliases = store.Aliases(model);
    if (!versions.ok()) return versions.status();
    if (!aliases.ok()) return aliases.status();
    Json entry;
    entry["name"] = model;
    entry["versions"] = *versions;
    entry["latest"] = versions->back();
    entry["aliases"] = Json::object();
    std::vector<std::string> alias_text;
    for (const auto& [alias, version] : *aliases) {
      entry["aliases"][alias] = version;
      alias_text.push_back(fmt::format("{}={}", alias, version));
    }
    list.push_back(std::move(entry));
    text += fmt::format("{:<24} {:>8} {:>7}  {}\n", model, versions->size(), versions->back(),
                        absl::StrJoin(alias_text, " "));
  }
  if (json) {
    PrintJson(list);
  } else {
    Print(text);
  }
  return absl::OkStatus();
}

absl::Status Describe(const ModelStore& store, const std::string& model, bool json) {
  absl::StatusOr<std::vector<int64_t>> versions = store.Versions(model);
  if (!versions.ok()) return versions.status();
  absl::StatusOr<std::map<std::string, int64_t>> aliases = store.Aliases(model);
  if (!aliases.ok()) return aliases.status();
  Json out;
  out["name"] = model;
  out["aliases"] = Json::object();
  std::vector<std::string> alias_text;
  for (const auto& [alias, version] : *aliases) {
    out["aliases"][alias] = version;
    alias_text.push_back(fmt::format("{} -> {}", alias, version));
  }
  out["versions"] = Json::array();
  std::string text = fmt::format("model {}\naliases: {}\n{:<8} {:<21} {:>10}  {:<16}  {}\n", model,
                                 alias_text.empty() ? "none" : absl::StrJoin(alias_text, ", "),
                                 "VERSION", "CREATED", "SIZE", "SHA256", "DESCRIPTION");
  for (const int64_t version : *versions) {
    absl::StatusOr<ModelInfo> info = store.Get(model, std::to_string(version));
    if (!info.ok()) return info.status();
    out["versions"].push_back(InfoJson(*info));
    text += fmt::format("{:<8} {:<21} {:>10}  {:<16}  {}\n", version, Time(info->created),
                        Size(info->size_bytes), info->sha256.substr(0, 16), info->description);
    if (version == versions->back()) {
      const ModelSignature& signature = info->signature;
      std::string batches = signature.batchable ? "batchable" : "not batchable";
      if (signature.min_batch_size != 1 || signature.max_batch_size != 0) {
        batches += signature.max_batch_size == 0
                       ? fmt::format(" (at least {} items a run)", signature.min_batch_size)
                       : fmt::format(" ({} to {} items a run)", signature.min_batch_size,
                                     signature.max_batch_size);
      }
      text += fmt::format("signature of version {} ({}): inputs {}; outputs {}; {}\n", version,
                          ModelFormatName(info->format), TensorsText(signature.inputs),
                          TensorsText(signature.outputs), batches);
    }
  }
  if (json) {
    PrintJson(out);
  } else {
    Print(text);
  }
  return absl::OkStatus();
}

absl::Status SetAlias(ModelStore& store, const std::string& model, const std::string& alias,
                      const std::string& version) {
  absl::StatusOr<int64_t> number = VersionNumber(version);
  if (!number.ok()) return number.status();
  absl::Status status = store.SetAlias(model, alias, *number);
  if (status.ok()) Print(fmt::format("{} {} -> {}\n", model, alias, *number));
  return status;
}

absl::Status RemoveAlias(ModelStore& store, const std::string& model, const std::string& alias) {
  absl::Status status = store.RemoveAlias(model, alias);
  if (status.ok()) Print(fmt::format("removed alias {} of {}\n", alias, model));
  return status;
}

absl::Status Verify(const ModelStore& store, const std::string& target, bool json) {
  std::vector<std::pair<std::string, std::string>> checks;  // model, version
  if (target.empty() || target.find('@') == std::string::npos) {
    std::vector<std::string> models;
    if (target.empty()) {
      absl::StatusOr<std::vector<std::string>> all = store.Models();
      if (!all.ok()) return all.status();
      models = *std::move(all);
    } else {
      models.push_back(target);
    }
    for (const std::string& model : models) {
      absl::StatusOr<std::vector<int64_t>> versions = store.Versions(model);
      if (!versions.ok()) return versions.status();
      for (const int64_t v : *versions) checks.emplace_back(model, std::to_string(v));
    }
  } else {
    const size_t at = target.find('@');
    checks.emplace_back(target.substr(0, at), target.substr(at + 1));
  }
  Json results = Json::array();
  std::string text;
  absl::Status worst;
  int failed = 0;
  for (const auto& [model, version] : checks) {
    absl::Status status = store.Verify(model, version);
    Json entry;
    entry["model"] = model;
    entry["version"] = version;
    entry["ok"] = status.ok();
    if (status.ok()) {
      text += fmt::format("ok      {} {}\n", model, version);
    } else {
      ++failed;
      entry["error"] = std::string(internal::FromAbsl(status.message()));
      text +=
          fmt::format("FAILED  {} {}: {}\n", model, version, internal::FromAbsl(status.message()));
      // Corruption is what verify looks for; another error (a missing model) says more.
      if (worst.ok() || absl::IsDataLoss(worst)) worst = status;
    }
    results.push_back(std::move(entry));
  }
  if (json) {
    PrintJson(results);
  } else {
    Print(text);
  }
  if (failed > 0) {
    return absl::Status(worst.code(), fmt::format("{} of {} version(s) failed verification", failed,
                                                  checks.size()));
  }
  return absl::OkStatus();
}

absl::Status Remove(ModelStore& store, const std::string& model, const std::string& version) {
  absl::StatusOr<int64_t> number = VersionNumber(version);
  if (!number.ok()) return number.status();
  absl::Status status = store.Remove(model, *number);
  if (status.ok()) Print(fmt::format("removed {} version {}\n", model, *number));
  return status;
}

absl::Status CollectGarbage(ModelStore& store, bool json) {
  absl::StatusOr<std::vector<std::filesystem::path>> removed = store.RemoveAbandoned();
  if (!removed.ok()) return removed.status();
  if (json) {
    Json out;
    out["removed"] = Json::array();
    for (const auto& path : *removed) out["removed"].push_back(path.string());
    PrintJson(out);
  } else {
    for (const auto& path : *removed) Print(fmt::format("removed {}\n", path.string()));
    Print(
        fmt::format("{} leftover(s) of crashed publishers or removers removed\n", removed->size()));
  }
  return absl::OkStatus();
}

}  // namespace maas::cli
