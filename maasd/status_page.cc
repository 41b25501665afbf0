#include "status_page.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "util/absl_compat.h"
#include "fmt/core.h"
#include "infer_codec.h"
#include "maas/version.h"

namespace maasd {
namespace {

double Millis(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

constexpr char kPage[] = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>maasd</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
  table { border-collapse: collapse; margin: .5em 0; }
  th, td { border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  .READY { color: #070; } .FAILED, .error { color: #b00; } .LOADING, .UNLOADING { color: #a60; }
  .bars { display: flex; align-items: flex-end; height: 40px; gap: 1px; }
  .bars div { background: #48c; width: 6px; }
  #updated { color: #777; }
</style>
</head>
<body>
<h1>maasd <span id="version"></span></h1>
<p id="updated">loading…</p>
<div id="models"></div>
<script>
"use strict";
let previous = null;
function text(tag, content, cls) {
  const e = document.createElement(tag);
  e.textContent = content;
  if (cls) e.className = cls;
  return e;
}
function bars(histogram) {
  const div = document.createElement("div");
  div.className = "bars";
  const max = Math.max(1, ...histogram);
  histogram.forEach((count, size) => {
    if (size === 0) return;
    const bar = document.createElement("div");
    bar.style.height = (40 * count / max) + "px";
    bar.title = "batch size " + size + ": " + count;
    div.appendChild(bar);
  });
  return div;
}
function render(status, now) {
  document.getElementById("version").textContent = status.version;
  const root = document.getElementById("models");
  root.replaceChildren();
  if (status.models.length === 0) root.appendChild(text("p", "No model is deployed."));
  for (const model of status.models) {
    root.appendChild(text("h2", model.name + (model.ready ? "" : " (not ready)")));
    if (model.last_error) root.appendChild(text("p", model.last_error, "error"));
    const table = document.createElement("table");
    const head = table.insertRow();
    for (const h of ["version", "state", "aliases", "traffic", "requests/s", "succeeded",
                     "failed", "queued", "p50 ms", "p99 ms", "memory MiB", "batch sizes"]) {
      head.appendChild(text("th", h));
    }
    for (const v of model.versions) {
      const row = table.insertRow();
      const key = model.name + "/" + v.version;
      let rate = "";
      if (previous && previous.counts[key] !== undefined) {
        const seconds = (now - previous.time) / 1000;
        rate = ((v.succeeded + v.failed - previous.counts[key]) / seconds).toFixed(1);
      }
      const cells = [v.version, v.state + (v.reason ? ": " + v.reason : ""),
                     v.aliases.join(", "), (100 * v.traffic_share).toFixed(0) + "%", rate,
                     v.succeeded, v.failed, v.queued, v.p50_ms.toFixed(2), v.p99_ms.toFixed(2),
                     (v.memory_bytes / 1048576).toFixed(1)];
      cells.forEach((c, i) => row.appendChild(text("td", String(c), i === 1 ? v.state : "")));
      const cell = row.insertCell();
      cell.appendChild(bars(v.batch_size_histogram));
    }
    root.appendChild(table);
  }
  const counts = {};
  for (const model of status.models) {
    for (const v of model.versions) counts[model.name + "/" + v.version] = v.succeeded + v.failed;
  }
  previous = {time: now, counts: counts};
  document.getElementById("updated").textContent =
      "updated " + new Date(now).toLocaleTimeString();
}
async function refresh() {
  try {
    const response = await fetch("/v2/status");
    render(await response.json(), Date.now());
  } catch (error) {
    document.getElementById("updated").textContent = "cannot reach maasd: " + error;
  }
  setTimeout(refresh, 1000);
}
refresh();
</script>
</body>
</html>
)html";

}  // namespace

std::string_view StatusPageHtml() { return kPage; }

std::string StatusJson(ModelControl& control, const RequestMetrics& requests) {
  const auto series = requests.Snapshot();
  std::vector<std::string> models;
  for (const std::string& name : control.server().Models()) {
    absl::StatusOr<maas::ModelStatus> status = control.server().Describe(name);
    if (!status.ok()) continue;
    std::vector<std::string> versions;
    for (const maas::VersionStatus& v : status->versions) {
      const maas::ModelStats& s = v.stats;
      int64_t failed = 0;
      for (const auto& [code, count] : s.failures) failed += count;
      // End-to-end latency as the server saw it (REST); queue + compute for in-process use.
      maas::DurationDistribution latency;
      if (auto found = series.find({name, v.version, "http"}); found != series.end()) {
        latency = found->second.latency.Snapshot();
      }
      std::vector<std::string> aliases;
      for (const std::string& alias : v.aliases) aliases.push_back(JsonString(alias));
      versions.push_back(fmt::format(
          "{{\"version\":{},\"state\":\"{}\",\"reason\":{},\"aliases\":[{}],"
          "\"traffic_share\":{},\"memory_bytes\":{},\"requests\":{},\"succeeded\":{},"
          "\"failed\":{},\"queued\":{},\"batches\":{},\"p50_ms\":{},\"p99_ms\":{},"
          "\"compute_p50_ms\":{},\"batch_size_histogram\":[{}]}}",
          v.version, absl::AsciiStrToUpper(maas::internal::ToAbsl(maas::ModelStateName(v.state))),
          JsonString(control.ForClients(v.reason)), absl::StrJoin(aliases, ","), v.traffic_share, v.memory_bytes,
          s.requests, s.succeeded, failed, s.queued_requests, s.batches, Millis(latency.p50),
          Millis(latency.p99), Millis(s.compute_time.p50),
          absl::StrJoin(s.batch_size_histogram, ",")));
    }
    models.push_back(fmt::format("{{\"name\":{},\"ready\":{},\"last_error\":{},\"versions\":[{}]}}",
                                 JsonString(name), status->ready, JsonString(control.ForClients(status->last_error)),
                                 absl::StrJoin(versions, ",")));
  }
  return fmt::format("{{\"version\":\"{}\",\"models\":[{}]}}", MAAS_VERSION_STRING,
                     absl::StrJoin(models, ","));
}

}  // namespace maasd
