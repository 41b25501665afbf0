#!/usr/bin/env python3
"""maasd against hostile clients: each case is an attack that once worked (or a limit that
keeps one from working), tried as an attacker would, with raw sockets, HTTP/1.1 and HTTP/2
frames, and checked by what a server must keep: its framing, its memory, its network threads'
responsiveness, a valid /metrics and log, its paths private. Then TLS and restricted APIs with
real clients. CI runs it against the AddressSanitizer build.

Usage: test_hostile.py --maasd PATH --maas-tests PATH --proto PATH [unittest arguments]
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
import requests

import harness
from harness import Maasd

pb = None  # inference_pb2
stubs = None  # inference_pb2_grpc

# Under AddressSanitizer freed memory waits in a quarantine before it is reused or returned;
# the memory checks give it this much room (the default quarantine is 256 MiB).
ASAN = "ASAN_OPTIONS" in os.environ or "asan" in os.environ.get("MAAS_BUILD_DIR", "")
QUARANTINE_MIB = 32


def generate_stubs():
    global pb, stubs
    pb, stubs = harness.grpc_stubs(harness.OPTIONS["proto"])


def start(*flags, store=None):
    """A maasd whose freed memory is not held in ASan's quarantine longer than needed."""
    old = os.environ.get("ASAN_OPTIONS")
    if old is not None:
        # ... and whose allocator gives free pages back, as glibc's with the trimmer does.
        os.environ["ASAN_OPTIONS"] = (f"{old}:quarantine_size_mb={QUARANTINE_MIB}"
                                      ":allocator_release_to_os_interval_ms=100")
    try:
        return Maasd(*flags, store=store)
    finally:
        if old is not None:
            os.environ["ASAN_OPTIONS"] = old


