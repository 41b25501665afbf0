#include "store/manifest.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "maas/version.h"
#include "store/names.h"
#include "util/status_macros.h"

namespace maas::internal {
namespace {

// The member `key` of `object` (described as `where` in messages), which must have the type that
// `is_type` checks (named `type_name`).
absl::StatusOr<const Json*> Field(const Json& object, std::string_view key, std::string_view where,
                                  bool (*is_type)(const Json&), const char* type_name) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(
        fmt::format("{} must be an object, got {}", where, JsonTypeName(object)));
  }
  auto value = object.find(std::string(key));
  if (value == object.end()) {
    return absl::InvalidArgumentError(fmt::format("{} lacks the field \"{}\"", where, key));
  }
  if (!is_type(*value)) {
    return absl::InvalidArgumentError(fmt::format("field \"{}\" of {} must be {}, got {}", key,
                                                  where, type_name, JsonTypeName(*value)));
  }
  return &*value;
}

bool IsString(const Json& json) { return json.is_string(); }
bool IsArray(const Json& json) { return json.is_array(); }
bool IsObject(const Json& json) { return json.is_object(); }
bool IsBool(const Json& json) { return json.is_boolean(); }

absl::StatusOr<int64_t> IntField(const Json& o, std::string_view key, std::string_view where) {
  MAAS_ASSIGN_OR_RETURN(const Json* v, Field(o, key, where, &IsInt64, "an integer"));
  return v->get<int64_t>();
}

// An integer field that must lie in [low, high]: every number read from the store is bounded,
// so that no arithmetic on it can overflow.
absl::StatusOr<int64_t> BoundedField(const Json& o, std::string_view key, std::string_view where,
                                     int64_t low, int64_t high) {
  MAAS_ASSIGN_OR_RETURN(int64_t value, IntField(o, key, where));
  if (value < low || value > high) {
    return absl::InvalidArgumentError(
        fmt::format("field \"{}\" of {} is {}; expected {} to {}", key, where, value, low, high));
  }
  return value;
}

absl::StatusOr<std::string> StringField(const Json& o, std::string_view key,
                                        std::string_view where) {
  MAAS_ASSIGN_OR_RETURN(const Json* v, Field(o, key, where, &IsString, "a string"));
  return v->get<std::string>();
}

absl::Status CheckFormat(const Json& root, int64_t newest = kStoreFormat) {
  MAAS_ASSIGN_OR_RETURN(int64_t format, IntField(root, "format", "the file"));
  if (format < 1 || format > newest) {
    return absl::FailedPreconditionError(
        fmt::format("format {} is not supported by maas {} (it reads format 1 to {})", format,
                    Version(), newest));
  }
  return absl::OkStatus();
}

Json SpecsToJson(const std::vector<TensorSpec>& specs) {
  Json out = Json::array();
  for (const TensorSpec& spec : specs) {
    Json item;
    item["name"] = spec.name;
    item["dtype"] = DtypeName(spec.dtype);
    item["shape"] = spec.shape;
    out.push_back(std::move(item));
  }
  return out;
}

absl::StatusOr<std::vector<TensorSpec>> SpecsFromJson(const Json& signature, const char* key,
                                                      std::string_view where) {
  MAAS_ASSIGN_OR_RETURN(const Json* list, Field(signature, key, where, &IsArray, "an array"));
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& item = (*list)[i];
    std::string item_where = fmt::format("{}.{}[{}]", where, key, i);
    TensorSpec spec;
    MAAS_ASSIGN_OR_RETURN(spec.name, StringField(item, "name", item_where));
    MAAS_ASSIGN_OR_RETURN(std::string dtype, StringField(item, "dtype", item_where));
    absl::StatusOr<c10::ScalarType> parsed = ParseDtype(dtype);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: {}", item_where, parsed.status().message()));
    }
    spec.dtype = *parsed;
    MAAS_ASSIGN_OR_RETURN(const Json* shape,
                          Field(item, "shape", item_where, &IsArray, "an array"));
    for (const Json& dim : *shape) {
      if (!IsInt64(dim)) {
        return absl::InvalidArgumentError(
            fmt::format("{}.shape must hold integers, got {}", item_where, JsonTypeName(dim)));
      }
      spec.shape.push_back(dim.get<int64_t>());
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace

std::string_view ArtifactFileName(ModelFormat format) {
  return format == ModelFormat::kAotInductor ? "model.pt2" : "model.pt";
}

Json SignatureToJson(const ModelSignature& signature) {
  Json json;
  json["batchable"] = signature.batchable;
  json["inputs"] = SpecsToJson(signature.inputs);
  json["outputs"] = SpecsToJson(signature.outputs);
  // Written only when they limit something, so that other signatures read as before.
  if (signature.min_batch_size != 1) json["min_batch_size"] = signature.min_batch_size;
  if (signature.max_batch_size != 0) json["max_batch_size"] = signature.max_batch_size;
  return json;
}

absl::StatusOr<ModelSignature> SignatureFromJson(const Json& json, std::string_view where) {
  ModelSignature signature;
  MAAS_ASSIGN_OR_RETURN(const Json* batchable,
                        Field(json, "batchable", where, &IsBool, "a boolean"));
  signature.batchable = batchable->get<bool>();
  MAAS_ASSIGN_OR_RETURN(signature.inputs, SpecsFromJson(json, "inputs", where));
  MAAS_ASSIGN_OR_RETURN(signature.outputs, SpecsFromJson(json, "outputs", where));
  constexpr int64_t kMaxBatch = int64_t{1} << 40;
  if (json.contains("min_batch_size")) {
    MAAS_ASSIGN_OR_RETURN(signature.min_batch_size,
                          BoundedField(json, "min_batch_size", where, 1, kMaxBatch));
  }
  if (json.contains("max_batch_size")) {
    MAAS_ASSIGN_OR_RETURN(signature.max_batch_size,
                          BoundedField(json, "max_batch_size", where, 0, kMaxBatch));
  }
  if (absl::Status s = ValidateSignature(signature); !s.ok()) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", where, s.message()));
  }
  return signature;
}

