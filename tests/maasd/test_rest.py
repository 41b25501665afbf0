#!/usr/bin/env python3
"""Conformance tests of maasd's REST API (Open Inference Protocol, KServe v2), driven by a real
HTTP client (Python's requests, Debian's python3-requests) against maasd processes started on
ephemeral ports, with models built in C++ (maas_tests --maas-child maasd-store).

Usage: test_rest.py --maasd PATH --maas-tests PATH [unittest arguments]
"""
import gzip
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

import requests

import harness
from harness import DATATYPES, Maasd, bf16_bytes


def infer_body(name, datatype, shape, data, **extra):
    body = {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}
    body.update(extra)
    return body


def binary_request(header, payload):
    """A body with the binary tensor data extension, and its headers."""
    encoded = json.dumps(header).encode()
    return encoded + payload, {"Inference-Header-Content-Length": str(len(encoded)),
                               "Content-Type": "application/octet-stream"}


def split_binary(response):
    size = int(response.headers["Inference-Header-Content-Length"])
    return json.loads(response.content[:size]), response.content[size:]


class RestApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Maasd("--log-requests")
        cls.url = cls.server.url
        cls.http = requests.Session()

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        assert cls.server.stop() == 0

    def post(self, path, **kwargs):
        return self.http.post(self.url + path, timeout=60, **kwargs)

    def get(self, path):
        return self.http.get(self.url + path, timeout=60)

    def test_health_and_server_metadata(self):
        self.assertEqual(self.get("/v2/health/live").json(), {"live": True})
        ready = self.get("/v2/health/ready")
        self.assertEqual((ready.status_code, ready.json()), (200, {"ready": True}))
        meta = self.get("/v2").json()
        self.assertEqual(meta["name"], "maasd")
        self.assertIn("binary_tensor_data", meta["extensions"])
        self.assertIn("model_repository", meta["extensions"])
        self.assertIn("statistics", meta["extensions"])

    def test_model_metadata_and_readiness(self):
        meta = self.get("/v2/models/pair").json()
        self.assertEqual(meta["name"], "pair")
        self.assertEqual(meta["versions"], ["1"])
        self.assertEqual(meta["platform"], "pytorch_torchscript")
        self.assertEqual(meta["inputs"], [
            {"name": "a", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "b", "datatype": "INT64", "shape": [-1, 2]}])
        self.assertEqual([o["name"] for o in meta["outputs"]], ["sum", "difference"])
        self.assertEqual(self.get("/v2/models/pair/versions/1").json(), meta)
        ready = self.get("/v2/models/pair/ready")
        self.assertEqual((ready.status_code, ready.json()), (200, {"name": "pair", "ready": True}))
        self.assertEqual(self.get("/v2/models/pair/versions/1/ready").status_code, 200)
        self.assertEqual(self.get("/v2/models/pair/versions/9/ready").status_code, 503)
        missing = self.get("/v2/models/nope")
        self.assertEqual(missing.status_code, 404)
        self.assertIn("nope", missing.json()["error"])
        self.assertEqual(self.get("/v2/models/nope/ready").status_code, 404)

    def test_every_datatype_round_trips_as_json_and_as_binary(self):
        for datatype, suffix, fmt, values in DATATYPES:
            with self.subTest(datatype=datatype):
                model = f"/v2/models/echo_{suffix}/infer"
                response = self.post(model, json=infer_body("x", datatype, [1, 3], values))
                self.assertEqual(response.status_code, 200, response.text)
                out = response.json()
                self.assertEqual(out["model_name"], f"echo_{suffix}")
                self.assertEqual(out["model_version"], "1")
                self.assertEqual(out["outputs"][0]["datatype"], datatype)
                self.assertEqual(out["outputs"][0]["shape"], [1, 3])
                got = out["outputs"][0]["data"]
                if datatype in ("FP32", "FP16", "BF16"):
                    for g, v in zip(got, values):
                        self.assertAlmostEqual(g, v, delta=abs(v) * 1e-6)
                else:
                    self.assertEqual(got, values)
                payload = bf16_bytes(values) if fmt is None else struct.pack(f"<3{fmt}", *values)
                body, headers = binary_request(
                    {"inputs": [{"name": "x", "datatype": datatype, "shape": [1, 3],
                                 "parameters": {"binary_data_size": len(payload)}}],
                     "outputs": [{"name": "y", "parameters": {"binary_data": True}}]},
                    payload)
                response = self.post(model, data=body, headers=headers)
                self.assertEqual(response.status_code, 200, response.text)
                header, data = split_binary(response)
                self.assertEqual(header["outputs"][0]["parameters"]["binary_data_size"],
                                 len(payload))
                self.assertEqual(data, payload)  # bit for bit

    def test_named_inputs_in_any_order_and_chosen_outputs(self):
        body = {"id": "pair-1",
                "inputs": [{"name": "b", "datatype": "INT64", "shape": [2, 2],
                            "data": [[1, 2], [3, 4]]},
                           {"name": "a", "datatype": "FP32", "shape": [2, 2],
                            "data": [10, 20, 30, 40]}],
                "outputs": [{"name": "difference"}]}
        out = self.post("/v2/models/pair/infer", json=body).json()
        self.assertEqual(out["id"], "pair-1")
        self.assertEqual([o["name"] for o in out["outputs"]], ["difference"])
        self.assertEqual(out["outputs"][0]["data"], [9, 18, 27, 36])
        body["outputs"] = [{"name": "nope"}]
        bad = self.post("/v2/models/pair/infer", json=body)
        self.assertEqual(bad.status_code, 400)
        self.assertIn("no output 'nope'", bad.json()["error"])

    def test_binary_output_for_all_with_binary_data_output(self):
        body, headers = binary_request(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                         "parameters": {"binary_data_size": 32}}],
             "parameters": {"binary_data_output": True}},
            struct.pack("<8f", *range(8)))
        response = self.post("/v2/models/identity/infer", data=body, headers=headers)
        header, data = split_binary(response)
        self.assertEqual(struct.unpack("<8f", data), tuple(float(i) for i in range(8)))
        self.assertEqual(response.headers["Content-Type"], "application/octet-stream")

    def test_bad_requests_get_a_clear_4xx(self):
        huge = infer_body("x", "FP32", [1 << 20, 1 << 20], [1.0])
        cases = [
            # (body or (bytes, headers), path, status, message fragment)
            ("{bad", "identity", 400, "not valid JSON"),
            ("[]", "identity", 400, "must be a JSON object"),
            ({"inputs": 3}, "identity", 400, "no \"inputs\" array"),
            (infer_body("x", "BYTES", [1, 4], ["a", "b", "c", "d"]), "identity", 400,
             "datatype BYTES"),
            (infer_body("x", "FP32", [1, 4], [1, 2, 3]), "identity", 400, "needs 4 values"),
            (infer_body("x", "FP32", [1, 4], [1, 2, 3, 4, 5]), "identity", 400, "needs 4 values"),
            (infer_body("x", "FP32", [1, 4], [1, 2, "3", 4]), "identity", 400,
             "expected a number"),
            (huge, "identity", 400, "more than the request holds"),
            (infer_body("x", "FP32", [-1, 4], [1, 2, 3, 4]), "identity", 400,
             "non-negative integer"),
            (infer_body("x", "INT8", [1, 3], [1, 300, 2]), "echo_int8", 400, "out of the"),
            (infer_body("x", "FP64", [1, 4], [1, 2, 3, 4]), "identity", 400, "float"),
            (infer_body("x", "FP32", [1, 5], [1, 2, 3, 4, 5]), "identity", 400, "x"),
            (infer_body("z", "FP32", [1, 4], [1, 2, 3, 4]), "identity", 400, "no input is named"),
            (infer_body("x", "FP32", [1, 4], [1, 2, 3, 4]), "nope", 404, "nope"),
            (binary_request({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                         "parameters": {"binary_data_size": 16}}]},
                            b"\0" * 12), "identity", 400, "only 12 bytes follow"),
            (binary_request({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                         "parameters": {"binary_data_size": 16}}]},
                            b"\0" * 20), "identity", 400, "4 bytes of binary data follow"),
            (binary_request({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                         "parameters": {"binary_data_size": 12}}]},
                            b"\0" * 12), "identity", 400, "needs 16 bytes"),
            ((json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                      "parameters": {"binary_data_size": 16}}]}).encode(), {}),
             "identity", 400, "no Inference-Header-Content-Length"),
            ((json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                      "parameters": {"binary_data_size": 16}}]}).encode()
              + b"\0" * 16, {}), "identity", 400, "not valid JSON"),
            ((b"{}", {"Inference-Header-Content-Length": "99"}), "identity", 400,
             "only 2 bytes"),
            ((b"{}", {"Inference-Header-Content-Length": "x"}), "identity", 400,
             "not a number"),
        ]
        for body, model, status, fragment in cases:
            with self.subTest(body=str(body)[:80], model=model):
                path = f"/v2/models/{model}/infer"
                if isinstance(body, tuple):
                    response = self.post(path, data=body[0], headers=body[1])
                elif isinstance(body, str):
                    response = self.post(path, data=body)
                else:
                    response = self.post(path, json=body)
                self.assertEqual(response.status_code, status, response.text)
                self.assertIn(fragment, response.json()["error"])
        # Wrong methods and paths.
        wrong = self.get("/v2/models/identity/infer")
        self.assertEqual(wrong.status_code, 405)
        self.assertEqual(wrong.headers["Allow"], "POST")
        self.assertEqual(self.post("/v2/health/live").status_code, 405)
        self.assertEqual(self.get("/v3/whatever").status_code, 404)
        # After all that, the connection and the server still serve.
        self.assertEqual(self.post("/v2/models/identity/infer",
                                   json=infer_body("x", "FP32", [1, 4], [1, 2, 3, 4])).status_code,
                         200)

    def test_an_unknown_model_is_named_in_tritons_words(self):
        # Triton's clients and examples test that the message starts so.
        body = infer_body("x", "FP32", [1, 4], [1, 2, 3, 4])
        for response in (self.post("/v2/models/nope/infer", json=body),
                         self.get("/v2/models/nope"), self.get("/v2/models/nope/ready"),
                         self.get("/v2/models/nope/stats")):
            self.assertEqual(response.status_code, 404, response.url)
            self.assertTrue(response.json()["error"].startswith(
                "Request for unknown model: 'nope' is not found"), response.text)
            self.assertNotIn("identity", response.text)  # Deployed models are not listed.

    def test_a_wrong_datatype_is_named_as_the_protocol_names_it(self):
        response = self.post("/v2/models/identity/infer",
                             json=infer_body("x", "INT32", [1, 4], [1, 2, 3, 4]))
        self.assertEqual(response.status_code, 400)
        self.assertIn("expected dtype float32 (FP32), got int32 (INT32)", response.json()["error"])

    def test_parameters_maasd_does_not_implement_are_refused_not_ignored(self):
        x = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
        shm = {"shared_memory_region": "r", "shared_memory_byte_size": 16}
        cases = [
            ({"inputs": [x], "parameters": {"sequence_id": 7, "sequence_start": True}},
             "the request: parameter 'sequence_id' is not supported (maasd serves no sequence"),
            ({"inputs": [x], "parameters": {"something": 1}},
             "parameter 'something' is not supported (maasd does not know it); the request "
             "takes binary_data_output, priority, timeout"),
            ({"inputs": [dict(x, parameters=shm)]},
             "input 'x': parameter 'shared_memory_region' is not supported (maasd does not "
             "implement the shared-memory extension"),
            ({"inputs": [x], "outputs": [{"name": "y", "parameters": shm}]},
             "output 'y': parameter 'shared_memory_region' is not supported"),
            ({"inputs": [x], "outputs": [{"name": "y", "parameters": {"classification": 3}}]},
             "output 'y': parameter 'classification' is not supported (maasd does not implement "
             "the classification extension"),
        ]
        for body, fragment in cases:
            with self.subTest(fragment=fragment):
                response = self.post("/v2/models/identity/infer", json=body)
                self.assertEqual(response.status_code, 400, response.text)
                self.assertIn(fragment, response.json()["error"])
        # What tritonclient sends when none of those is used still works.
        response = self.post("/v2/models/identity/infer", json={
            "inputs": [x], "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
            "parameters": {"priority": 1, "timeout": 1000000}})
        self.assertEqual(response.status_code, 200, response.text)

    def test_compressed_request_bodies(self):
        body = json.dumps(infer_body("x", "FP32", [1, 4], [1, 2, 3, 4])).encode()
        raw = zlib.compressobj(wbits=-15)
        for coding, data in [("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                             ("deflate", raw.compress(body) + raw.flush()),
                             ("GZIP", gzip.compress(body)), ("identity", body)]:
            with self.subTest(coding=coding):
                response = self.post("/v2/models/identity/infer", data=data,
                                     headers={"Content-Encoding": coding})
                self.assertEqual(response.status_code, 200, response.text)
                self.assertEqual(response.json()["outputs"][0]["data"], [1, 2, 3, 4])
        refused = [("br", body, 415, "Content-Encoding 'br' is not supported"),
                   ("gzip", body, 400, "not valid gzip data"),
                   ("gzip", gzip.compress(body)[:-9], 400, "not valid gzip data"),
                   # 0.1 MiB that inflates to 100 MiB: stopped at the 64 MiB body limit.
                   ("gzip", gzip.compress(bytes(100 << 20)), 413,
                    "inflates (gzip) to more than the limit of 67108864 bytes")]
        for coding, data, status, fragment in refused:
            with self.subTest(coding=coding, status=status):
                response = requests.post(self.url + "/v2/models/identity/infer", data=data,
                                         headers={"Content-Encoding": coding}, timeout=60)
                self.assertEqual(response.status_code, status, response.text)
                self.assertIn(fragment, response.json()["error"])

    def test_a_model_error_is_500_and_spoils_nothing_else(self):
        bad = self.post("/v2/models/picky/infer", json=infer_body("x", "FP32", [1, 2], [-1, 1]))
        self.assertEqual(bad.status_code, 500)
        self.assertIn("negative input is not allowed", bad.json()["error"])
        good = self.post("/v2/models/picky/infer", json=infer_body("x", "FP32", [1, 2], [1, 2]))
        self.assertEqual(good.json()["outputs"][0]["data"], [2, 4])

    def test_concurrent_clients_each_get_their_own_answer(self):
        failures = []

        def client(k):
            with requests.Session() as s:
                for i in range(40):
                    values = [k, i, k * i, -k]
                    r = s.post(self.url + "/v2/models/identity/infer",
                               json=infer_body("x", "FP32", [1, 4], values), timeout=60)
                    if r.status_code != 200 or r.json()["outputs"][0]["data"] != values:
                        failures.append((k, i, r.status_code, r.text[:200]))

        harness.run_clients(client, 16)
        self.assertEqual(failures, [])

    def test_priority_and_timeout_parameters(self):
        ok = self.post("/v2/models/identity/infer",
                       json=infer_body("x", "FP32", [1, 4], [1, 2, 3, 4],
                                       parameters={"priority": 2, "timeout": 5000000}))
        self.assertEqual(ok.status_code, 200, ok.text)
        # A timeout of 1 us behind slow requests cannot be met: refused, not run.
        results = []
        busy = [threading.Thread(target=lambda: results.append(self.http.post(
            self.url + "/v2/models/slow/infer", json=infer_body("x", "FP32", [1, 2], [1, 2]),
            timeout=60).status_code)) for _ in range(4)]
        for t in busy:
            t.start()
        time.sleep(0.01)
        late = requests.post(self.url + "/v2/models/slow/infer",
                             json=infer_body("x", "FP32", [1, 2], [1, 2],
                                             parameters={"timeout": 1}), timeout=60)
        for t in busy:
            t.join()
        self.assertEqual(late.status_code, 503, late.text)
        self.assertIn("deadline", late.json()["error"].lower())
        self.assertEqual(results, [200] * 4)
        bad = self.post("/v2/models/identity/infer",
                        json=infer_body("x", "FP32", [1, 4], [1, 2, 3, 4],
                                        parameters={"priority": -1}))
        self.assertEqual(bad.status_code, 400)

    def test_statistics_extension(self):
        # Its own server: the counts below are exact.
        server = Maasd()
        try:
            url = server.url
            before_ms = int(time.time() * 1000)
            for rows in (2, 2, 3):
                requests.post(url + "/v2/models/pair/infer", timeout=60, json={"inputs": [
                    {"name": "a", "datatype": "FP32", "shape": [rows, 2], "data": [1] * 2 * rows},
                    {"name": "b", "datatype": "INT64", "shape": [rows, 2],
                     "data": [1] * 2 * rows}]}).raise_for_status()
            stats = requests.get(url + "/v2/models/pair/stats", timeout=60).json()["model_stats"]
            self.assertEqual(len(stats), 1)
            entry = stats[0]
            self.assertEqual((entry["name"], entry["version"]), ("pair", "1"))
            self.assertGreaterEqual(entry["last_inference"], before_ms)
            self.assertLessEqual(entry["last_inference"], int(time.time() * 1000))
            self.assertEqual((entry["inference_count"], entry["execution_count"]), (7, 3))
            infer = entry["inference_stats"]
            self.assertEqual(infer["success"]["count"], 3)
            self.assertEqual(infer["fail"]["count"], 0)
            self.assertEqual(infer["queue"]["count"], 3)
            # (compute_input and compute_output take time only when requests share a batch:
            # these ran alone, one after the other.)
            for part in ("success", "compute_infer"):
                self.assertGreater(infer[part]["ns"], 0, part)
            for part in ("compute_input", "compute_infer", "compute_output"):
                self.assertEqual(infer[part]["count"], 3, part)
            self.assertEqual(infer["cache_hit"], {"count": 0, "ns": 0})
            # The time from arrival to answer holds the model's.
            self.assertGreater(infer["success"]["ns"], infer["compute_infer"]["ns"])
            batches = {b["batch_size"]: b for b in entry["batch_stats"]}
            self.assertEqual(sorted(batches), [2, 3])
            self.assertEqual(batches[2]["compute_infer"]["count"], 2)
            self.assertGreater(batches[3]["compute_infer"]["ns"], 0)
            # /metrics says the same (Triton's names, microseconds).
            metrics = requests.get(url + "/metrics", timeout=60).text
            values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
                      if line.startswith("nv_inference") and 'model="pair"' in line}
            labels = '{model="pair",version="1"}'
            self.assertEqual(values["nv_inference_request_success" + labels], 3)
            self.assertEqual(values["nv_inference_request_failure" + labels], 0)
            # A request the model fails counts, with its time.
            failed = requests.post(url + "/v2/models/picky/infer", timeout=60,
                                   json=infer_body("x", "FP32", [1, 2], [-1, 1]))
            self.assertEqual(failed.status_code, 500)
            picky = requests.get(url + "/v2/models/picky/stats", timeout=60).json()
            fail = picky["model_stats"][0]["inference_stats"]["fail"]
            self.assertEqual(fail["count"], 1)
            self.assertGreater(fail["ns"], 0)
            self.assertEqual(values["nv_inference_count" + labels], 7)
            self.assertEqual(values["nv_inference_exec_count" + labels], 3)
            for part in ("queue", "compute_input", "compute_infer", "compute_output"):
                self.assertAlmostEqual(values[f"nv_inference_{part}_duration_us" + labels],
                                       infer[part]["ns"] / 1000, delta=1, msg=part)
            everything = requests.get(url + "/v2/models/stats", timeout=60).json()["model_stats"]
            self.assertIn("identity", {e["name"] for e in everything})
            self.assertEqual(requests.get(url + "/v2/models/nope/stats", timeout=60).status_code,
                             404)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_metrics_are_valid_prometheus_text(self):
        self.post("/v2/models/identity/infer", json=infer_body("x", "FP32", [1, 4], [0] * 4))
        # Refused before a version was chosen: counted without a version label.
        self.post("/v2/models/identity/infer", json=infer_body("z", "FP32", [1, 4], [0] * 4))
        text = self.get("/metrics").text
        self.assertIn('maas_requests_total{model="identity",version="1"}', text)
        self.assertIn('nv_inference_request_success{model="identity",version="1"}', text)
        self.assertIn("maas_server_request_duration_seconds_bucket", text)
        self.assertIn('maas_server_responses_total{model="identity",protocol="http",'
                      'outcome="failure"}', text)
        self.assertNotIn('version="0"', text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True)
        problems = [line for line in (check.stdout + check.stderr).splitlines() if line.strip()]
        # Triton's own names break the linter's naming rules (as Triton's own /metrics does);
        # everything else must be clean, and the text must parse.
        for line in problems:
            self.assertTrue(line.startswith("nv_inference_"), line)
            self.assertTrue(any(rule in line for rule in (
                '"_total" suffix', "abbreviated units", '"_count" suffix')), line)

    def test_repository_index_lists_the_store(self):
        index = self.post("/v2/repository/index", json={}).json()
        names = {entry["name"] for entry in index}
        self.assertTrue({"identity", "pair", "slow", "tagged"} <= names)
        self.assertTrue(all(e["state"] == "READY" for e in index if e["name"] == "identity"))
        refused = self.post("/v2/repository/models/identity/unload")
        self.assertEqual(refused.status_code, 400)
        self.assertIn("explicit", refused.json()["error"])

    def test_status_page_and_its_data(self):
        page = self.get("/")
        self.assertEqual(page.status_code, 200)
        self.assertIn("text/html", page.headers["Content-Type"])
        self.assertIn("/v2/status", page.text)
        status = self.get("/v2/status").json()
        identity = next(m for m in status["models"] if m["name"] == "identity")
        self.assertEqual(identity["versions"][0]["state"], "READY")

    def test_status_page_renders_in_a_headless_browser(self):
        # Debian's chromium runs the page's JavaScript, which polls /v2/status and builds the
        # tables; the DOM it dumps is what a person would see.
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is missing: scripts/install-deps --test")
        self.post("/v2/models/identity/infer", json=infer_body("x", "FP32", [1, 4], [0] * 4))
        with tempfile.TemporaryDirectory(dir=harness.SCRATCH) as profile:
            dom = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                 f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
                 self.url + "/"],
                capture_output=True, text=True, timeout=120).stdout
        for model in ("identity", "pair", "echo_fp16", "tagged"):
            self.assertIn(f"<h2>{model}</h2>", dom)
        self.assertIn('<td class="READY">READY</td>', dom)
        self.assertIn('class="bars"', dom)  # the batch-size histograms
        self.assertRegex(dom, r"updated \d")  # refreshed, not "cannot reach maasd"

    def test_request_log_lines_are_json(self):
        self.post("/v2/models/identity/infer", json=infer_body("x", "FP32", [1, 4], [0] * 4))
        lines = [json.loads(line) for line in self.server.stderr().splitlines()
                 if line.startswith("{")]
        infer = [l for l in lines if l.get("model") == "identity"]
        self.assertTrue(infer)
        self.assertEqual(infer[-1]["status"], 200)
        self.assertEqual(infer[-1]["version"], 1)
        self.assertIn("duration_us", infer[-1])