def connect(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, buffered=b"", head=False):
    """Reads one HTTP/1.1 response: (status, headers, body, bytes left over). A HEAD's response
    has no body whatever its Content-Length says."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    header, rest = data.split(b"\r\n\r\n", 1)
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = 0 if head else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def closed_by_peer(s, within=10):
    """Whether the server closes `s` (after whatever it sends) within `within` seconds."""
    s.settimeout(within)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def metrics(server):
    return requests.get(server.url + "/metrics", timeout=30).content


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled_rss_kib(server, seconds=1.0):
    time.sleep(seconds)
    return server.rss_kib()


def binary_infer(model, name, rows, width, outputs=None, binary_output=True):
    """A REST request with the binary tensor data extension: (body, headers)."""
    header = {"inputs": [{"name": name, "datatype": "FP32", "shape": [rows, width],
                          "parameters": {"binary_data_size": rows * width * 4}}]}
    if outputs is not None:
        header["outputs"] = outputs
    if binary_output:
        header["parameters"] = {"binary_data_output": True}
    text = json.dumps(header).encode()
    return text + bytes(rows * width * 4), {
        "Inference-Header-Content-Length": str(len(text)),
        "Content-Type": "application/octet-stream"}


def grpc_request(model, rows, width, outputs=()):
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP32", shape=[rows, width])
    request.raw_input_contents.append(bytes(rows * width * 4))
    for name in outputs:
        request.outputs.add(name=name)
    return request


class HttpFraming(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_head_is_answered_without_a_body_and_the_next_response_stays_in_step(self):
        for path in ["/v2/health/live", "/metrics", "/v2/models/identity", "/",
                     "/v2/models/identity/infer", "/no/such/endpoint"]:
            with connect(self.server) as s:
                s.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                status, headers, body, rest = read_response(s, head=True)
                self.assertEqual(body, b"", path)
                # The next response starts right after the first one's headers.
                second, _, body2, _ = read_response(s, rest)
                self.assertEqual((second, json.loads(body2)), (200, {"live": True}), path)

    def test_a_transfer_encoding_other_than_chunked_is_refused_and_the_connection_closed(self):
        with connect(self.server) as s:
            body = b'{"inputs":[]}'
            smuggled = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
            s.sendall(b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: gzip\r\n\r\n" + body + smuggled)
            status, _, answer, rest = read_response(s)
            self.assertEqual(status, 400)
            self.assertIn("Transfer-Encoding 'gzip'", json.loads(answer)["error"])
            self.assertEqual(rest, b"")
            self.assertTrue(closed_by_peer(s))  # The smuggled request is never answered.

    def test_chunk_extensions_and_trailers_cannot_grow_the_read_buffer(self):
        before = settled_rss_kib(self.server, 0.2)
        for prefix in [b"4;ext=", b"4\r\nabcd\r\n0\r\nX-Trailer: "]:
            with connect(self.server) as s:
                s.sendall(b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + prefix)
                sent, refused, start_time = 0, False, time.time()
                try:
                    while sent < (160 << 20) and time.time() - start_time < 30:
                        s.sendall(b"a" * (1 << 20))  # No line end, ever.
                        sent += 1 << 20
                except (ConnectionResetError, BrokenPipeError):
                    refused = True
                self.assertTrue(refused or closed_by_peer(s), prefix)
                self.assertLess(sent, 64 << 20, "the server kept reading")
        self.assertLess(self.server.rss_kib() - before, 32 << 10)

    def test_headers_above_the_limit_get_431(self):
        with connect(self.server) as s:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 +
                      b"\r\n\r\n")
            status, _, _, _ = read_response(s)
            self.assertEqual(status, 431)

    def test_errors_name_models_and_versions_never_the_store_path(self):
        # A store whose "pair" is damaged: its load fails with a reason about its file.
        store = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "store")
        shutil.copytree(harness.STORE, store)
        artifact = os.path.join(store, "pair", "1", "model.pt")
        os.chmod(artifact, 0o644)
        with open(artifact, "r+b") as f:
            f.seek(100)
            f.write(b"damaged")
        server = start("--model-control-mode=explicit", "--model=identity", store=store)
        if pb is None:
            generate_stubs()
        try:
            url = server.url
            answers = [
                requests.get(url + "/v2/models/identity/versions/7", timeout=30),
                requests.get(url + "/v2/models/nope", timeout=30),
                requests.post(url + "/v2/repository/models/nope/load", timeout=30),
                requests.post(url + "/v2/repository/models/pair/load", timeout=60),
                requests.post(url + "/v2/repository/index", timeout=30),
                requests.get(url + "/v2/status", timeout=30),
            ]
            self.assertEqual(answers[2].status_code, 404)
            self.assertIn("model 'nope' not found in store <model-store>", answers[2].text)
            self.assertNotEqual(answers[3].status_code, 200)
            with grpc.insecure_channel(server.grpc_target) as channel:
                stub = stubs.GRPCInferenceServiceStub(channel)
                with self.assertRaises(grpc.RpcError) as raised:
                    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="nope"),
                                             timeout=30)
            texts = [a.text for a in answers] + [raised.exception.details()]
            for text in texts:
                self.assertNotIn(os.path.realpath(store), text)
                self.assertNotIn(harness.SCRATCH, text)
        finally:
            server.stop()


class WithServer(unittest.TestCase):
    """One maasd started with FLAGS for the class, and a gRPC stub to it."""
    FLAGS = ()

    @classmethod
    def setUpClass(cls):
        if pb is None:
            generate_stubs()
        cls.server = start(*cls.FLAGS)
        cls.channel = grpc.insecure_channel(cls.server.grpc_target)
        cls.stub = stubs.GRPCInferenceServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop()


class Amplification(WithServer):
    """An answer's size is bounded by what the request asks for, once each, and by a cap."""
    FLAGS = ("--max-response-bytes=65536",)

    def test_an_output_named_twice_is_refused_on_both_protocols(self):
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                            "data": [0, 0, 0, 0]}],
                "outputs": [{"name": "y"}] * 1500}
        answer = requests.post(self.server.url + "/v2/models/identity/infer", json=body,
                               timeout=30)
        self.assertEqual(answer.status_code, 400)
        self.assertIn("output 'y' is asked for twice", answer.json()["error"])
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.ModelInfer(grpc_request("identity", 1, 4, ["y"] * 1500), timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("asked for twice", raised.exception.details())

    def test_an_answer_above_the_cap_is_refused_before_it_is_built(self):
        url = self.server.url + "/v2/models/rows/infer"
        # 16 rows of 512 floats: 32 KiB binary fits under 64 KiB; as JSON text it may not.
        body, headers = binary_infer("rows", "x", 16, 512, binary_output=False)
        answer = requests.post(url, data=body, headers=headers, timeout=30)
        self.assertEqual(answer.status_code, 400, answer.text[:200])
        error = answer.json()["error"]
        self.assertIn("model 'rows' version 1 would take up to", error)
        self.assertIn("above the limit of 65536", error)
        body, headers = binary_infer("rows", "x", 16, 512, binary_output=True)
        answer = requests.post(url, data=body, headers=headers, timeout=30)
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(len(answer.content) - int(answer.headers[
            "Inference-Header-Content-Length"]), 16 * 512 * 4)
        # gRPC carries outputs raw: 64 rows are 128 KiB.
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.ModelInfer(grpc_request("rows", 64, 512), timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("above the limit of 65536", raised.exception.details())
        self.assertEqual(len(self.stub.ModelInfer(grpc_request("rows", 16, 512),
                                                  timeout=30).raw_output_contents[0]),
                         16 * 512 * 4)


class Memory(unittest.TestCase):
    """Large bodies cost memory while they are served, not afterwards. We rely on glibc's
    malloc serving blocks above its mmap threshold (at most 32 MiB) with mmap and returning
    them at free, and on each large JSON document getting a parser of its own."""

    @classmethod
    def setUpClass(cls):
        if pb is None:
            generate_stubs()
        cls.server = start("--http-threads=2")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def baseline(self):
        # Warm both network threads and the model: the first requests allocate for good.
        for _ in range(4):
            requests.post(self.server.url + "/v2/models/identity/infer",
                          json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                            "data": [1, 2, 3, 4]}]}, timeout=30)
        return settled_rss_kib(self.server)

    def test_memory_returns_after_large_refused_bodies(self):
        before = self.baseline()
        # Valid JSON, refused after parsing: the parser has built the whole document.
        refused = [b"[" + b"1," * (30 << 20) + b"1]",
                   b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[' +
                   b"1," * (30 << 20) + b"1]}]}"]
        for body in refused:
            answer = requests.post(self.server.url + "/v2/models/identity/infer", data=body,
                                   timeout=120)
            self.assertEqual(answer.status_code, 400, answer.text[:200])
        self.assertRssReturns(before, 64)

    def assertRssReturns(self, before, mib):
        limit = (mib + (QUARANTINE_MIB if ASAN else 0)) << 10
        deadline = time.time() + 10
        while True:
            grown = settled_rss_kib(self.server, 0.5) - before
            if grown < limit:
                print(f"\nRSS {grown >> 10:+} MiB after two 60 MiB bodies", file=sys.stderr)
                return
            if time.time() > deadline:
                self.fail(f"RSS grew {grown >> 10} MiB and stayed")

    def test_a_gzip_bomb_on_grpc_is_refused_before_it_is_inflated(self):
        before = self.baseline()
        channel = grpc.insecure_channel(self.server.grpc_target,
                                        compression=grpc.Compression.Gzip)
        stub = stubs.GRPCInferenceServiceStub(channel)
        request = grpc_request("identity", 16 << 20, 4)  # 256 MiB of zeros, 0.25 MiB gzipped
        with self.assertRaises(grpc.RpcError) as raised:
            stub.ModelInfer(request, timeout=60)
        channel.close()
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED,
                         raised.exception.details())
        self.assertIn("gzip", raised.exception.details().lower())
        self.assertLess(self.server.rss_kib() - before, 64 << 10)


