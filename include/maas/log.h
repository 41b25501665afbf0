// Where the library's messages go.
#ifndef MAAS_LOG_H_
#define MAAS_LOG_H_

#include <functional>
#include <string_view>

namespace maas {

enum class LogSeverity { kInfo, kWarning, kError };

// Receives one message of the library (one line, without a trailing newline, naming the model
// it concerns). Called from any thread, possibly from several at once: it must be thread-safe,
// should return quickly (it may run on a thread that serves requests) and must not throw.
using LogSink = std::function<void(LogSeverity severity, std::string_view message)>;

// Sends the library's messages from now on to `sink`; an empty sink restores the default, which
// writes each message as a line "maas: <severity>: <message>" to stderr. Messages today are
// LibTorch's warnings raised while a model runs, passed on once per Session and warning (see
// Session::torch_warnings). This function is thread-safe; a message being delivered while it is
// called goes to the old sink or the new one.
void SetLogSink(LogSink sink);

}  // namespace maas

#endif  // MAAS_LOG_H_