class LimitsTest(unittest.TestCase):
    def test_bodies_over_the_limit_get_413_and_slow_clients_are_cut(self):
        server = Maasd("--max-body-bytes=4096", "--http-idle-timeout=1s",
                       "--http-transfer-timeout=1s", "--model=identity")
        try:
            big = requests.post(server.url + "/v2/models/identity/infer",
                                data=b"{" + b" " * 10000 + b"}", timeout=30)
            self.assertEqual(big.status_code, 413)
            self.assertIn("4096", big.json()["error"])
            # A client that trickles its request line is closed after the idle timeout.
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                start = time.time()
                s.sendall(b"GET /v2/hea")
                s.settimeout(10)
                self.assertEqual(s.recv(100), b"")  # closed
                self.assertLess(time.time() - start, 5)
            # A body that never completes is closed after the transfer timeout.
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 100\r\n\r\n{")
                s.settimeout(10)
                self.assertEqual(s.recv(100), b"")
            # Garbage is a 400, then the connection closes.
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                s.settimeout(10)
                self.assertIn(b"400", s.recv(1000))
        finally:
            self.assertEqual(server.stop(), 0)

    def test_thousands_of_idle_connections_cost_little_and_block_nothing(self):
        server = Maasd("--model=identity")
        try:
            before = server.rss_kib()
            sockets = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2000)]
            time.sleep(0.5)
            r = requests.post(server.url + "/v2/models/identity/infer",
                              json=infer_body("x", "FP32", [1, 4], [1, 2, 3, 4]), timeout=30)
            self.assertEqual(r.status_code, 200)
            grown = server.rss_kib() - before
            self.assertLess(grown, 64 * 1024, f"RSS grew {grown} KiB for 2000 idle connections")
            for s in sockets:
                s.close()
        finally:
            self.assertEqual(server.stop(), 0)