def run_on_caller(server, model):
    for line in metrics(server).decode().splitlines():
        if line.startswith(f'maas_requests_run_on_caller_total{{model="{model}"'):
            return float(line.split()[-1])
    raise AssertionError(f"no maas_requests_run_on_caller_total for {model}")


class NetworkThreads(unittest.TestCase):
    def test_a_batch_larger_than_any_measured_does_not_run_on_a_network_thread(self):
        # One network thread: were a model run on it, health checks would wait for the model.
        server = start("--http-threads=1")
        try:
            url = server.url + "/v2/models/rows/infer"
            with requests.Session() as client:
                for _ in range(30):  # One at a time: the model learns its time for one row.
                    body, headers = binary_infer("rows", "x", 1, 512)
                    self.assertEqual(client.post(url, data=body, headers=headers,
                                                 timeout=30).status_code, 200)
            ran_here = run_on_caller(server, "rows")
            latencies, stop = [], threading.Event()

            def probe():
                with requests.Session() as health:
                    while not stop.is_set():
                        start_time = time.perf_counter()
                        health.get(server.url + "/v2/health/live", timeout=30)
                        latencies.append(time.perf_counter() - start_time)
                        time.sleep(0.002)

            prober = threading.Thread(target=probe)
            prober.start()
            time.sleep(0.1)
            body, headers = binary_infer("rows", "x", 256, 512)
            with requests.Session() as client:
                for _ in range(3):
                    answer = client.post(url, data=body, headers=headers, timeout=120)
                    self.assertEqual(answer.status_code, 200)
            time.sleep(0.05)
            stop.set()
            prober.join()
            # The time measured for one row says nothing of 256: they ran on a worker.
            self.assertEqual(run_on_caller(server, "rows"), ran_here)
            latencies.sort()
            print(f"\nhealth checks while 256-row batches ran: median "
                  f"{latencies[len(latencies) // 2] * 1e3:.1f} ms, max {latencies[-1] * 1e3:.1f} "
                  f"ms; {ran_here:.0f} single rows ran on the network thread", file=sys.stderr)
            self.assertLess(latencies[len(latencies) // 2], 0.05,
                            f"health checks took {latencies[len(latencies) // 2]:.3f} s "
                            "(median) while large batches ran")
        finally:
            server.stop()


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = start("--log-requests")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_unknown_model_names_do_not_grow_metrics(self):
        requests.post(self.server.url + "/v2/models/nope/infer", json={}, timeout=30)
        before = len(metrics(self.server))
        for k in range(300):
            requests.post(self.server.url + f"/v2/models/attacker-{k}/infer", json={},
                          timeout=30)
        text = metrics(self.server).decode()
        self.assertNotIn("attacker-", text)
        self.assertLess(len(text), before + 2048)
        unknown = [line for line in text.splitlines()
                   if line.startswith('maas_server_responses_total{protocol="http",'
                                      'outcome="failure"}')]
        self.assertEqual(len(unknown), 1)
        self.assertGreaterEqual(float(unknown[0].split()[-1]), 301)

    def test_invalid_utf8_in_a_url_keeps_metrics_and_the_log_valid(self):
        request = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                          "data": [1, 2, 3, 4]}]}).encode()
        with connect(self.server) as s:
            s.sendall(b"POST /v2/models/\xff\xfe\xc3(/infer HTTP/1.1\r\nHost: x\r\n" +
                      f"Content-Length: {len(request)}\r\n\r\n".encode() + request)
            status, _, body, _ = read_response(s)
        self.assertEqual(status, 404)  # Not deployed: the answer names the model.
        json.loads(body.decode("utf-8"))  # Strict: raises on invalid UTF-8.
        metrics(self.server).decode("utf-8")
        time.sleep(0.2)
        with open(self.server.log_path, "rb") as f:
            for line in f.read().splitlines():
                if line.startswith(b"{"):
                    json.loads(line.decode("utf-8"))


