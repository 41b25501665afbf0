#!/usr/bin/env python3
"""Checks the deployment recipes offline (examples/kubernetes, examples/kserve,
examples/container): they lint (yamllint), build (kubectl kustomize), and agree with maasd:
every flag they pass exists, maasd starts with exactly their arguments and answers the probes
they declare on the ports they declare, and the ports of services, probes and scrape
annotations are the ports maasd listens on.

Usage: test_deploy.py --maasd PATH --maas-tests PATH [unittest arguments]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import requests
import yaml

import harness

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KUBERNETES = os.path.join(ROOT, "examples", "kubernetes")
KSERVE = os.path.join(ROOT, "examples", "kserve")
CONTAINERFILE = os.path.join(ROOT, "examples", "container", "Containerfile")
SMALL_STORE = None
YAMLLINT = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"


def documents(folder):
    docs = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            with open(os.path.join(folder, name)) as f:
                docs.extend(d for d in yaml.safe_load_all(f) if d)
    return docs


def containers(docs):
    """(kind, pod-level annotations, container) for every container that runs maasd."""
    found = []
    for doc in docs:
        if doc["kind"] == "Deployment":
            template = doc["spec"]["template"]
            for c in template["spec"]["containers"]:
                found.append((doc["kind"], template["metadata"].get("annotations", {}), c))
        elif doc["kind"] == "ServingRuntime":
            for c in doc["spec"]["containers"]:
                found.append((doc["kind"], doc["spec"].get("annotations", {}), c))
    return found


def flag_values(args):
    values = {}
    for arg in args:
        name, _, value = arg.partition("=")
        values[name] = value
    return values


def small_store():
    """A store of one small model: what the manifests serve does not matter here, and maasd
    starts faster than on the conformance tests' store."""
    global SMALL_STORE
    if SMALL_STORE is None:
        SMALL_STORE = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "store")
        harness.child("publish-tagged", SMALL_STORE, "tagged", "1")
    return SMALL_STORE


CERTIFICATE = None


def test_certificate():
    """(certificate, key) files, self-signed for 127.0.0.1, made with openssl once."""
    global CERTIFICATE
    if CERTIFICATE is None:
        folder = tempfile.mkdtemp(dir=harness.SCRATCH)
        cert, key = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=maasd", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        CERTIFICATE = (cert, key)
    return CERTIFICATE


def maasd_flags():
    usage = subprocess.run([harness.MAASD, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"^\s+(--[a-z-]+)", usage, re.M))


