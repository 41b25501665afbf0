#include "torch_errors.h"

#include <c10/util/Exception.h>

#include <exception>
#include <string>

#include "fmt/core.h"

namespace maas::internal {
namespace {

std::string_view TrimTrailing(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return s;
}

// An error raised inside TorchScript reads "The following operation failed in the TorchScript
// interpreter.", then two tracebacks (serialized code, original code), and only then, on the
// last line, what went wrong. Put that line first and keep the original-code traceback.
std::string Readable(std::string_view message) {
  message = TrimTrailing(message);
  constexpr std::string_view kInterpreter =
      "The following operation failed in the TorchScript interpreter.";
  if (message.find(kInterpreter) == std::string_view::npos) return std::string(message);
  size_t last_line = message.rfind('\n');
  if (last_line == std::string_view::npos) return std::string(message);
  std::string readable(message.substr(last_line + 1));
  size_t original = message.find("Traceback of TorchScript, original code");
  if (original != std::string_view::npos && original < last_line) {
    readable += "\n";
    readable += TrimTrailing(message.substr(original, last_line - original));
  }
  return readable;
}

}  // namespace

absl::Status StatusFromCurrentException(absl::StatusCode code, std::string_view context) {
  std::string what;
  try {
    throw;
  } catch (const c10::Error& e) {
    what = Readable(e.what_without_backtrace());
  } catch (const std::exception& e) {
    what = Readable(e.what());
  } catch (...) {
    what = "an exception that is not a std::exception";
  }
  return absl::Status(code, fmt::format("{}: {}", context, what));
}

}  // namespace maas::internal