class Descriptors(unittest.TestCase):
    def test_accept_backs_off_at_the_descriptor_limit(self):
        # A low limit for maasd only, set in the child before it runs.
        limit = 256
        real = harness.MAASD
        wrapper = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "maasd")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nulimit -n {limit}\nexec {real} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        harness.MAASD = wrapper
        try:
            server = start()
        finally:
            harness.MAASD = real
        sockets = []
        try:
            for _ in range(limit + 64):  # The kernel's backlog takes what accept() cannot.
                try:
                    sockets.append(socket.create_connection(("127.0.0.1", server.port),
                                                            timeout=2))
                except OSError:
                    break
            time.sleep(0.5)
            used = cpu_seconds(server.proc.pid)
            time.sleep(2.0)
            busy = cpu_seconds(server.proc.pid) - used
            print(f"\nat the descriptor limit: {busy:.2f} s of CPU in 2 s", file=sys.stderr)
            self.assertLess(busy, 0.5, f"maasd used {busy:.2f} s of CPU in 2 s idle")
            self.assertIn("cannot accept HTTP connections", server.stderr())
            for s in sockets:
                s.close()
            sockets = []
            deadline = time.time() + 10
            while True:  # It accepts again once descriptors are free.
                try:
                    requests.get(server.url + "/v2/health/live", timeout=2)
                    break
                except requests.RequestException:
                    self.assertLess(time.time(), deadline)
        finally:
            for s in sockets:
                s.close()
            server.stop()


