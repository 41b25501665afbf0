#!/usr/bin/env python3
"""maasd driven by Triton's own Python client library (tritonclient, pinned in
scripts/clients-env), over HTTP and gRPC, synchronous and asynchronous: what a Triton user's
code does, unchanged, against maasd. Where maasd does not implement a feature (shared memory,
classification, sequences, gRPC compression), the client's call must fail with a message that
says so, never answer as if it had.

Usage: scripts/clients-python test_tritonclient.py --maasd PATH --maas-tests PATH
"""
import queue
import sys
import unittest

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import harness
from harness import Maasd

# (datatype, echo model suffix, numpy dtype)
DATATYPES = [("BOOL", "bool", np.bool_), ("UINT8", "uint8", np.uint8), ("INT8", "int8", np.int8),
             ("INT16", "int16", np.int16), ("INT32", "int32", np.int32),
             ("INT64", "int64", np.int64), ("FP16", "fp16", np.float16),
             ("FP32", "fp32", np.float32), ("FP64", "fp64", np.float64)]


class Clients:
    """The HTTP and gRPC client modules and their client objects for one maasd."""

    def __init__(self, server):
        self.http = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}", concurrency=4)
        self.grpc = grpcclient.InferenceServerClient(server.grpc_target)

    def close(self):
        self.http.close()
        self.grpc.close()

    def both(self):
        return [(httpclient, self.http), (grpcclient, self.grpc)]


