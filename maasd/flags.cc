#include "flags.h"

#include <charconv>
#include <functional>
#include <map>
#include <optional>

#include "util/absl_compat.h"
#include "fmt/core.h"

namespace maasd {
namespace {

absl::Status Bad(std::string_view flag, std::string_view value, std::string_view expected) {
  return absl::InvalidArgumentError(
      fmt::format("--{}={}: expected {} (maasd --help lists the flags)", flag, value, expected));
}

template <typename T>
absl::Status Integer(std::string_view flag, std::string_view value, T min, T max, T* out) {
  T parsed{};
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error != std::errc() || end != value.data() + value.size() || parsed < min || parsed > max) {
    return Bad(flag, value, fmt::format("an integer from {} to {}", min, max));
  }
  *out = parsed;
  return absl::OkStatus();
}

absl::Status Duration(std::string_view flag, std::string_view value, absl::Duration* out) {
  absl::Duration parsed;
  if (!absl::ParseDuration(absl::string_view(value.data(), value.size()), &parsed) ||
      parsed < absl::ZeroDuration() || parsed == absl::InfiniteDuration()) {
    return Bad(flag, value, "a finite duration such as 5s or 500ms");
  }
  *out = parsed;
  return absl::OkStatus();
}

}  // namespace

std::string Usage() {
  return R"(maasd: serves the models of a maas store over the Open Inference Protocol (KServe v2).

Usage: maasd --model-store=PATH [flags]

  --model-store=PATH            the store to serve (read only; required)
  --model=NAME[@VERSION]        a model to serve, its latest version or the version or alias
                                named (followed when it moves); repeatable. Default: every
                                model in the store (none in explicit mode)
  --model-control-mode=MODE     none: serve the startup models; poll: also serve models that
                                appear in the store and drop those that vanish, and follow new
                                versions and moved aliases every --poll-interval; explicit:
                                the repository API loads and unloads. Default: none
  --poll-interval=DURATION      how often poll mode reads the store. Default: 5s
  --http-address=ADDRESS        the address to listen on; 0.0.0.0 in a container.
                                Default: 127.0.0.1
  --http-port=PORT              REST, /metrics and the status page; 0 picks a free port.
                                Default: 8000
  --grpc-port=PORT              gRPC (GRPCInferenceService); 0 picks a free port, -1 serves
                                no gRPC. Default: 8001
  --grpc-address=ADDRESS        the address gRPC listens on. Default: --http-address
  --http-threads=N              network threads; 0: min(4, cores). Default: 0
  --max-body-bytes=N            larger request bodies get 413 (gRPC messages:
                                RESOURCE_EXHAUSTED). Default: 67108864 (64 MiB)
  --max-response-bytes=N        an answer that would be larger is refused (400 /
                                INVALID_ARGUMENT) before it is built. Default: --max-body-bytes
  --max-connections=N           HTTP connections beyond this many are closed at once.
                                Default: 10000
  --grpc-max-concurrent-streams=N
                                RPCs one gRPC connection may have open at once. Default: 100
  --grpc-memory-quota-bytes=N   memory gRPC's transport may hold in all (its resource quota).
                                Default: 1073741824 (1 GiB)
  --tls-cert=PATH               serve HTTPS and gRPC over TLS with this PEM certificate
                                (chain); needs --tls-key. Default: plain text
  --tls-key=PATH                the PEM private key of --tls-cert
  --tls-client-ca=PATH          mutual TLS: clients must present a certificate signed by one
                                of these PEM CAs. Default: none asked for
  --restricted-api=GROUPS:KEY=VALUE
                                only requests whose header (gRPC: metadata) KEY is VALUE may
                                call the endpoints of GROUPS, a comma-separated list of
                                health, metadata, inference, model-repository, statistics
                                (statistics covers /metrics and the status page); others get
                                403 / PERMISSION_DENIED. Repeatable, one key per group.
                                Default: every group open
  --http-idle-timeout=DURATION  a connection whose next request's headers do not arrive in
                                this time is closed (idle keep-alive, trickling clients).
                                Default: 60s
  --http-transfer-timeout=DURATION
                                ... or whose request body or response takes longer.
                                Default: 30s
  --default-priority-level=N    the level of requests without a priority (1 is the highest).
                                Default: 1
  --cpu-cores=N                 cores the models may keep busy; 0: all. Default: 0
  --memory-budget-bytes=N       cap on loaded weights; idle models unload. 0: none. Default: 0
  --shutdown-grace=DURATION     on SIGTERM, how long accepted requests may take. Default: 30s
  --log-level=LEVEL             error, warning or info. Default: warning
  --log-requests                one JSON line per request on stderr
  --port-file=PATH              once listening, write the ports there, a line each:
                                "http PORT" and "grpc PORT" (for scripts)
  --help                        this text
)";
}

absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  Flags flags;
  flags.control.poll_interval = absl::Seconds(5);
  std::optional<std::string> grpc_address;
  std::optional<size_t> max_response_bytes;
  std::vector<Restriction> restrictions;
  const auto path = [](std::string* out) {
    return [out](std::string_view flag, std::string_view value) {
      if (value.empty()) return Bad(flag, value, "a file path");
      *out = std::string(value);
      return absl::OkStatus();
    };
  };
  using Setter = std::function<absl::Status(std::string_view flag, std::string_view value)>;
  const std::map<std::string, Setter, std::less<>> setters = {
      {"model-store",
       [&](auto, auto v) {
         flags.control.store_root = std::string(v);
         return absl::OkStatus();
       }},
      {"model",
       [&](auto f, auto v) {
         if (v.empty()) return Bad(f, v, "NAME or NAME@VERSION");
         flags.control.models.push_back(std::string(v));
         return absl::OkStatus();
       }},
      {"model-control-mode",
       [&](auto f, auto v) {
         if (v == "none") {
           flags.control.mode = ModelControlMode::kNone;
         } else if (v == "poll") {
           flags.control.mode = ModelControlMode::kPoll;
         } else if (v == "explicit") {
           flags.control.mode = ModelControlMode::kExplicit;
         } else {
           return Bad(f, v, "none, poll or explicit");
         }
         return absl::OkStatus();
       }},
      {"poll-interval",
       [&](auto f, auto v) { return Duration(f, v, &flags.control.poll_interval); }},
      {"http-address",
       [&](auto, auto v) {
         flags.http.address = std::string(v);
         return absl::OkStatus();
       }},
      {"http-port", [&](auto f, auto v) { return Integer(f, v, 0, 65535, &flags.http.port); }},
      {"grpc-port", [&](auto f, auto v) { return Integer(f, v, -1, 65535, &flags.grpc.port); }},
      {"grpc-address",
       [&](auto, auto v) {
         grpc_address = std::string(v);
         return absl::OkStatus();
       }},
      {"http-threads", [&](auto f, auto v) { return Integer(f, v, 0, 256, &flags.http.threads); }},
      {"max-body-bytes",
       [&](auto f, auto v) {
         return Integer<size_t>(f, v, 1024, size_t{1} << 40, &flags.http.max_body_bytes);
       }},
      {"max-response-bytes",
       [&](auto f, auto v) {
         size_t bytes = 0;
         absl::Status s = Integer<size_t>(f, v, 1024, size_t{1} << 40, &bytes);
         max_response_bytes = bytes;
         return s;
       }},
      {"max-connections",
       [&](auto f, auto v) { return Integer(f, v, 1, 1 << 24, &flags.http.max_connections); }},
      {"grpc-max-concurrent-streams",
       [&](auto f, auto v) {
         return Integer(f, v, 1, 1 << 20, &flags.grpc.max_concurrent_streams);
       }},
      {"grpc-memory-quota-bytes",
       [&](auto f, auto v) {
         return Integer<size_t>(f, v, size_t{1} << 20, size_t{1} << 44,
                                &flags.grpc.memory_quota_bytes);
       }},
      {"tls-cert", path(&flags.http.tls_cert_file)},
      {"tls-key", path(&flags.http.tls_key_file)},
      {"tls-client-ca", path(&flags.http.tls_client_ca_file)},
      {"restricted-api",
       [&](auto, auto v) {
         absl::StatusOr<Restriction> restriction = ParseRestriction(v);
         if (!restriction.ok()) return restriction.status();
         restrictions.push_back(*std::move(restriction));
         return absl::OkStatus();
       }},
      {"default-priority-level",
       [&](auto f, auto v) {
         return Integer<int64_t>(f, v, 1, 1 << 30, &flags.api.default_priority_level);
       }},
      {"cpu-cores",
       [&](auto f, auto v) { return Integer(f, v, 0, 1 << 16, &flags.control.server.cpu_cores); }},
      {"memory-budget-bytes",
       [&](auto f, auto v) {
         return Integer<int64_t>(f, v, 0, int64_t{1} << 60,
                                 &flags.control.server.memory_budget_bytes);
       }},
      {"http-idle-timeout",
       [&](auto f, auto v) { return Duration(f, v, &flags.http.idle_timeout); }},
      {"http-transfer-timeout",
       [&](auto f, auto v) { return Duration(f, v, &flags.http.transfer_timeout); }},
      {"shutdown-grace", [&](auto f, auto v) { return Duration(f, v, &flags.shutdown_grace); }},
      {"log-level",
       [&](auto f, auto v) {
         if (v != "error" && v != "warning" && v != "info") {
           return Bad(f, v, "error, warning or info");
         }
         flags.log_level = std::string(v);
         return absl::OkStatus();
       }},
      {"port-file",
       [&](auto, auto v) {
         flags.port_file = std::string(v);
         return absl::OkStatus();
       }},
  };
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      flags.help = true;
      return flags;
    }
    if (arg == "--log-requests") {
      flags.api.log_requests = true;
      continue;
    }
    if (arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(
          fmt::format("unexpected argument '{}' (maasd --help lists the flags)", arg));
    }
    arg.remove_prefix(2);
    std::string_view name = arg, value;
    if (const size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(fmt::format("--{} needs a value", name));
    }
    const auto setter = setters.find(name);
    if (setter == setters.end()) {
      return absl::InvalidArgumentError(
          fmt::format("unknown flag --{} (maasd --help lists the flags)", name));
    }
    if (absl::Status s = setter->second(name, value); !s.ok()) return s;
  }
  flags.grpc.address = grpc_address.value_or(flags.http.address);
  flags.grpc.max_message_bytes = flags.http.max_body_bytes;
  flags.api.max_response_bytes = max_response_bytes.value_or(flags.http.max_body_bytes);
  if (flags.http.tls_cert_file.empty() != flags.http.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together (maasd --help lists the flags)");
  }
  if (!flags.http.tls_client_ca_file.empty() && flags.http.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key (maasd --help lists the flags)");
  }
  flags.grpc.tls_cert_file = flags.http.tls_cert_file;
  flags.grpc.tls_key_file = flags.http.tls_key_file;
  flags.grpc.tls_client_ca_file = flags.http.tls_client_ca_file;
  absl::StatusOr<AccessPolicy> access = AccessPolicy::Create(std::move(restrictions));
  if (!access.ok()) return access.status();
  flags.api.access = *std::move(access);
  flags.http.forwarded_headers = flags.api.access.Keys();
  if (flags.control.store_root.empty()) {
    return absl::InvalidArgumentError("--model-store is required (maasd --help lists the flags)");
  }
  return flags;
}

}  // namespace maasd