class Http2RapidReset(unittest.TestCase):
    """20000 streams opened and cancelled at once on one gRPC connection (CVE-2023-44487)."""

    @staticmethod
    def frame(kind, flags, stream, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
            struct.pack(">I", stream) + payload

    @staticmethod
    def literal(name_index, value):  # HPACK: literal without indexing, indexed name.
        value = value.encode()
        return bytes([name_index]) + bytes([len(value)]) + value

    def test_rapid_reset_does_not_pile_up_memory(self):
        if pb is None:
            generate_stubs()
        server = start()
        try:
            host, port = server.grpc_target.rsplit(":", 1)
            message = grpc_request("identity", 1, 4).SerializeToString()
            data = b"\x00" + struct.pack(">I", len(message)) + message
            headers = (b"\x83\x86" +  # :method POST, :scheme http
                       self.literal(0x04, "/inference.GRPCInferenceService/ModelInfer") +
                       self.literal(0x01, "localhost") +
                       b"\x0f\x10" + bytes([16]) + b"application/grpc" +  # content-type
                       b"\x00\x02te\x08trailers")
            # Warm up, then measure.
            stub = stubs.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
            for _ in range(10):
                stub.ModelInfer(grpc_request("identity", 1, 4), timeout=30)
            before = settled_rss_kib(server)
            s = socket.create_connection((host, int(port)), timeout=30)
            drained = threading.Event()

            def drain():
                try:
                    while s.recv(1 << 16):
                        pass
                except OSError:
                    pass
                drained.set()

            reader = threading.Thread(target=drain)
            reader.start()
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, 0))
            batch = []
            for k in range(20000):
                stream = 2 * k + 1
                batch.append(self.frame(1, 0x4, stream, headers))      # HEADERS, END_HEADERS
                batch.append(self.frame(0, 0x1, stream, data))         # DATA, END_STREAM
                batch.append(self.frame(3, 0, stream, struct.pack(">I", 8)))  # RST_STREAM
                if len(batch) >= 300:
                    try:
                        s.sendall(b"".join(batch))
                    except OSError:
                        break  # The server ended the connection: a defence too.
                    batch = []
            time.sleep(1.0)
            s.shutdown(socket.SHUT_RDWR)
            s.close()
            reader.join()
            # ASan's allocator keeps much of what it frees, whatever its options (+274 MiB
            # measured, +545 before the trimmer): there the bound only catches a pile-up that
            # grows; the plain build (ctest in ./build) checks the real one.
            limit = (448 if ASAN else 96) << 10
            deadline = time.time() + 15
            while True:  # Freed memory is given back within seconds.
                # (A request now and then: ASan's allocator releases pages as it allocates.)
                stub.ServerLive(pb.ServerLiveRequest(), timeout=30)
                grown = settled_rss_kib(server, 0.5) - before
                if grown < limit:
                    print(f"\nRSS {grown >> 10:+} MiB after 20000 streams reset", file=sys.stderr)
                    break
                self.assertLess(time.time(), deadline, f"RSS grew {grown >> 10} MiB and stayed")
            # And the server still serves.
            self.assertEqual(len(stub.ModelInfer(grpc_request("identity", 1, 4),
                                                 timeout=30).raw_output_contents), 1)
        finally:
            server.stop()