def identity_input(module, values, binary=True):
    x = module.InferInput("x", [len(values) // 4, 4], "FP32")
    if module is httpclient:
        x.set_data_from_numpy(np.array(values, dtype=np.float32).reshape(-1, 4),
                              binary_data=binary)
    else:
        x.set_data_from_numpy(np.array(values, dtype=np.float32).reshape(-1, 4))
    return x


class TritonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Maasd()
        cls.clients = Clients(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.clients.close()
        cls.server.stop()

    def test_health_and_metadata(self):
        for module, client in self.clients.both():
            with self.subTest(module.__name__):
                self.assertTrue(client.is_server_live())
                self.assertTrue(client.is_server_ready())
                self.assertTrue(client.is_model_ready("identity"))
                self.assertFalse(client.is_model_ready("identity", "7"))
                server = client.get_server_metadata(**self.as_json(module))
                self.assertEqual(server["name"], "maasd")
                self.assertIn("statistics", server["extensions"])
                model = client.get_model_metadata("identity", **self.as_json(module))
                self.assertEqual(model["platform"], "pytorch_torchscript")
                self.assertEqual(model["inputs"][0]["datatype"], "FP32")
                self.assertEqual([int(d) for d in model["inputs"][0]["shape"]], [-1, 4])

    def test_model_configuration(self):
        # What perf_analyzer reads first: the tensors per item and the batch limit.
        for module, client in self.clients.both():
            with self.subTest(module.__name__):
                config = client.get_model_config("pair", **self.as_json(module))
                config = config.get("config", config)
                self.assertGreater(int(config["max_batch_size"]), 0)
                self.assertEqual([(i["name"], i["data_type"], [int(d) for d in i["dims"]])
                                  for i in config["input"]],
                                 [("a", "TYPE_FP32", [2]), ("b", "TYPE_INT64", [2])])
                self.assertEqual([o["name"] for o in config["output"]], ["sum", "difference"])
                with self.assertRaises(InferenceServerException) as raised:
                    client.get_model_config("nope")
                self.assertTrue(raised.exception.message().startswith(
                    "Request for unknown model"))

    @staticmethod
    def as_json(module):
        return {"as_json": True} if module is grpcclient else {}

    def test_every_datatype_round_trips(self):
        for module, client in self.clients.both():
            for datatype, suffix, dtype in DATATYPES:
                with self.subTest(module=module.__name__, datatype=datatype):
                    values = (np.array([[1, 0, 1]], dtype=dtype) if dtype is np.bool_ else
                              np.array([[0, 7, 100]], dtype=dtype))
                    x = module.InferInput("x", [1, 3], datatype)
                    x.set_data_from_numpy(values)
                    result = client.infer(f"echo_{suffix}", [x])
                    np.testing.assert_array_equal(result.as_numpy("y"), values)

    def test_json_and_binary_outputs_and_chosen_outputs(self):
        values = [1.5, -2, 3.25, 4]
        for binary_in in (True, False):
            for binary_out in (True, False):
                x = identity_input(httpclient, values, binary_in)
                y = httpclient.InferRequestedOutput("y", binary_data=binary_out)
                result = self.clients.http.infer("identity", [x], outputs=[y])
                np.testing.assert_array_equal(result.as_numpy("y"),
                                              np.array([values], dtype=np.float32))
        a = grpcclient.InferInput("a", [1, 2], "FP32")
        a.set_data_from_numpy(np.array([[1, 2]], dtype=np.float32))
        b = grpcclient.InferInput("b", [1, 2], "INT64")
        b.set_data_from_numpy(np.array([[10, 20]], dtype=np.int64))
        result = self.clients.grpc.infer("pair", [a, b],
                                         outputs=[grpcclient.InferRequestedOutput("difference")])
        np.testing.assert_array_equal(result.as_numpy("difference"), [[-9, -18]])
        self.assertIsNone(result.as_numpy("sum"))

    def test_async_inference(self):
        pending = [self.clients.http.async_infer("identity", [identity_input(httpclient, [k] * 4)])
                   for k in range(8)]
        for k, request in enumerate(pending):
            np.testing.assert_array_equal(request.get_result().as_numpy("y"), [[k] * 4])
        answers = queue.Queue()
        for k in range(8):
            self.clients.grpc.async_infer(
                "identity", [identity_input(grpcclient, [k] * 4)],
                callback=lambda result, error, k=k: answers.put((k, result, error)))
        for _ in range(8):
            k, result, error = answers.get(timeout=60)
            self.assertIsNone(error)
            np.testing.assert_array_equal(result.as_numpy("y"), [[k] * 4])

    def test_priority_timeout_and_compressed_requests(self):
        for module, client in self.clients.both():
            result = client.infer("identity", [identity_input(module, [1, 2, 3, 4])],
                                  priority=2, timeout=5000000)
            np.testing.assert_array_equal(result.as_numpy("y"), [[1, 2, 3, 4]])
        for algorithm in ("gzip", "deflate"):
            result = self.clients.http.infer("identity", [identity_input(httpclient, [1] * 4)],
                                             request_compression_algorithm=algorithm,
                                             response_compression_algorithm=algorithm)
            np.testing.assert_array_equal(result.as_numpy("y"), [[1] * 4])
        # gRPC compression is refused, not inflated (docs/maasd.md, Security).
        with self.assertRaises(InferenceServerException) as raised:
            self.clients.grpc.infer("identity", [identity_input(grpcclient, [1] * 4)],
                                    compression_algorithm="gzip")
        self.assertIn("gzip", raised.exception.message().lower())

    def test_errors_read_as_tritons(self):
        for module, client in self.clients.both():
            with self.subTest(module.__name__):
                with self.assertRaises(InferenceServerException) as raised:
                    client.infer("nope", [identity_input(module, [1] * 4)])
                # Triton's examples test for exactly this beginning.
                self.assertTrue(raised.exception.message().startswith(
                    "Request for unknown model"), raised.exception.message())
                x = module.InferInput("x", [1, 4], "INT32")
                x.set_data_from_numpy(np.zeros((1, 4), dtype=np.int32))
                with self.assertRaises(InferenceServerException) as raised:
                    client.infer("identity", [x])
                self.assertIn("expected dtype float32 (FP32), got int32 (INT32)",
                              raised.exception.message())

    def test_what_maasd_does_not_implement_is_refused(self):
        for module, client in self.clients.both():
            with self.subTest(module.__name__):
                shared = module.InferInput("x", [1, 4], "FP32")
                shared.set_shared_memory("region", 16)
                classified = module.InferRequestedOutput("y", class_count=2)
                stored = module.InferRequestedOutput("y")
                stored.set_shared_memory("region", 16)
                cases = [
                    (dict(inputs=[shared]), "shared-memory extension"),
                    (dict(inputs=[identity_input(module, [1] * 4)], outputs=[classified]),
                     "classification extension"),
                    (dict(inputs=[identity_input(module, [1] * 4)], outputs=[stored]),
                     "shared-memory extension"),
                    (dict(inputs=[identity_input(module, [1] * 4)], sequence_id=7,
                          sequence_start=True), "no sequence"),
                ]
                for kwargs, fragment in cases:
                    with self.assertRaises(InferenceServerException) as raised:
                        client.infer("identity", **kwargs)
                    self.assertIn(fragment, raised.exception.message())

    def test_statistics(self):
        for module, client in self.clients.both():
            client.infer("echo_fp32", [self.echo_input(module)])
        http = self.clients.http.get_inference_statistics("echo_fp32")["model_stats"][0]
        grpc = self.clients.grpc.get_inference_statistics("echo_fp32", as_json=True)
        grpc = grpc["model_stats"][0]
        for stats in (http, grpc):
            self.assertEqual(stats["name"], "echo_fp32")
            self.assertGreater(int(stats["last_inference"]), 0)
            self.assertGreaterEqual(int(stats["inference_stats"]["success"]["count"]), 2)
            self.assertGreater(int(stats["inference_stats"]["compute_infer"]["ns"]), 0)
        self.assertEqual(int(http["execution_count"]), int(grpc["execution_count"]))

    @staticmethod
    def echo_input(module):
        x = module.InferInput("x", [1, 3], "FP32")
        x.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32))
        return x


class RepositoryTest(unittest.TestCase):
    def test_index_load_and_unload(self):
        server = Maasd("--model-control-mode=explicit")
        clients = Clients(server)
        try:
            for module, client in clients.both():
                with self.subTest(module.__name__):
                    client.load_model("identity")
                    self.assertTrue(client.is_model_ready("identity"))
                    index = client.get_model_repository_index(
                        **({"as_json": True} if module is grpcclient else {}))
                    models = index["models"] if isinstance(index, dict) else index
                    self.assertIn("identity", {m["name"] for m in models})
                    client.unload_model("identity")
                    self.assertFalse(client.is_model_ready("identity"))
        finally:
            clients.close()
            server.stop()


if __name__ == "__main__":
    sys.exit(harness.main())
