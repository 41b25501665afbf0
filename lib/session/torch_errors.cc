#include "session/torch_errors.h"

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

// The first paragraph of a dispatcher error ("Could not run 'aten::x' with arguments from the
// 'SparseCPU' backend. ... only available for these backends: [...]."), without the list of
// every kernel registration that follows it (a hundred lines). Other messages are kept whole.
std::string_view WithoutKernelList(std::string_view message) {
  if (message.find("Could not run '") == std::string_view::npos) return message;
  return TrimTrailing(message.substr(0, message.find("\n\n")));
}

// An error raised inside TorchScript reads "The following operation failed in the TorchScript
// interpreter.", then one or two tracebacks (serialized code, original code) whose every frame
// ends with a line marked "<--- HERE", and only then what went wrong, to the end (often one line,
// several for a dispatcher error). Put what went wrong first and keep the last traceback (the
// original code's, when there is one).
std::string Readable(std::string_view message) {
  message = TrimTrailing(message);
  constexpr std::string_view kInterpreter =
      "The following operation failed in the TorchScript interpreter.";
  if (message.find(kInterpreter) == std::string_view::npos) {
    return std::string(WithoutKernelList(message));
  }
  const size_t traceback = message.rfind("Traceback of TorchScript");
  size_t error = std::string_view::npos;
  if (const size_t here = message.rfind("<--- HERE"); here != std::string_view::npos) {
    if (const size_t end = message.find('\n', here); end != std::string_view::npos) {
      error = end + 1;
    }
  }
  if (error == std::string_view::npos) {  // Not the layout we know: the last line, then.
    const size_t last_line = message.rfind('\n');
    if (last_line == std::string_view::npos) return std::string(message);
    error = last_line + 1;
  }
  std::string readable(WithoutKernelList(message.substr(error)));
  if (traceback != std::string_view::npos && traceback < error) {
    readable += "\n";
    readable += TrimTrailing(message.substr(traceback, error - traceback));
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