class HostileStore(unittest.TestCase):
    def test_a_fifo_in_the_store_neither_hangs_nor_stops_maasd(self):
        store = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "store")
        shutil.copytree(harness.STORE, store)
        os.makedirs(os.path.join(store, "trap"))
        os.mkfifo(os.path.join(store, "trap", "model.json"))
        os.mkfifo(os.path.join(store, "identity", "model.json"))
        server = start(store=store)  # Raises if it does not start in time.
        try:
            self.assertEqual(requests.get(server.url + "/v2/health/live", timeout=30)
                             .status_code, 200)
        finally:
            server.stop()


def make_certificates(folder):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=maas CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    for name, extension in [("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                            ("client", "extendedKeyUsage=clientAuth")]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        with open(os.path.join(folder, f"{name}.ext"), "w") as f:
            f.write(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return {name: os.path.join(folder, name) for name in
            ["ca.pem", "server.pem", "server.key", "server.csr", "client.pem", "client.key"]}


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if pb is None:
            generate_stubs()
        cls.files = make_certificates(tempfile.mkdtemp(dir=harness.SCRATCH))

    def test_https_and_grpc_over_tls_and_plain_text_refused(self):
        f = self.files
        server = start(f"--tls-cert={f['server.pem']}", f"--tls-key={f['server.key']}")
        try:
            url = f"https://127.0.0.1:{server.port}"
            answer = requests.post(url + "/v2/models/identity/infer", verify=f["ca.pem"],
                                   json={"inputs": [{"name": "x", "datatype": "FP32",
                                                     "shape": [1, 4], "data": [1, 2, 3, 4]}]},
                                   timeout=30)
            self.assertEqual(answer.json()["outputs"][0]["data"], [1, 2, 3, 4])
            with self.assertRaises(requests.exceptions.SSLError):
                requests.get(url + "/v2/health/live", timeout=30)  # The system's CAs: unknown.
            with self.assertRaises(requests.exceptions.ConnectionError):
                requests.get(f"http://127.0.0.1:{server.port}/v2/health/live", timeout=30)
            credentials = grpc.ssl_channel_credentials(root_certificates=read(f["ca.pem"]))
            with grpc.secure_channel(server.grpc_target, credentials) as channel:
                stub = stubs.GRPCInferenceServiceStub(channel)
                self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live)
                answer = stub.ModelInfer(grpc_request("identity", 1, 4), timeout=30)
                self.assertEqual(len(answer.raw_output_contents[0]), 16)
            with grpc.insecure_channel(server.grpc_target) as channel:
                with self.assertRaises(grpc.RpcError) as raised:
                    stubs.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(),
                                                                       timeout=5)
                self.assertIn(raised.exception.code(), (grpc.StatusCode.UNAVAILABLE,
                                                        grpc.StatusCode.DEADLINE_EXCEEDED))
        finally:
            server.stop()

    def test_mutual_tls_requires_a_client_certificate(self):
        f = self.files
        server = start(f"--tls-cert={f['server.pem']}", f"--tls-key={f['server.key']}",
                       f"--tls-client-ca={f['ca.pem']}")
        try:
            url = f"https://127.0.0.1:{server.port}/v2/health/live"
            answer = requests.get(url, verify=f["ca.pem"],
                                  cert=(f["client.pem"], f["client.key"]), timeout=30)
            self.assertEqual(answer.status_code, 200)
            with self.assertRaises(requests.exceptions.ConnectionError):
                requests.get(url, verify=f["ca.pem"], timeout=30)
            good = grpc.ssl_channel_credentials(read(f["ca.pem"]), read(f["client.key"]),
                                                read(f["client.pem"]))
            with grpc.secure_channel(server.grpc_target, good) as channel:
                stub = stubs.GRPCInferenceServiceStub(channel)
                self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live)
            anonymous = grpc.ssl_channel_credentials(read(f["ca.pem"]))
            with grpc.secure_channel(server.grpc_target, anonymous) as channel:
                with self.assertRaises(grpc.RpcError):
                    stubs.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(),
                                                                       timeout=5)
        finally:
            server.stop()

    def test_bad_tls_files_stop_maasd_with_a_clear_message(self):
        with self.assertRaises(RuntimeError) as raised:
            start(f"--tls-cert={self.files['server.csr']}",
                  f"--tls-key={self.files['server.key']}")
        self.assertIn("--tls-cert", str(raised.exception))
        with self.assertRaises(RuntimeError) as raised:
            start(f"--tls-cert={self.files['server.pem']}")
        self.assertIn("--tls-cert and --tls-key go together", str(raised.exception))