class DeployTest(unittest.TestCase):
    def test_manifests_lint_and_build(self):
        self.assertIsNotNone(shutil.which("yamllint"), "yamllint: scripts/install-deps --test")
        self.assertIsNotNone(shutil.which("kubectl"), "kubectl: scripts/install-deps --test")
        lint = subprocess.run(["yamllint", "-s", "-d", YAMLLINT, KUBERNETES, KSERVE],
                              capture_output=True, text=True)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
        for folder in (KUBERNETES, KSERVE):
            built = subprocess.run(["kubectl", "kustomize", folder], capture_output=True,
                                   text=True)
            self.assertEqual(built.returncode, 0, built.stderr)
            kinds = {d["kind"] for d in yaml.safe_load_all(built.stdout)}
            self.assertTrue(kinds & {"Deployment", "ServingRuntime"}, kinds)

    def test_every_flag_exists_and_maasd_starts_with_the_manifests_arguments(self):
        known = maasd_flags()
        self.assertIn("--grpc-port", known)
        checked = 0
        for folder in (KUBERNETES, KSERVE):
            docs = documents(folder)
            for kind, annotations, container in containers(docs):
                with self.subTest(kind=kind, container=container["name"]):
                    args = container["args"]
                    for arg in args:
                        self.assertIn(arg.partition("=")[0], known, f"{kind}: {arg}")
                    self.check_ports_and_probes(kind, annotations, container, docs)
                    self.check_it_runs(args, container)
                    checked += 1
        self.assertEqual(checked, 2)  # the Deployment and the ServingRuntime

    def check_ports_and_probes(self, kind, annotations, container, docs):
        flags = flag_values(container["args"])
        http, grpc = int(flags["--http-port"]), int(flags["--grpc-port"])
        self.assertEqual(flags["--http-address"], "0.0.0.0")  # reachable from outside the pod
        self.assertEqual(flags["--model-store"], "/mnt/models")  # where KServe puts the store
        ports = {p.get("name", str(p["containerPort"])): p["containerPort"]
                 for p in container["ports"]}
        self.assertIn(http, ports.values())
        if kind == "Deployment":
            self.assertEqual(ports.get("grpc"), grpc)
        tls = "--tls-cert" in flags
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            get = container[probe]["httpGet"]
            port = get["port"]
            self.assertEqual(ports.get(port, port), http, f"{probe} port {port}")
            self.assertIn(get["path"], ("/v2/health/live", "/v2/health/ready"))
            self.assertEqual(get.get("scheme", "HTTP"), "HTTPS" if tls else "HTTP", probe)
        if tls:  # The files come from a mounted Secret.
            scheme = annotations.get("prometheus.io/scheme")
            self.assertEqual(scheme, "https")
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            pod = next(d for d in docs if d["kind"] == kind)["spec"]["template"]["spec"]
            secrets = {v["name"] for v in pod["volumes"] if "secret" in v}
            for flag in ("--tls-cert", "--tls-key"):
                folder = os.path.dirname(flags[flag])
                self.assertIn(folder, [mounts[name] for name in secrets], flag)
        # A $(VAR) in the arguments is set from a Secret (Kubernetes expands it).
        env = {e["name"]: e for e in container.get("env", [])}
        for arg in container["args"]:
            for var in re.findall(r"\$\((\w+)\)", arg):
                self.assertIn("secretKeyRef", env[var]["valueFrom"], var)
        scrape_port = annotations.get("prometheus.io/port") or \
            annotations.get("prometheus.kserve.io/port")
        self.assertEqual(int(scrape_port), http)
        scrape_path = annotations.get("prometheus.io/path") or \
            annotations.get("prometheus.kserve.io/path")
        self.assertEqual(scrape_path, "/metrics")
        for doc in docs:
            if doc["kind"] == "Service":
                for port in doc["spec"]["ports"]:
                    self.assertIn(port["targetPort"], ports, f"Service port {port}")
                    self.assertEqual(ports[port["targetPort"]], port["port"])

    def check_it_runs(self, args, container):
        """maasd with the container's arguments, but this test's store and free ports."""
        cert, key = test_certificate()
        run_args = [a for a in args if not a.startswith(("--model-store=", "--http-port=",
                                                        "--grpc-port=", "--tls-"))]
        tls = any(a.startswith("--tls-cert=") for a in args)
        if tls:
            run_args += [f"--tls-cert={cert}", f"--tls-key={key}"]
        server = harness.Maasd(*run_args, store=small_store())
        url = server.url.replace("http://", "https://") if tls else server.url
        try:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                path = container[probe]["httpGet"]["path"]
                deadline = time.time() + 60
                while requests.get(url + path, timeout=10, verify=cert).status_code != 200:
                    self.assertLess(time.time(), deadline, f"{path} never answered 200")
                    time.sleep(0.1)
            self.assertEqual(requests.get(url + "/metrics", timeout=10, verify=cert)
                             .status_code, 200)
            # The repository API is restricted (its key comes from a Secret).
            self.assertEqual(requests.post(url + "/v2/repository/index", timeout=10,
                                           verify=cert).status_code, 403)
            self.assertIsNotNone(server.grpc_target)  # gRPC is served too
        finally:
            self.assertEqual(server.stop(), 0)

    def test_the_container_recipe_agrees_with_maasd(self):
        with open(CONTAINERFILE) as f:
            text = f.read()
        entrypoint = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M).group(1)
        self.assertEqual(entrypoint, "/opt/maas/bin/maasd")
        command = re.findall(r'"([^"]+)"', re.search(r"^CMD (.+)$", text, re.M).group(1))
        known = maasd_flags()
        for arg in command:
            self.assertIn(arg.partition("=")[0], known, arg)
        self.assertEqual(flag_values(command)["--model-store"], "/mnt/models")
        self.assertEqual(re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split(),
                         ["8000", "8001"])  # maasd's default ports
        user = re.search(r"^USER (\S+)", text, re.M).group(1)
        self.assertNotIn(user.split(":")[0], ("0", "root"))
        # maasd starts with the image's command (its own store and ports here).
        run_args = [a for a in command if not a.startswith("--model-store=")]
        server = harness.Maasd(*run_args, store=small_store())
        try:
            self.assertEqual(requests.get(server.url + "/v2/health/ready", timeout=30)
                             .status_code, 200)
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    sys.exit(harness.main())
