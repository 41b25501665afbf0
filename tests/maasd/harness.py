"""What maasd's conformance tests share: a maasd process on ephemeral ports, the store of test
models (built in C++ by maas_tests --maas-child maasd-store), and the command line."""
import argparse
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

MAASD = None
OPTIONS = {}  # main's `options`
MAAS_TESTS = None
STORE = None
SCRATCH = None

# (datatype, model suffix, struct format, values)
DATATYPES = [
    ("BOOL", "bool", "?", [True, False, True]),
    ("UINT8", "uint8", "B", [0, 7, 255]),
    ("INT8", "int8", "b", [-128, 0, 127]),
    ("INT16", "int16", "h", [-32768, 1, 32767]),
    ("INT32", "int32", "i", [-2**31, 2, 2**31 - 1]),
    ("INT64", "int64", "q", [-2**63, 3, 2**63 - 1]),
    ("FP16", "fp16", "e", [0.5, -2.0, 1024.0]),
    ("BF16", "bf16", None, [0.5, -2.0, 256.0]),
    ("FP32", "fp32", "f", [0.1, -2.5, 3.25e10]),
    ("FP64", "fp64", "d", [0.1, -2.5, 1e300]),
]


class Maasd:
    """One maasd process on an ephemeral port."""

    def __init__(self, *flags, store=None):
        self.dir = tempfile.mkdtemp(dir=SCRATCH)
        port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "stderr")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [MAASD, f"--model-store={store or STORE}", "--http-port=0",
             f"--grpc-port={os.environ.get('MAAS_TEST_GRPC_PORT', '0')}",
             f"--port-file={port_file}", *flags],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 120
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"maasd exited {self.proc.returncode}: {self.stderr()}")
            if time.time() > deadline:
                self.proc.kill()
                self.log.close()
                raise RuntimeError("maasd did not start in 120 s")
            time.sleep(0.05)
        with open(port_file) as f:
            ports = dict(line.split() for line in f)
        self.port = int(ports["http"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_target = f"127.0.0.1:{ports['grpc']}" if "grpc" in ports else None

    def stderr(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()
        return self.proc.returncode

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def grpc_stubs(proto):
    """Generates the Python gRPC client from maasd's .proto, as a user would (protoc with
    Debian's grpc_python_plugin), and returns its modules (inference_pb2, inference_pb2_grpc)."""
    import importlib
    out = tempfile.mkdtemp(dir=SCRATCH)
    subprocess.run(["protoc", f"-I{os.path.dirname(proto)}", f"--python_out={out}",
                    f"--grpc_python_out={out}",
                    f"--plugin=protoc-gen-grpc_python={shutil.which('grpc_python_plugin')}",
                    proto], check=True)
    sys.path.insert(0, out)
    return (importlib.import_module("inference_pb2"),
            importlib.import_module("inference_pb2_grpc"))


def bf16_bytes(values):
    return b"".join(struct.pack("<f", v)[2:] for v in values)


def child(*args):
    return subprocess.run([MAAS_TESTS, "--maas-child", *args], check=True,
                          capture_output=True, text=True).stdout


def run_clients(client, count):
    """Runs client(k) for k in 0..count-1, each on its own thread, and waits for them all."""
    threads = [threading.Thread(target=client, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def check_a_new_version_under_load(test, connect):
    """Publishes version 2 of "tagged" while 8 clients send requests to a maasd in poll mode,
    and checks that no request fails, that every answer comes from the version it names and
    that no client sees an older version after a newer one. `connect(server)` opens a client's
    connection and returns (infer, close): infer() returns (version, output values) or raises.
    """
    store = os.path.join(tempfile.mkdtemp(dir=SCRATCH), "store")
    shutil.copytree(STORE, store)
    server = Maasd("--model-control-mode=poll", "--poll-interval=100ms", "--model=tagged",
                   store=store)
    failures, versions_seen = [], []
    stop = threading.Event()

    def client():
        infer, close = connect(server)
        last = 0
        try:
            while not stop.is_set():
                try:
                    version, values = infer()
                except Exception as error:  # what the protocol's client raises
                    failures.append(repr(error))
                    continue
                if values != [version, version] or version < last:
                    failures.append((version, values, last))
                last = version
                versions_seen.append(version)
        finally:
            close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        child("publish-tagged", store, "tagged", "2")
        deadline = time.time() + 30
        while time.time() < deadline and (not versions_seen or versions_seen[-1] != 2):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        test.assertEqual(server.stop(), 0)
    test.assertEqual(failures, [])
    test.assertIn(1, versions_seen)
    test.assertEqual(versions_seen[-1], 2)


def main(before_tests=None, options=()):
    """Runs the tests of __main__ against the maasd and maas_tests given on the command line.
    `options`: more --NAME=PATH arguments the tests need, made absolute in OPTIONS[NAME]."""
    global MAASD, MAAS_TESTS, STORE, SCRATCH
    parser = argparse.ArgumentParser()
    parser.add_argument("--maasd", required=True)
    parser.add_argument("--maas-tests", required=True)
    for name in options:
        parser.add_argument(f"--{name}", required=True)
    args, rest = parser.parse_known_args()
    MAASD, MAAS_TESTS = os.path.abspath(args.maasd), os.path.abspath(args.maas_tests)
    for name in options:
        OPTIONS[name] = os.path.abspath(getattr(args, name))
    SCRATCH = tempfile.mkdtemp(prefix="maasd-test-")
    try:
        STORE = os.path.join(SCRATCH, "store")
        child("maasd-store", STORE)
        if before_tests:
            before_tests()
        program = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
        return 0 if program.result.wasSuccessful() else 1
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


