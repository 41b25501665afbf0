// maas: manage a model store from a shell, send a request to a running maasd, or start one.
// docs/cli.md has every command, and the exit codes scripts can rely on.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "util/absl_compat.h"
#include "fmt/core.h"
#include "infer_command.h"
#include "maas/log.h"
#include "maas/model_store.h"
#include "maas/version.h"
#include "store_commands.h"

namespace {

// The exit codes, by what went wrong (docs/cli.md).
enum Exit {
  kOk = 0,
  kFailed = 1,       // anything else
  kUsage = 2,        // a malformed command line or argument
  kNotFound = 3,     // no such store, model, version, alias or file
  kCorrupt = 4,      // a version failed verification (DataLoss)
  kRefused = 5,      // refused as things stand (an alias points at it; read-only store)
  kUnavailable = 6,  // maasd cannot be reached, or is overloaded or stopping
};

int ExitCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kOk;
    case absl::StatusCode::kInvalidArgument:
      return kUsage;
    case absl::StatusCode::kNotFound:
      return kNotFound;
    case absl::StatusCode::kDataLoss:
      return kCorrupt;
    case absl::StatusCode::kFailedPrecondition:
      return kRefused;
    case absl::StatusCode::kUnavailable:
      return kUnavailable;
    default:
      return kFailed;
  }
}

