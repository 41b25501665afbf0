#include "manifest.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl_compat.h"
#include "fmt/core.h"
#include "maas/version.h"
#include "names.h"
#include "status_macros.h"

namespace maas::internal {
namespace {

absl::StatusOr<const Json*> Field(const Json& object, std::string_view key, std::string_view where,
                                  bool (Json::*is_type)() const, const char* type_name) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(
        fmt::format("{} must be an object, got {}", where, object.TypeName()));
  }
  const Json* value = object.Find(key);
  if (value == nullptr) {
    return absl::InvalidArgumentError(fmt::format("{} lacks the field \"{}\"", where, key));
  }
  if (!(value->*is_type)()) {
    return absl::InvalidArgumentError(fmt::format("field \"{}\" of {} must be {}, got {}", key,
                                                  where, type_name, value->TypeName()));
  }
  return value;
}

absl::StatusOr<int64_t> IntField(const Json& o, std::string_view key, std::string_view where) {
  MAAS_ASSIGN_OR_RETURN(const Json* v, Field(o, key, where, &Json::is_int, "an integer"));
  return v->as_int();
}

absl::StatusOr<std::string> StringField(const Json& o, std::string_view key,
                                        std::string_view where) {
  MAAS_ASSIGN_OR_RETURN(const Json* v, Field(o, key, where, &Json::is_string, "a string"));
  return v->as_string();
}

absl::Status CheckFormat(const Json& root) {
  MAAS_ASSIGN_OR_RETURN(int64_t format, IntField(root, "format", "the file"));
  if (format < 1 || format > kStoreFormat) {
    return absl::FailedPreconditionError(
        fmt::format("format {} is not supported by maas {} (it reads format 1 to {})", format,
                    Version(), kStoreFormat));
  }
  return absl::OkStatus();
}

Json SpecsToJson(const std::vector<TensorSpec>& specs) {
  Json::Array out;
  for (const TensorSpec& spec : specs) {
    Json::Array shape(spec.shape.begin(), spec.shape.end());
    out.push_back(Json::Object{
        {"name", spec.name}, {"dtype", DtypeName(spec.dtype)}, {"shape", std::move(shape)}});
  }
  return out;
}

absl::StatusOr<std::vector<TensorSpec>> SpecsFromJson(const Json& signature, const char* key,
                                                      std::string_view where) {
  MAAS_ASSIGN_OR_RETURN(const Json* list,
                        Field(signature, key, where, &Json::is_array, "an array"));
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < list->as_array().size(); ++i) {
    const Json& item = list->as_array()[i];
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
                          Field(item, "shape", item_where, &Json::is_array, "an array"));
    for (const Json& dim : shape->as_array()) {
      if (!dim.is_int()) {
        return absl::InvalidArgumentError(
            fmt::format("{}.shape must hold integers, got {}", item_where, dim.TypeName()));
      }
      spec.shape.push_back(dim.as_int());
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace

Json SignatureToJson(const ModelSignature& signature) {
  return Json::Object{{"batchable", signature.batchable},
                      {"inputs", SpecsToJson(signature.inputs)},
                      {"outputs", SpecsToJson(signature.outputs)}};
}

absl::StatusOr<ModelSignature> SignatureFromJson(const Json& json, std::string_view where) {
  ModelSignature signature;
  MAAS_ASSIGN_OR_RETURN(const Json* batchable,
                        Field(json, "batchable", where, &Json::is_bool, "a boolean"));
  signature.batchable = batchable->as_bool();
  MAAS_ASSIGN_OR_RETURN(signature.inputs, SpecsFromJson(json, "inputs", where));
  MAAS_ASSIGN_OR_RETURN(signature.outputs, SpecsFromJson(json, "outputs", where));
  if (absl::Status s = ValidateSignature(signature); !s.ok()) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", where, s.message()));
  }
  return signature;
}