class RestrictedApis(WithServer):
    FLAGS = ("--model-control-mode=explicit", "--model=identity",
             "--restricted-api=model-repository,statistics:X-Admin-Key=s3cret",
             "--restricted-api=inference:infer-key=abc")

    def test_rest(self):
        url = self.server.url
        infer = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                             "data": [1, 2, 3, 4]}]}
        for method, path, body in [("GET", "/metrics", None), ("GET", "/v2/status", None),
                                   ("GET", "/", None),
                                   ("GET", "/v2/models/identity/stats", None),
                                   ("POST", "/v2/repository/index", None),
                                   ("POST", "/v2/repository/models/identity/unload", None)]:
            denied = requests.request(method, url + path, json=body, timeout=30)
            self.assertEqual(denied.status_code, 403, path)
            self.assertIn("'x-admin-key'", denied.json()["error"])
            self.assertNotIn("s3cret", denied.text)
            wrong = requests.request(method, url + path, headers={"X-Admin-Key": "guess"},
                                     timeout=30)
            self.assertEqual(wrong.status_code, 403, path)
        self.assertEqual(requests.get(url + "/metrics", headers={"x-admin-key": "s3cret"},
                                      timeout=30).status_code, 200)
        self.assertEqual(requests.post(url + "/v2/models/identity/infer", json=infer,
                                       timeout=30).status_code, 403)
        self.assertEqual(requests.post(url + "/v2/models/identity/infer", json=infer,
                                       headers={"Infer-Key": "abc"}, timeout=30).status_code,
                         200)
        # Health and metadata stay open (probes).
        self.assertEqual(requests.get(url + "/v2/health/ready", timeout=30).status_code, 200)
        self.assertEqual(requests.get(url + "/v2/models/identity", timeout=30).status_code, 200)

    def test_grpc(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("'x-admin-key'", raised.exception.details())
        self.assertNotIn("s3cret", raised.exception.details())
        index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=30,
                                          metadata=[("x-admin-key", "s3cret")])
        self.assertTrue(any(m.name == "identity" for m in index.models))
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.ModelInfer(grpc_request("identity", 1, 4), timeout=30,
                                 metadata=[("infer-key", "abd")])
        self.assertEqual(raised.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("the value sent is not it", raised.exception.details())
        answer = self.stub.ModelInfer(grpc_request("identity", 1, 4), timeout=30,
                                      metadata=[("infer-key", "abc")])
        self.assertEqual(len(answer.raw_output_contents[0]), 16)
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live)

    def test_malformed_restrictions_are_refused_at_startup(self):
        for flag, fragment in [("--restricted-api=inference", "no ':'"),
                               ("--restricted-api=everything:k=v", "unknown group 'everything'"),
                               ("--restricted-api=inference:k=", "the value is empty")]:
            with self.assertRaises(RuntimeError) as raised:
                start(flag)
            self.assertIn(fragment, str(raised.exception))


if __name__ == "__main__":
    sys.exit(harness.main(options=("proto",)))