std::string ManifestToText(const ModelInfo& info) {
  Json manifest;
  const bool package = info.format == ModelFormat::kAotInductor;
  manifest["format"] = package ? kPackageManifestFormat : kStoreFormat;
  manifest["name"] = info.name;
  manifest["version"] = info.version;
  manifest["artifact"] = std::string(ArtifactFileName(info.format));
  manifest["model_format"] = std::string(ModelFormatName(info.format));
  manifest["sha256"] = info.sha256;
  manifest["size_bytes"] = info.size_bytes;
  manifest["created"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", info.created, absl::UTCTimeZone());
  manifest["description"] = info.description;
  manifest["labels"] = Json::object();
  for (const auto& [key, value] : info.labels) manifest["labels"][key] = value;
  manifest["signature"] = SignatureToJson(info.signature);
  manifest["published_by"] = fmt::format("maas {}", Version());
  return DumpJson(manifest);
}

absl::StatusOr<ModelInfo> ManifestFromText(std::string_view text) {
  MAAS_ASSIGN_OR_RETURN(Json root, ParseJson(text));
  MAAS_RETURN_IF_ERROR(CheckFormat(root, kPackageManifestFormat));
  ModelInfo info;
  constexpr std::string_view kWhere = "the manifest";
  // Manifests written before packages existed have no model_format: TorchScript.
  if (root.contains("model_format")) {
    MAAS_ASSIGN_OR_RETURN(std::string format, StringField(root, "model_format", kWhere));
    if (format == ModelFormatName(ModelFormat::kAotInductor)) {
      info.format = ModelFormat::kAotInductor;
    } else if (format != ModelFormatName(ModelFormat::kTorchScript)) {
      return absl::InvalidArgumentError(fmt::format(
          "field \"model_format\" is \"{}\"; expected \"torchscript\" or \"aot_inductor\"", format));
    }
  }
  MAAS_ASSIGN_OR_RETURN(info.name, StringField(root, "name", kWhere));
  MAAS_ASSIGN_OR_RETURN(info.version, BoundedField(root, "version", kWhere, 1, kMaxVersion));
  MAAS_ASSIGN_OR_RETURN(info.sha256, StringField(root, "sha256", kWhere));
  if (info.sha256.size() != 64 ||
      info.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError(
        fmt::format("field \"sha256\" must be 64 lower-case hex digits, got \"{}\"", info.sha256));
  }
  constexpr int64_t kMaxArtifactBytes = int64_t{1} << 50;  // 1 PiB
  MAAS_ASSIGN_OR_RETURN(info.size_bytes,
                        BoundedField(root, "size_bytes", kWhere, 0, kMaxArtifactBytes));
  MAAS_ASSIGN_OR_RETURN(std::string created, StringField(root, "created", kWhere));
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, created, &info.created, &error)) {
    return absl::InvalidArgumentError(
        fmt::format("field \"created\" is not an RFC 3339 time: \"{}\" ({})", created, error));
  }
  if (auto description = root.find("description");
      description != root.end() && description->is_string()) {
    info.description = description->get<std::string>();
  }
  if (auto labels = root.find("labels"); labels != root.end() && labels->is_object()) {
    for (const auto& [key, value] : labels->items()) {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            fmt::format("label \"{}\" must be a string, got {}", key, JsonTypeName(value)));
      }
      info.labels[key] = value.get<std::string>();
    }
  }
  MAAS_ASSIGN_OR_RETURN(const Json* signature,
                        Field(root, "signature", kWhere, &IsObject, "an object"));
  MAAS_ASSIGN_OR_RETURN(info.signature, SignatureFromJson(*signature, "the signature"));
  return info;
}

std::string ModelMetaToText(std::string_view name, const ModelMeta& meta) {
  Json json;
  json["format"] = kStoreFormat;
  json["name"] = name;
  json["last_version"] = meta.last_version;
  json["aliases"] = Json::object();
  for (const auto& [alias, version] : meta.aliases) json["aliases"][alias] = version;
  return DumpJson(json);
}

absl::StatusOr<ModelMeta> ModelMetaFromText(std::string_view text) {
  MAAS_ASSIGN_OR_RETURN(Json root, ParseJson(text));
  MAAS_RETURN_IF_ERROR(CheckFormat(root));
  ModelMeta meta;
  MAAS_ASSIGN_OR_RETURN(meta.last_version,
                        BoundedField(root, "last_version", "the file", 0, kMaxVersion));
  MAAS_ASSIGN_OR_RETURN(const Json* aliases,
                        Field(root, "aliases", "the file", &IsObject, "an object"));
  for (const auto& [alias, version] : aliases->items()) {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) return s;
    if (!IsInt64(version) || version.get<int64_t>() < 1 || version.get<int64_t>() > kMaxVersion) {
      return absl::InvalidArgumentError(
          fmt::format("alias \"{}\" must map to a version number, got {}", alias,
                      version.dump(-1, ' ', false, Json::error_handler_t::replace)));
    }
    meta.aliases[alias] = version.get<int64_t>();
  }
  return meta;
}

}  // namespace maas::internal
