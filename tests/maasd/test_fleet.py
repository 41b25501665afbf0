#!/usr/bin/env python3
"""A fleet on one machine: three maasd replicas share one store folder, as replicas in a
cluster share a volume, and clients spread their requests over them. The store changes under
load through the `maas` command line (a new version, then an alias moved), and the replicas are
restarted one at a time, as a rolling update does. What must hold (issue #15, docs/deploying.md):
- every replica converges on what the store says within its poll interval (plus the new
  version's load time);
- no request fails, and no client sees an older version after a newer one from one replica;
- a replica stopped with SIGTERM answers every request it had accepted, and exits 0.

Usage: test_fleet.py --maasd PATH --maas-tests PATH --maas PATH [unittest arguments]
"""
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

import harness
from harness import Maasd, child


def maas_path():
    return harness.OPTIONS["maas"]

POLL = 0.2  # seconds: each replica's --poll-interval


class Fleet:
    """The replicas and the clients' view of them: which are in rotation, and their URLs."""

    def __init__(self, store, count):
        self.store = store
        self.flags = ["--model-control-mode=poll", f"--poll-interval={int(POLL * 1000)}ms",
                      "--model=tagged@stable"]
        # How long a replica takes from its start to ready (starting, loading and warming the
        # model): the measure of this machine, now, that the convergence bound derives from.
        self.replicas, self.startup = [], 0.0
        for _ in range(count):
            started = time.time()
            self.replicas.append(Maasd(*self.flags, store=store))
            self.wait_ready(self.replicas[-1].url)
            self.startup = max(self.startup, time.time() - started)
        self.urls = [r.url for r in self.replicas]
        self.generation = [0] * count  # bumped on restart: clients then open new connections
        self.in_rotation = [True] * count
        self.lock = threading.Lock()

    def pick(self, turn):
        with self.lock:
            live = [i for i in range(len(self.urls)) if self.in_rotation[i]]
            i = live[turn % len(live)]
            return i, self.urls[i], self.generation[i]

    def restart(self, i):
        """Takes replica i out of rotation (as a load balancer does when a pod terminates),
        stops it with SIGTERM (it answers what it accepted), starts it again on its port, and
        puts it back once it is ready. Returns the old process's exit code."""
        with self.lock:
            self.in_rotation[i] = False
        # What a preStop hook's short sleep gives in Kubernetes: requests already routed to the
        # replica reach it before it stops accepting.
        time.sleep(0.1)
        code = self.replicas[i].stop()
        port = self.replicas[i].port
        self.replicas[i] = Maasd(*self.flags, f"--http-port={port}", store=self.store)
        self.wait_ready(self.urls[i])
        with self.lock:
            self.generation[i] += 1
            self.in_rotation[i] = True
        return code

    def stop(self):
        return [r.stop() for r in self.replicas]

    @staticmethod
    def wait_ready(url):
        deadline = time.time() + 120
        while requests.get(url + "/v2/health/ready", timeout=10).status_code != 200:
            assert time.time() < deadline, f"{url} never became ready"
            time.sleep(0.05)


class FleetTest(unittest.TestCase):
    def test_replicas_share_a_store_follow_it_under_load_and_restart_one_at_a_time(self):
        store = os.path.join(tempfile.mkdtemp(dir=harness.SCRATCH), "store")
        self.assertEqual(child("publish-tagged", store, "tagged", "1", "stable").strip(), "1")
        fleet = Fleet(store, 3)
        failures, answers = [], []  # answers: (time, replica, version)
        stop = threading.Event()

        def client(k):
            sessions = {}
            last = {}  # replica -> the newest version it answered this client with
            turn = k
            while not stop.is_set():
                turn += 1
                i, url, generation = fleet.pick(turn)
                session = sessions.get((i, generation))
                if session is None:
                    session = sessions[(i, generation)] = requests.Session()
                try:
                    r = session.post(url + "/v2/models/tagged/infer", timeout=60,
                                     json={"inputs": [{"name": "x", "datatype": "FP32",
                                                       "shape": [1, 2], "data": [0, 0]}]})
                except requests.RequestException as error:
                    failures.append((i, repr(error)))
                    continue
                if r.status_code != 200:
                    failures.append((i, r.status_code, r.text))
                    continue
                out = r.json()
                version = int(out["model_version"])
                if out["outputs"][0]["data"] != [version, version]:
                    failures.append((i, "answer from another version than named", out))
                if version < last.get(i, 0):
                    failures.append((i, f"version {version} after {last[i]}"))
                last[i] = version
                answers.append((time.time(), i, version))
            for session in sessions.values():
                session.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        try:
            for t in threads:
                t.start()
            time.sleep(0.5)
            # A new version that no alias names: the replicas follow "stable", still 1.
            self.assertEqual(child("publish-tagged", store, "tagged", "2").strip(), "2")
            time.sleep(4 * POLL)
            self.assertEqual({v for _, _, v in answers}, {1})
            # Move the alias with the command line: every replica converges.
            moved = time.time()
            result = subprocess.run([maas_path(), "--store", store, "alias", "set", "tagged",
                                     "stable", "2"], capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stderr)
            converged = {}
            # Within the poll interval plus loading and warming the new version, which the
            # replica does while the old one serves. A replica's start (which loads and warms
            # the same model) measures that on this machine as it is now, busy or not; under
            # load and beside two other replicas it may take a few times as long.
            bound = POLL + max(2.0, 3 * fleet.startup)
            deadline = moved + max(30, 2 * bound)
            while len(converged) < 3 and time.time() < deadline:
                for t, i, v in list(answers):
                    if v == 2 and i not in converged:
                        converged[i] = t - moved
                time.sleep(0.02)
            self.assertEqual(sorted(converged), [0, 1, 2], f"converged: {converged}")
            print(f"\nconvergence after the alias moved, per replica (s): "
                  f"{[round(converged[i], 3) for i in range(3)]}; a replica's start took "
                  f"{fleet.startup:.2f} s, bound {bound:.2f} s", file=sys.stderr)
            self.assertLess(max(converged.values()), bound)
            # A rolling restart under load.
            before_restart = len(answers)
            for i in range(3):
                self.assertEqual(fleet.restart(i), 0, f"replica {i} did not exit 0")
                time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join()
            self.assertEqual(failures, [])
            self.assertGreater(len(answers), before_restart)
            # After the restart, every replica serves the version the alias names.
            self.assertEqual({v for _, _, v in answers[-30:]}, {2})
        finally:
            stop.set()
            for t in threads:
                t.join()
            self.assertEqual(fleet.stop(), [0, 0, 0])


if __name__ == "__main__":
    sys.exit(harness.main(options=("maas",)))
