#include "metrics.h"

#include <algorithm>
#include <vector>

#include "util/absl_compat.h"
#include "fmt/core.h"
#include "fmt/format.h"
#include "util/utf8.h"

namespace maasd {
namespace {

using maas::DurationDistribution;
using maas::internal::DurationHistogram;

// A label value in the exposition format: escaped, and valid UTF-8 (Prometheus rejects the
// whole scrape otherwise).
std::string Escape(std::string_view value) {
  std::string out;
  maas::internal::ForEachValidUtf8(value, [&out](std::string_view piece) {
    for (char c : piece) {
      if (c == '\\' || c == '"') out.push_back('\\');
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out.push_back(c);
    }
  });
  return out;
}

std::string Labels(std::string_view model, int64_t version) {
  return fmt::format("model=\"{}\",version=\"{}\"", Escape(model), version);
}

// The labels of a network series: requests for names that are not deployed share one series
// without model and version (see RequestMetrics::Key).
// Requests refused before a version was chosen (an input missing, say) have no version label:
// "0" would name a version that does not exist.
std::string NetworkLabels(const RequestMetrics::Key& key) {
  if (key.model.empty()) return fmt::format("protocol=\"{}\"", key.protocol);
  if (key.version == 0) {
    return fmt::format("model=\"{}\",protocol=\"{}\"", Escape(key.model), key.protocol);
  }
  return fmt::format("{},protocol=\"{}\"", Labels(key.model, key.version), key.protocol);
}

class Writer {
 public:
  // Starts a family; its samples follow.
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void Sample(std::string_view name, std::string_view labels, double value) {
    out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  // The histogram `d` (durations) in seconds, with a bucket every 4x from 1 us.
  void Seconds(std::string_view name, std::string_view labels, const DurationDistribution& d) {
    for (int i = 2 * DurationHistogram::kPerOctave - 1; i < DurationHistogram::kBuckets - 1;
         i += 2 * DurationHistogram::kPerOctave) {
      const int64_t below = static_cast<size_t>(i) < d.buckets.size()
                                ? d.buckets[static_cast<size_t>(i)].cumulative_count
                                : d.count;
      out_ += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels,
                          DurationHistogram::UpperBoundMicros(i) / 1e6, below);
    }
    out_ += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, d.count);
    out_ += fmt::format("{}_sum{{{}}} {}\n", name, labels, absl::ToDoubleSeconds(d.sum));
    out_ += fmt::format("{}_count{{{}}} {}\n", name, labels, d.count);
  }
  std::string& text() { return out_; }

 private:
  std::string out_;
};

struct VersionRow {
  std::string model;
  maas::VersionStatus status;
};

}  // namespace

