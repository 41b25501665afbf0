#!/usr/bin/env python3
"""Tests of the `maas` command line: the real binary, run as a script would, on real stores,
with TorchScript files built in C++ (maas_tests --maas-child maasd-store leaves them beside the
store), and `maas serve` / `maas infer` against a real maasd. Every command's output and exit
code is checked, since scripts rely on both (docs/cli.md).

Usage: test_cli.py --maasd PATH --maas-tests PATH --maas PATH [unittest arguments]
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "maasd"))
import harness  # noqa: E402  (maasd's test harness: a store, a maasd, its ports)


def maas_path():
    return harness.OPTIONS["maas"]


OK, FAILED, USAGE, NOT_FOUND, CORRUPT, REFUSED, UNAVAILABLE = 0, 1, 2, 3, 4, 5, 6


def maas(*args, stdin=None, store=None):
    env = dict(os.environ)
    if store:
        env["MAAS_STORE"] = store
    if "ASAN_OPTIONS" in env:
        # Under AddressSanitizer: no leak scan at the exit of each of these short runs (a
        # fifth of their time); the library and maasd are leak-checked by the other tests.
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    return subprocess.run([maas_path(), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def artifact(name):
    """A TorchScript file the maasd-store child saved beside the test store."""
    return os.path.join(harness.SCRATCH, f"{name}.pt")


class CliTest(unittest.TestCase):
    def setUp(self):
        self.store = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "store")

    def run_ok(self, *args, **kwargs):
        result = maas(*args, store=self.store, **kwargs)
        self.assertEqual(result.returncode, OK, result.stderr)
        return result.stdout

    def assert_exit(self, code, fragment, *args, **kwargs):
        result = maas(*args, store=self.store, **kwargs)
        self.assertEqual(result.returncode, code, (result.stdout, result.stderr))
        self.assertIn(fragment, result.stderr)
        return result

    def publish_identity(self, *extra):
        return json.loads(self.run_ok("--json", "publish", "identity", artifact("identity"),
                                      "--input", "x:float32:4", "--output", "y:float32:4",
                                      *extra))

    def test_publish_list_and_describe(self):
        first = self.publish_identity("--alias", "stable", "--label", "team=search",
                                      "--description", "first")
        self.assertEqual(first["version"], 1)
        self.assertEqual(first["labels"], {"team": "search"})
        self.assertEqual(first["signature"]["inputs"],
                         [{"name": "x", "dtype": "float32", "shape": [4]}])
        with open(artifact("identity"), "rb") as f:
            self.assertEqual(first["sha256"], hashlib.sha256(f.read()).hexdigest())
        # A signature from a file, as in a manifest.
        signature = os.path.join(harness.SCRATCH, "pair-signature.json")
        with open(signature, "w") as f:
            json.dump({"batchable": True,
                       "inputs": [{"name": "a", "dtype": "float32", "shape": [2]},
                                  {"name": "b", "dtype": "int64", "shape": [2]}],
                       "outputs": [{"name": "sum", "dtype": "float32", "shape": [2]},
                                   {"name": "difference", "dtype": "float32", "shape": [2]}]},
                      f)
        text = self.run_ok("publish", "pair", artifact("pair"), "--signature", signature)
        self.assertIn("published pair version 1", text)
        self.assertEqual(self.publish_identity()["version"], 2)

        listed = json.loads(self.run_ok("list", "--json"))
        self.assertEqual([(m["name"], m["versions"], m["latest"], m["aliases"]) for m in listed],
                         [("identity", [1, 2], 2, {"stable": 1}), ("pair", [1], 1, {})])
        self.assertRegex(self.run_ok("list"), r"identity\s+2\s+2\s+stable=1")

        described = json.loads(self.run_ok("describe", "identity", "--json"))
        self.assertEqual([v["version"] for v in described["versions"]], [1, 2])
        self.assertEqual(described["versions"][0]["description"], "first")
        self.assertEqual(described["aliases"], {"stable": 1})
        text = self.run_ok("describe", "identity")
        self.assertIn("aliases: stable -> 1", text)
        self.assertIn("inputs x float32 [4]; outputs y float32 [4]; batchable", text)

    def test_a_hostile_store_cannot_reach_the_terminal_or_hang_the_cli(self):
        # A description (any text a publisher chose) with terminal escape sequences: set the
        # window title, clear the screen; and a C1 control and a byte that is not UTF-8.
        hostile = "ok\x1b]0;pwned\x07\x1b[2J\u009b31m"
        self.publish_identity("--description", hostile)
        text = self.run_ok("describe", "identity")
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\x07", text)
        self.assertNotIn("\u009b", text)
        self.assertIn("ok\\x1b]0;pwned\\x07\\x1b[2J\\xc2\\x9b31m", text)
        described = json.loads(self.run_ok("describe", "identity", "--json"))
        self.assertEqual(described["versions"][0]["description"], hostile)  # JSON keeps it.
        # A FIFO where model.json goes: opening it would wait for a writer forever.
        os.mkfifo(os.path.join(self.store, "identity", "model.json"))
        result = maas("list", store=self.store)  # maas() times out after 120 s.
        self.assertNotEqual(result.returncode, OK)
        self.assertIn("not a regular file", result.stderr)

    def test_the_protocols_datatype_names_are_accepted(self):
        published = json.loads(self.run_ok("--json", "publish", "identity", artifact("identity"),
                                           "--input", "x:FP32:4", "--output", "y:FP32:4"))
        self.assertEqual(published["signature"]["inputs"],
                         [{"name": "x", "dtype": "float32", "shape": [4]}])

    def test_bad_publishes_say_what_is_wrong(self):
        self.assert_exit(USAGE, "NAME:DTYPE:DIMS", "publish", "identity", artifact("identity"),
                         "--input", "x", "--output", "y:float32:4")
        self.assert_exit(USAGE, "--input and --output", "publish", "identity",
                         artifact("identity"))
        self.assert_exit(NOT_FOUND, "nope.pt", "publish", "identity",
                         os.path.join(harness.SCRATCH, "nope.pt"),
                         "--input", "x:float32:4", "--output", "y:float32:4")
        not_a_model = os.path.join(harness.SCRATCH, "not-a-model.pt")
        with open(not_a_model, "w") as f:
            f.write("hello")
        self.assert_exit(USAGE, "TorchScript", "publish", "identity", not_a_model,
                         "--input", "x:float32:4", "--output", "y:float32:4")
        # The signature is checked against the model: forward takes one input, not two.
        self.assert_exit(USAGE, "input", "publish", "identity", artifact("identity"),
                         "--input", "x:float32:4", "--input", "z:float32:4",
                         "--output", "y:float32:4")

    def test_aliases_verify_remove_and_their_exit_codes(self):
        self.publish_identity()
        self.publish_identity()
        self.assertIn("identity canary -> 2", self.run_ok("alias", "set", "identity", "canary",
                                                          "2"))
        self.assert_exit(NOT_FOUND, "no such version", "alias", "set", "identity", "canary", "9")
        self.assert_exit(NOT_FOUND, "nope", "alias", "set", "nope", "canary", "1")
        self.assertIn("ok      identity 1", self.run_ok("verify"))
        self.assertEqual(json.loads(self.run_ok("verify", "identity@canary", "--json")),
                         [{"model": "identity", "version": "canary", "ok": True}])
        # Removing the version an alias points at is refused, naming the alias.
        self.assert_exit(REFUSED, "'canary'", "remove", "identity", "2")
        self.run_ok("alias", "rm", "identity", "canary")
        self.assert_exit(NOT_FOUND, "canary", "alias", "rm", "identity", "canary")
        self.assertIn("removed identity version 2", self.run_ok("remove", "identity", "2"))
        self.assert_exit(NOT_FOUND, "no version 2", "remove", "identity", "2")
        self.assert_exit(USAGE, "not a version number", "remove", "identity", "two")
        # A corrupted artifact fails verification with exit 4, naming the file.
        path = os.path.join(self.store, "identity", "1", "model.pt")
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            f.seek(100)
            f.write(b"\xff")
        result = self.assert_exit(CORRUPT, "failed verification", "verify")
        self.assertIn("FAILED  identity 1", result.stdout)
        self.assertIn("sha-256", result.stdout.lower())
        self.assert_exit(NOT_FOUND, "nope", "verify", "nope")

    def test_gc_removes_what_crashed_publishers_left(self):
        self.publish_identity()
        result = subprocess.run([harness.MAAS_TESTS, "--maas-child", "publish-crash", self.store,
                                 "identity", artifact("identity"), "staged"],
                                capture_output=True)
        self.assertEqual(result.returncode, -signal.SIGKILL)
        self.assertEqual(len([n for n in os.listdir(os.path.join(self.store, "identity"))
                              if n.startswith(".staging-")]), 1)
        removed = json.loads(self.run_ok("gc", "--json"))["removed"]
        self.assertEqual(len(removed), 1)
        self.assertIn(".staging-", removed[0])
        self.assertIn("0 leftover(s)", self.run_ok("gc"))

    def test_usage_errors_and_missing_stores(self):
        self.assertEqual(maas().returncode, USAGE)  # no command
        self.assertEqual(maas("list", "extra", store=self.store).returncode, USAGE)
        result = subprocess.run([maas_path(), "list"], capture_output=True, text=True,
                                env={k: v for k, v in os.environ.items() if k != "MAAS_STORE"})
        self.assertEqual(result.returncode, USAGE)
        self.assertIn("MAAS_STORE", result.stderr)
        # Reading a store that is not there does not create it.
        missing = os.path.join(harness.SCRATCH, "no-such-store")
        self.assertEqual(maas("--store", missing, "list").returncode, NOT_FOUND)
        self.assertFalse(os.path.exists(missing))
        self.assertEqual(maas("--help").returncode, OK)
        serve_help = maas("serve", "--help", store=self.store)  # maasd's own flags
        self.assertEqual(serve_help.returncode, OK, serve_help.stderr)
        self.assertIn("--grpc-port", serve_help.stdout)

    def start_serve(self):
        """Starts `maas serve` on the test store; returns the process and its REST URL."""
        port_file = os.path.join(os.path.dirname(self.store), "ports")
        server = subprocess.Popen([maas_path(), "--store", self.store, "serve", "--http-port=0",
                                   "--grpc-port=-1", f"--port-file={port_file}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while not os.path.exists(port_file):
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                server.wait()
                self.fail("maas serve did not start: " + server.stderr.read().decode())
            time.sleep(0.05)
        with open(port_file) as f:
            return server, "http://127.0.0.1:" + dict(line.split() for line in f)["http"]

    @staticmethod
    def stop_serve(server):
        if server.poll() is None:
            server.kill()
        server.wait()
        server.stderr.close()

    def test_serve_and_infer(self):
        self.publish_identity()
        server, url = self.start_serve()
        try:
            body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                           "data": [1, 2, 3, 4]}]})
            out = json.loads(self.run_ok("infer", "identity", "--url", url, stdin=body))
            self.assertEqual(out["outputs"][0]["data"], [1, 2, 3, 4])
            self.assertEqual(out["model_version"], "1")
            request_file = os.path.join(harness.SCRATCH, "request.json")
            with open(request_file, "w") as f:
                f.write(body)
            out = json.loads(self.run_ok("infer", "identity", "--version", "1", "--url", url,
                                         "--data", request_file))
            self.assertEqual(out["model_version"], "1")
            self.assert_exit(NOT_FOUND, "nope", "infer", "nope", "--url", url, stdin=body)
            self.assert_exit(USAGE, "not valid JSON", "infer", "identity", "--url", url,
                             stdin="{oops")
            server.send_signal(signal.SIGTERM)  # maas serve became maasd: the signal reaches it
            self.assertEqual(server.wait(timeout=60), 0)
            self.assert_exit(UNAVAILABLE, "cannot reach maasd", "infer", "identity", "--url", url,
                             stdin=body)
        finally:
            self.stop_serve(server)

    def test_an_aot_inductor_package_is_published_served_and_answered(self):
        packages = harness.child("package-dir").strip()
        if not packages or not os.path.exists(os.path.join(packages, "stamp")):
            self.skipTest("no test packages: this build has no MAAS_TORCH_PYTHON")
        signature = ("--input", "x:float32:16", "--output", "y:float32:4")
        info = json.loads(self.run_ok("--json", "publish", "aoti",
                                      os.path.join(packages, "mlp.pt2"), *signature))
        self.assertEqual(info["model_format"], "aot_inductor")
        self.assertTrue(info["artifact"].endswith("model.pt2"))
        self.assertEqual(info["signature"]["min_batch_size"], 2)
        self.assertEqual(info["signature"]["max_batch_size"], 64)
        script = json.loads(self.run_ok("--json", "publish", "script",
                                        os.path.join(packages, "mlp.pt"), *signature))
        self.assertEqual(script["model_format"], "torchscript")
        self.assertIn("(aot_inductor)", self.run_ok("describe", "aoti"))
        self.assertIn("2 to 64 items a run", self.run_ok("describe", "aoti"))
        self.run_ok("verify", "aoti")
        # A signature the package contradicts is refused, naming the dimension.
        self.assert_exit(USAGE, "the package fixes it at 16", "publish", "aoti",
                         os.path.join(packages, "mlp.pt2"), "--input", "x:float32:8",
                         "--output", "y:float32:4")

        server, url = self.start_serve()
        try:
            with urllib.request.urlopen(url + "/v2/models/aoti") as response:
                metadata = json.loads(response.read())
            self.assertEqual(metadata["platform"], "pytorch_aot_inductor")
            with urllib.request.urlopen(url + "/v2/models/script") as response:
                self.assertEqual(json.loads(response.read())["platform"], "pytorch_torchscript")
            for rows in (1, 3):  # 1: below the package's minimum of 2, padded
                data = [((i * 7) % 11) / 10.0 - 0.5 for i in range(16 * rows)]
                body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32",
                                               "shape": [rows, 16], "data": data}]})
                got = json.loads(self.run_ok("infer", "aoti", "--url", url, stdin=body))
                want = json.loads(self.run_ok("infer", "script", "--url", url, stdin=body))
                self.assertEqual(got["outputs"][0]["shape"], [rows, 4])
                for a, b in zip(got["outputs"][0]["data"], want["outputs"][0]["data"]):
                    self.assertAlmostEqual(a, b, delta=1e-5 + 1e-5 * abs(b))
            too_many = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [65, 16],
                                               "data": [0.0] * (65 * 16)}]})
            self.assert_exit(USAGE, "at most 64", "infer", "aoti", "--url", url, stdin=too_many)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            self.stop_serve(server)


if __name__ == "__main__":
    sys.exit(harness.main(options=("maas",)))