std::string ManifestToText(const ModelInfo& info) {
  Json::Object labels;
  for (const auto& [key, value] : info.labels) labels.emplace_back(key, value);
  Json manifest = Json::Object{
      {"format", kStoreFormat},
      {"name", info.name},
      {"version", info.version},
      {"artifact", "model.pt"},
      {"sha256", info.sha256},
      {"size_bytes", info.size_bytes},
      {"created", absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", info.created, absl::UTCTimeZone())},
      {"description", info.description},
      {"labels", std::move(labels)},
      {"signature", SignatureToJson(info.signature)},
      {"published_by", fmt::format("maas {}", Version())},
  };
  return manifest.Dump();
}

absl::StatusOr<ModelInfo> ManifestFromText(std::string_view text) {
  MAAS_ASSIGN_OR_RETURN(Json root, Json::Parse(text));
  MAAS_RETURN_IF_ERROR(CheckFormat(root));
  ModelInfo info;
  constexpr std::string_view kWhere = "the manifest";
  MAAS_ASSIGN_OR_RETURN(info.name, StringField(root, "name", kWhere));
  MAAS_ASSIGN_OR_RETURN(info.version, IntField(root, "version", kWhere));
  MAAS_ASSIGN_OR_RETURN(info.sha256, StringField(root, "sha256", kWhere));
  if (info.sha256.size() != 64 ||
      info.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError(
        fmt::format("field \"sha256\" must be 64 lower-case hex digits, got \"{}\"", info.sha256));
  }
  MAAS_ASSIGN_OR_RETURN(info.size_bytes, IntField(root, "size_bytes", kWhere));
  if (info.size_bytes < 0) {
    return absl::InvalidArgumentError(
        fmt::format("field \"size_bytes\" must not be negative, got {}", info.size_bytes));
  }
  MAAS_ASSIGN_OR_RETURN(std::string created, StringField(root, "created", kWhere));
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, created, &info.created, &error)) {
    return absl::InvalidArgumentError(
        fmt::format("field \"created\" is not an RFC 3339 time: \"{}\" ({})", created, error));
  }
  if (const Json* description = root.Find("description"); description && description->is_string()) {
    info.description = description->as_string();
  }
  if (const Json* labels = root.Find("labels"); labels && labels->is_object()) {
    for (const auto& [key, value] : labels->as_object()) {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            fmt::format("label \"{}\" must be a string, got {}", key, value.TypeName()));
      }
      info.labels[key] = value.as_string();
    }
  }
  MAAS_ASSIGN_OR_RETURN(const Json* signature,
                        Field(root, "signature", kWhere, &Json::is_object, "an object"));
  MAAS_ASSIGN_OR_RETURN(info.signature, SignatureFromJson(*signature, "the signature"));
  return info;
}

std::string ModelMetaToText(std::string_view name, const ModelMeta& meta) {
  Json::Object aliases;
  for (const auto& [alias, version] : meta.aliases) aliases.emplace_back(alias, version);
  Json json = Json::Object{{"format", kStoreFormat},
                           {"name", name},
                           {"last_version", meta.last_version},
                           {"aliases", std::move(aliases)}};
  return json.Dump();
}

absl::StatusOr<ModelMeta> ModelMetaFromText(std::string_view text) {
  MAAS_ASSIGN_OR_RETURN(Json root, Json::Parse(text));
  MAAS_RETURN_IF_ERROR(CheckFormat(root));
  ModelMeta meta;
  MAAS_ASSIGN_OR_RETURN(meta.last_version, IntField(root, "last_version", "the file"));
  MAAS_ASSIGN_OR_RETURN(const Json* aliases,
                        Field(root, "aliases", "the file", &Json::is_object, "an object"));
  for (const auto& [alias, version] : aliases->as_object()) {
    if (absl::Status s = ValidateAlias(alias); !s.ok()) return s;
    if (!version.is_int() || version.as_int() < 1) {
      return absl::InvalidArgumentError(fmt::format(
          "alias \"{}\" must map to a version number, got {}", alias, version.Dump(false)));
    }
    meta.aliases[alias] = version.as_int();
  }
  return meta;
}

}  // namespace maas::internal