class LifecycleTest(unittest.TestCase):
    def test_sigterm_answers_accepted_requests_then_exits_zero(self):
        server = Maasd("--model=slow")
        codes = []
        lock = threading.Lock()

        def client():
            r = requests.post(server.url + "/v2/models/slow/infer",
                              json=infer_body("x", "FP32", [1, 2], [1, 2]), timeout=60)
            with lock:
                codes.append(r.status_code)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # accepted: read and queued or running
        server.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        self.assertEqual(server.proc.wait(timeout=60), 0)
        self.assertEqual(codes, [200] * 8)
        with self.assertRaises(requests.ConnectionError):
            requests.get(server.url + "/v2/health/live", timeout=5)

    def test_explicit_mode_loads_and_unloads(self):
        server = Maasd("--model-control-mode=explicit")
        try:
            url = server.url
            self.assertEqual(requests.get(url + "/v2/models/identity/ready").status_code, 404)
            self.assertEqual(requests.post(url + "/v2/repository/models/identity/load").status_code,
                             200)
            self.assertEqual(requests.get(url + "/v2/models/identity/ready").status_code, 200)
            missing = requests.post(url + "/v2/repository/models/nope/load")
            self.assertEqual(missing.status_code, 404)
            self.assertEqual(
                requests.post(url + "/v2/repository/models/identity/unload").status_code, 200)
            self.assertEqual(requests.get(url + "/v2/models/identity/ready").status_code, 404)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_latest_means_the_newest_version_that_serves_everywhere(self):
        # Version 2 of "tagged" is published damaged: it fails to load and 1 keeps serving.
        # Metadata, readiness and inference must all take "latest" to be 1 then.
        store = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "store")
        shutil.copytree(harness.STORE, store)
        server = Maasd("--model-control-mode=poll", "--poll-interval=100ms", "--model=tagged",
                       store=store)
        try:
            # Published into a copy, damaged there, then moved in whole (maasd never sees it
            # intact).
            staging = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "store")
            shutil.copytree(store, staging)
            harness.child("publish-tagged", staging, "tagged", "2")
            artifact = os.path.join(staging, "tagged", "2", "model.pt")
            os.chmod(artifact, 0o644)
            with open(artifact, "r+b") as f:
                f.seek(64)
                f.write(b"damaged")
            os.rename(os.path.join(staging, "tagged", "2"), os.path.join(store, "tagged", "2"))
            deadline = time.time() + 30
            while True:  # Until the store's version 2 has been tried (and failed).
                index = requests.post(server.url + "/v2/repository/index", timeout=30).json()
                if any(e.get("version") == "2" for e in index) or time.time() > deadline:
                    break
                time.sleep(0.1)
            url = server.url + "/v2/models/tagged/versions/latest"
            metadata = requests.get(url, timeout=30)
            self.assertEqual(metadata.status_code, 200, metadata.text)
            self.assertEqual(metadata.json()["versions"], ["1"])
            self.assertEqual(requests.get(url + "/ready", timeout=30).status_code, 200)
            answer = requests.post(url + "/infer", timeout=30, json=infer_body(
                "x", "FP32", [1, 2], [1, 1]))
            self.assertEqual(answer.status_code, 200, answer.text)
            self.assertEqual(answer.json()["model_version"], "1")
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_new_version_under_network_load_fails_no_request(self):
        def connect(server):
            session = requests.Session()

            def infer():
                r = session.post(server.url + "/v2/models/tagged/infer",
                                 json=infer_body("x", "FP32", [1, 2], [0, 0]), timeout=60)
                if r.status_code != 200:
                    raise RuntimeError(r.text)
                out = r.json()
                return int(out["model_version"]), out["outputs"][0]["data"]
            return infer, session.close

        harness.check_a_new_version_under_load(self, connect)


if __name__ == "__main__":
    sys.exit(harness.main())