std::string RenderMetrics(ModelControl& control, const RequestMetrics& requests,
                          int open_connections) {
  std::vector<VersionRow> rows;
  for (const std::string& model : control.server().Models()) {
    absl::StatusOr<maas::ModelStatus> status = control.server().Describe(model);
    if (!status.ok()) continue;
    for (maas::VersionStatus& v : status->versions) rows.push_back({model, std::move(v)});
  }
  const std::map<RequestMetrics::Key, RequestMetrics::Series> series = requests.Snapshot();
  Writer w;

  w.Family("maas_model_ready", "gauge", "1 when the version takes requests, else 0.");
  for (const VersionRow& r : rows) {
    w.Sample("maas_model_ready", Labels(r.model, r.status.version),
             r.status.state == maas::ModelState::kReady ? 1 : 0);
  }
  w.Family("maas_requests_total", "counter",
           "Requests accepted by the version's queue (all protocols and in-process).");
  for (const VersionRow& r : rows) {
    w.Sample("maas_requests_total", Labels(r.model, r.status.version), r.status.stats.requests);
  }
  w.Family("maas_request_failures_total", "counter", "Requests that failed, by status code.");
  for (const VersionRow& r : rows) {
    for (const auto& [code, count] : r.status.stats.failures) {
      w.Sample("maas_request_failures_total",
               fmt::format("{},code=\"{}\"", Labels(r.model, r.status.version),
                           absl::StatusCodeToString(code)),
               count);
    }
  }
  w.Family("maas_items_total", "counter", "Items (batch rows) in accepted requests.");
  for (const VersionRow& r : rows) {
    w.Sample("maas_items_total", Labels(r.model, r.status.version), r.status.stats.items);
  }
  w.Family("maas_batches_total", "counter", "Model executions.");
  for (const VersionRow& r : rows) {
    w.Sample("maas_batches_total", Labels(r.model, r.status.version), r.status.stats.batches);
  }
  w.Family("maas_requests_run_on_caller_total", "counter",
           "Requests run at once on the thread that submitted them (in maasd a network "
           "thread): the model idle and its measured time for that batch size under 1 ms.");
  for (const VersionRow& r : rows) {
    w.Sample("maas_requests_run_on_caller_total", Labels(r.model, r.status.version),
             r.status.stats.run_on_caller);
  }
  w.Family("maas_queued_requests", "gauge", "Requests waiting in the version's queue now.");
  for (const VersionRow& r : rows) {
    w.Sample("maas_queued_requests", Labels(r.model, r.status.version),
             r.status.stats.queued_requests);
  }
  w.Family("maas_memory_bytes", "gauge", "Bytes of the version's weights while loaded.");
  for (const VersionRow& r : rows) {
    w.Sample("maas_memory_bytes", Labels(r.model, r.status.version), r.status.memory_bytes);
  }
  w.Family("maas_queue_duration_seconds", "histogram",
           "Time from a request's arrival to the start of its execution.");
  for (const VersionRow& r : rows) {
    w.Seconds("maas_queue_duration_seconds", Labels(r.model, r.status.version),
              r.status.stats.queue_time);
  }
  w.Family("maas_compute_duration_seconds", "histogram",
           "Time of each execution: batch assembly, the model, the split of its outputs.");
  for (const VersionRow& r : rows) {
    w.Seconds("maas_compute_duration_seconds", Labels(r.model, r.status.version),
              r.status.stats.compute_time);
  }
  w.Family("maas_batch_size", "histogram", "Items per execution.");
  for (const VersionRow& r : rows) {
    const std::vector<int64_t>& h = r.status.stats.batch_size_histogram;
    int64_t cumulative = 0, total = 0, sum = 0;
    for (size_t n = 0; n < h.size(); ++n) {
      total += h[n];
      sum += static_cast<int64_t>(n) * h[n];
    }
    const std::string labels = Labels(r.model, r.status.version);
    size_t next = 0;
    for (int64_t bound = 1; bound < static_cast<int64_t>(h.size()) * 2; bound *= 2) {
      for (; next < h.size() && static_cast<int64_t>(next) <= bound; ++next) cumulative += h[next];
      w.text() +=
          fmt::format("maas_batch_size_bucket{{{},le=\"{}\"}} {}\n", labels, bound, cumulative);
    }
    w.text() += fmt::format("maas_batch_size_bucket{{{},le=\"+Inf\"}} {}\n", labels, total);
    w.text() += fmt::format("maas_batch_size_sum{{{}}} {}\n", labels, sum);
    w.text() += fmt::format("maas_batch_size_count{{{}}} {}\n", labels, total);
  }
  w.Family("maas_server_request_duration_seconds", "histogram",
           "Time from a request read off the network to its response handed to it, by protocol.");
  for (const auto& [key, s] : series) {
    w.Seconds("maas_server_request_duration_seconds", NetworkLabels(key), s.latency.Snapshot());
  }
  w.Family("maas_server_responses_total", "counter", "Inference responses, by outcome.");
  for (const auto& [key, s] : series) {
    const std::string labels = NetworkLabels(key);
    w.Sample("maas_server_responses_total", labels + ",outcome=\"success\"", s.success);
    w.Sample("maas_server_responses_total", labels + ",outcome=\"failure\"", s.failure);
  }
  w.Family("maas_server_open_connections", "gauge", "Open HTTP connections.");
  w.text() += fmt::format("maas_server_open_connections {}\n", open_connections);

  // Triton's names, for existing dashboards (durations in microseconds, cumulative).
  const auto triton = [&](std::string_view name, std::string_view type, std::string_view help,
                          auto value) {
    w.Family(name, type, help);
    for (const VersionRow& r : rows) {
      w.Sample(name, Labels(r.model, r.status.version), value(r.status.stats));
    }
  };
  triton("nv_inference_request_success", "counter",
         "Successful inference requests (Triton's name).",
         [](const maas::ModelStats& s) { return static_cast<double>(s.succeeded); });
  triton("nv_inference_request_failure", "counter", "Failed inference requests (Triton's name).",
         [](const maas::ModelStats& s) {
           int64_t failed = 0;
           for (const auto& [code, count] : s.failures) failed += count;
           return static_cast<double>(failed);
         });
  triton("nv_inference_count", "counter",
         "Inferences performed, batch rows counted (Triton's name).",
         [](const maas::ModelStats& s) { return static_cast<double>(s.items); });
  triton("nv_inference_exec_count", "counter", "Model executions (Triton's name).",
         [](const maas::ModelStats& s) { return static_cast<double>(s.batches); });
  triton("nv_inference_queue_duration_us", "counter",
         "Cumulative queue time of requests, microseconds (Triton's name).",
         [](const maas::ModelStats& s) { return absl::ToDoubleMicroseconds(s.queue_time.sum); });
  triton("nv_inference_compute_input_duration_us", "counter",
         "Cumulative time assembling batches, charged to each request answered, microseconds "
         "(Triton's name).",
         [](const maas::ModelStats& s) {
           return absl::ToDoubleMicroseconds(s.request_compute.input);
         });
  triton("nv_inference_compute_infer_duration_us", "counter",
         "Cumulative model execution time, charged to each request answered, microseconds "
         "(Triton's name).",
         [](const maas::ModelStats& s) {
           return absl::ToDoubleMicroseconds(s.request_compute.infer);
         });
  triton("nv_inference_compute_output_duration_us", "counter",
         "Cumulative time splitting outputs, charged to each request answered, microseconds "
         "(Triton's name).",
         [](const maas::ModelStats& s) {
           return absl::ToDoubleMicroseconds(s.request_compute.output);
         });
  w.Family("nv_inference_request_duration_us", "counter",
           "Cumulative end-to-end request time at the server, microseconds (Triton's name).");
  std::map<std::pair<std::string, int64_t>, double> request_us;
  for (const auto& [key, s] : series) {
    if (key.model.empty() || key.version == 0) continue;
    request_us[{key.model, key.version}] += absl::ToDoubleMicroseconds(s.latency.Snapshot().sum);
  }
  for (const auto& [key, us] : request_us) {
    w.Sample("nv_inference_request_duration_us", Labels(key.first, key.second), us);
  }
  triton("nv_inference_pending_request_count", "gauge",
         "Requests waiting in the queue now (Triton's name).",
         [](const maas::ModelStats& s) { return static_cast<double>(s.queued_requests); });
  return std::move(w.text());
}

}  // namespace maasd