// maasd: beside this program (installed), then where the build made it, then on the PATH.
// POSIX calls, not std::filesystem: with the official LibTorch builds, libtorch.so's copies of
// the std::filesystem functions may be the ones that run (lib/util/posix_files.h).
std::string FindMaasd() {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string folder(self, static_cast<size_t>(n));
    folder.erase(folder.rfind('/') + 1);
    for (const std::string candidate : {
             folder + "maasd",
#ifdef MAAS_BUILT_MAASD
             folder + MAAS_BUILT_MAASD,
#endif
         }) {
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return "maasd";
}

// `maas [--store PATH] serve ARGS...`: replaces this process with maasd on the store, every
// argument after `serve` (--help included) going to maasd. Returns only on failure.
int Serve(std::string store_root, char** args, int count) {
  if (store_root.empty()) {
    std::cerr << "maas: no store: give --store PATH or set MAAS_STORE\n";
    return kUsage;
  }
  std::vector<std::string> command = {FindMaasd(), "--model-store=" + store_root};
  for (int i = 0; i < count; ++i) command.emplace_back(args[i]);
  std::vector<char*> raw;
  for (std::string& arg : command) raw.push_back(arg.data());
  raw.push_back(nullptr);
  execvp(raw[0], raw.data());
  std::cerr << "maas: cannot run " << command[0] << ": " << strerror(errno) << "\n";
  return kNotFound;
}

int Run(int argc, char** argv) {
  // `serve` first, by hand: everything after it belongs to maasd, which CLI11 would parse.
  std::string serve_store = getenv("MAAS_STORE") != nullptr ? getenv("MAAS_STORE") : "";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--store" && i + 1 < argc) {
      serve_store = argv[++i];
    } else if (arg.rfind("--store=", 0) == 0) {
      serve_store = std::string(arg.substr(8));
    } else if (arg == "serve") {
      return Serve(serve_store, argv + i + 1, argc - i - 1);
    } else if (arg != "--json") {
      break;  // another command: CLI11's
    }
  }
  CLI::App app{
      "maas: manage a model store, query or start maasd. Exit codes: 0 ok, 1 failed, "
      "2 usage, 3 not found, 4 corrupt, 5 refused, 6 maasd unavailable."};
  app.set_version_flag("--version", std::string(MAAS_VERSION_STRING));
  app.require_subcommand(1);
  app.fallthrough();  // --store and --json also after the command: `maas list --json`
  std::string store_root;
  bool json = false;
  app.add_option("--store", store_root, "the store's folder")->envname("MAAS_STORE");
  app.add_flag("--json", json, "print JSON (list, describe, verify, gc, publish)");

  maas::cli::PublishRequest publish;
  CLI::App* publish_command =
      app.add_subcommand("publish", "publish a TorchScript file as the model's next version");
  publish_command->add_option("model", publish.model, "model name")->required();
  publish_command->add_option("file", publish.file, "TorchScript archive (.pt)")->required();
  publish_command->add_option("--input", publish.inputs,
                              "an input, in order: NAME:DTYPE:DIMS (image:float32:3,224,224; "
                              "dims per item, -1 for any)");
  publish_command->add_option("--output", publish.outputs, "an output, in order: NAME:DTYPE:DIMS");
  publish_command->add_option("--signature", publish.signature_file,
                              "a JSON signature ({\"batchable\", \"inputs\", \"outputs\"}, as in "
                              "a manifest) instead of --input and --output");
  publish_command->add_flag("--not-batchable", publish.not_batchable,
                            "dims are whole tensors; requests never share a batch");
  publish_command->add_option("--description", publish.description, "free text");
  publish_command->add_option("--label", publish.labels, "KEY=VALUE, repeatable");
  publish_command->add_option("--alias", publish.aliases, "point this alias at the new version");

  app.add_subcommand("list", "the models, their versions and aliases");

  std::string model, version, alias, target;
  CLI::App* describe = app.add_subcommand("describe", "a model's versions and aliases");
  describe->add_option("model", model, "model name")->required();

  CLI::App* alias_command = app.add_subcommand("alias", "set or remove an alias");
  alias_command->require_subcommand(1);
  CLI::App* alias_set = alias_command->add_subcommand("set", "point ALIAS at VERSION");
  alias_set->add_option("model", model)->required();
  alias_set->add_option("alias", alias)->required();
  alias_set->add_option("version", version)->required();
  CLI::App* alias_rm = alias_command->add_subcommand("rm", "remove ALIAS");
  alias_rm->add_option("model", model)->required();
  alias_rm->add_option("alias", alias)->required();

  CLI::App* verify = app.add_subcommand(
      "verify", "re-hash versions against their manifests: MODEL@VERSION, MODEL, or everything");
  verify->add_option("target", target, "MODEL or MODEL@VERSION (default: every version)");

  CLI::App* remove = app.add_subcommand("remove", "delete a version (its number is not reused)");
  remove->add_option("model", model)->required();
  remove->add_option("version", version)->required();

  app.add_subcommand("gc", "delete what crashed publishers and removers left behind");

  maas::cli::InferRequest infer;
  double timeout_seconds = 30;
  CLI::App* infer_command = app.add_subcommand(
      "infer", "send a KServe v2 JSON request (stdin, or --data FILE) to maasd; print the answer");
  infer_command->add_option("model", infer.model)->required();
  infer_command->add_option("--version", infer.version, "version number or alias");
  infer_command->add_option("--url", infer.url, "maasd's REST address")
      ->envname("MAAS_URL")
      ->capture_default_str();
  std::string data = "-";
  infer_command->add_option("--data", data, "the request's JSON file; - for stdin")
      ->capture_default_str();
  infer_command->add_option("--timeout", timeout_seconds, "seconds")->capture_default_str();

  // Listed for --help; Run takes it before CLI11 parses anything.
  app.add_subcommand("serve",
                     "run maasd on the store; the other arguments go to maasd (maas serve --help)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }
  maas::SetLogSink([](maas::LogSeverity severity, std::string_view message) {
    if (severity >= maas::LogSeverity::kWarning) std::cerr << "maas: " << message << "\n";
  });

  const auto fail = [](const absl::Status& status) {
    if (!status.ok()) {
      std::cerr << "maas: " << maas::internal::FromAbsl(status.message()) << "\n";
    }
    return ExitCodeOf(status);
  };

  if (infer_command->parsed()) {
    infer.timeout = absl::Seconds(timeout_seconds);
    if (data == "-") {
      infer.body.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      FILE* file = std::fopen(data.c_str(), "rb");
      if (file == nullptr) return fail(absl::NotFoundError(fmt::format("cannot read {}", data)));
      char buffer[1 << 16];
      for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, file)) > 0;) {
        infer.body.append(buffer, n);
      }
      std::fclose(file);
    }
    return fail(maas::cli::Infer(infer));
  }

  if (store_root.empty()) {
    return fail(absl::InvalidArgumentError("no store: give --store PATH or set MAAS_STORE"));
  }
  // Commands that only read open the store read-only: they also work on a read-only mount, and
  // never create a store where a path was mistyped.
  const bool writes = publish_command->parsed() || alias_command->parsed() || remove->parsed() ||
                      app.got_subcommand("gc");
  maas::ModelStoreOptions options;
  options.create_if_missing = publish_command->parsed();
  options.read_only = !writes;
  absl::StatusOr<std::unique_ptr<maas::ModelStore>> store =
      maas::ModelStore::Open(store_root, options);
  if (!store.ok()) return fail(store.status());
  maas::ModelStore& s = **store;

  if (publish_command->parsed()) return fail(maas::cli::Publish(s, publish, json));
  if (app.got_subcommand("list")) return fail(maas::cli::List(s, json));
  if (describe->parsed()) return fail(maas::cli::Describe(s, model, json));
  if (alias_set->parsed()) return fail(maas::cli::SetAlias(s, model, alias, version));
  if (alias_rm->parsed()) return fail(maas::cli::RemoveAlias(s, model, alias));
  if (verify->parsed()) return fail(maas::cli::Verify(s, target, json));
  if (remove->parsed()) return fail(maas::cli::Remove(s, model, version));
  if (app.got_subcommand("gc")) return fail(maas::cli::CollectGarbage(s, json));
  return kUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "maas: fatal: " << e.what() << "\n";
    return kFailed;
  }
}
