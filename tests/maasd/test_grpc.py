#!/usr/bin/env python3
"""Conformance tests of maasd's gRPC API (Open Inference Protocol, KServe v2), driven by a real
gRPC client (Debian's python3-grpcio) whose stubs are generated, as a user's would be, from the
inference.proto that maasd installs (protoc with Debian's grpc_python_plugin), against maasd
processes started on ephemeral ports.

Usage: test_grpc.py --maasd PATH --maas-tests PATH --proto PATH [unittest arguments]
"""
import os
import signal
import socket
import struct
import sys
import time
import unittest

import grpc
import requests

import harness
from harness import DATATYPES, Maasd, bf16_bytes

pb = None  # inference_pb2
stubs = None  # inference_pb2_grpc


def generate_stubs(proto):
    global pb, stubs
    pb, stubs = harness.grpc_stubs(proto)


def raw_request(model, name, datatype, shape, payload, **fields):
    request = pb.ModelInferRequest(model_name=model, **fields)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(payload)
    return request


def fp32_request(model, shape, values, name="x", **fields):
    return raw_request(model, name, "FP32", shape, struct.pack(f"<{len(values)}f", *values),
                       **fields)


def fp32_output(response, index=0):
    data = response.raw_output_contents[index]
    return list(struct.unpack(f"<{len(data) // 4}f", data))


class GrpcApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Maasd("--log-requests")
        cls.channel = grpc.insecure_channel(cls.server.grpc_target)
        cls.stub = stubs.GRPCInferenceServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0

    def assert_fails(self, call, code, fragment):
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        self.assertIn(fragment, raised.exception.details())

    def test_health_and_server_metadata(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest()).ready)
        meta = self.stub.ServerMetadata(pb.ServerMetadataRequest())
        self.assertEqual(meta.name, "maasd")
        self.assertTrue(meta.version)
        self.assertIn("model_repository", meta.extensions)

    def test_model_metadata_and_readiness(self):
        meta = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="identity"))
        self.assertEqual(meta.name, "identity")
        self.assertEqual(list(meta.versions), ["1"])
        self.assertEqual(meta.platform, "pytorch_torchscript")
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in meta.inputs],
                         [("x", "FP32", [-1, 4])])
        self.assertEqual([t.name for t in meta.outputs], ["y"])
        pair = self.stub.ModelMetadata(pb.ModelMetadataRequest(name="pair", version="1"))
        self.assertEqual([t.name for t in pair.inputs], ["a", "b"])
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name="pair")).ready)
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name="pair", version="1")).ready)
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="pair", version="9")).ready)
        # Not deployed: not ready, as Triton answers (its clients poll with is_model_ready).
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name="nope")).ready)
        self.assert_fails(lambda: self.stub.ModelMetadata(pb.ModelMetadataRequest(name="nope")),
                          grpc.StatusCode.NOT_FOUND, "nope")

    def test_every_datatype_round_trips_raw_and_typed(self):
        typed_field = {"BOOL": "bool_contents", "UINT8": "uint_contents", "INT8": "int_contents",
                       "INT16": "int_contents", "INT32": "int_contents",
                       "INT64": "int64_contents", "FP32": "fp32_contents",
                       "FP64": "fp64_contents"}
        for datatype, suffix, fmt, values in DATATYPES:
            with self.subTest(datatype=datatype):
                model = f"echo_{suffix}"
                payload = bf16_bytes(values) if fmt is None else struct.pack(f"<3{fmt}", *values)
                out = self.stub.ModelInfer(raw_request(model, "x", datatype, [1, 3], payload,
                                                       id="r-1"))
                self.assertEqual((out.model_name, out.model_version, out.id), (model, "1", "r-1"))
                self.assertEqual([(o.name, o.datatype, list(o.shape)) for o in out.outputs],
                                 [("y", datatype, [1, 3])])
                self.assertEqual(out.raw_output_contents[0], payload)  # bit for bit
                if datatype not in typed_field:
                    # FP16 and BF16 have no typed contents: refused with a reason.
                    request = pb.ModelInferRequest(model_name=model)
                    request.inputs.add(name="x", datatype=datatype, shape=[1, 3])
                    self.assert_fails(lambda: self.stub.ModelInfer(request),
                                      grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents")
                    continue
                request = pb.ModelInferRequest(model_name=model)
                tensor = request.inputs.add(name="x", datatype=datatype, shape=[1, 3])
                getattr(tensor.contents, typed_field[datatype]).extend(values)
                out = self.stub.ModelInfer(request)
                self.assertEqual(out.raw_output_contents[0], payload)

    def test_named_inputs_in_any_order_and_chosen_outputs(self):
        request = pb.ModelInferRequest(model_name="pair", id="pair-1")
        request.inputs.add(name="b", datatype="INT64", shape=[2, 2])
        request.inputs.add(name="a", datatype="FP32", shape=[2, 2])
        request.raw_input_contents.append(struct.pack("<4q", 1, 2, 3, 4))
        request.raw_input_contents.append(struct.pack("<4f", 10, 20, 30, 40))
        request.outputs.add(name="difference")
        out = self.stub.ModelInfer(request)
        self.assertEqual(out.id, "pair-1")
        self.assertEqual([o.name for o in out.outputs], ["difference"])
        self.assertEqual(fp32_output(out), [9, 18, 27, 36])
        del request.outputs[:]
        request.outputs.add(name="nope")
        self.assert_fails(lambda: self.stub.ModelInfer(request),
                          grpc.StatusCode.INVALID_ARGUMENT, "no output 'nope'")

    def test_bad_requests_get_a_clear_status(self):
        def typed(model, name, datatype, shape, field, values):
            request = pb.ModelInferRequest(model_name=model)
            tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
            getattr(tensor.contents, field).extend(values)
            return request

        both = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        both.inputs[0].contents.fp32_contents.extend([1, 2, 3, 4])
        two_raw = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        two_raw.raw_input_contents.append(b"\0" * 16)
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        cases = [
            (raw_request("identity", "x", "BYTES", [1, 1], b"abcd"), invalid, "datatype BYTES"),
            (raw_request("identity", "x", "FP32", [1, 4], b"\0" * 12), invalid,
             "needs 16 bytes; got 12"),
            (raw_request("identity", "x", "FP32", [1 << 20, 1 << 20], b"\0" * 16), invalid,
             "needs 4398046511104 bytes"),
            (raw_request("identity", "x", "FP32", [-1, 4], b"\0" * 16), invalid,
             "non-negative"),
            (raw_request("identity", "x", "FP32", [1 << 62, 1 << 62], b""), invalid, "too large"),
            (typed("identity", "x", "FP32", [1, 4], "fp32_contents", [1, 2, 3]), invalid,
             "needs 4 values in contents.fp32_contents; it holds 3"),
            (typed("identity", "x", "FP32", [1, 4], "int_contents", [1, 2, 3, 4]), invalid,
             "it holds 0"),
            (typed("echo_int8", "x", "INT8", [1, 3], "int_contents", [1, 300, 2]), invalid,
             "out of the datatype's range"),
            (typed("echo_uint8", "x", "UINT8", [1, 1], "uint_contents", [256]), invalid,
             "out of the datatype's range"),
            (both, invalid, "use one or the other"),
            (two_raw, invalid, "raw_input_contents has 2 entries for 1 inputs"),
            (fp32_request("identity", [1, 4], [1, 2, 3, 4], name="z"), invalid,
             "no input is named"),
            (fp32_request("identity", [1, 5], [1, 2, 3, 4, 5]), invalid, "x"),
            (raw_request("identity", "x", "FP64", [1, 4], b"\0" * 32), invalid, "float"),
            (fp32_request("nope", [1, 4], [1, 2, 3, 4]), grpc.StatusCode.NOT_FOUND, "nope"),
            (fp32_request("identity", [1, 4], [1, 2, 3, 4], model_version="7"),
             grpc.StatusCode.NOT_FOUND, "7"),
        ]
        priority = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        priority.parameters["priority"].string_param = "high"
        cases.append((priority, invalid, "parameter priority"))
        for request, code, fragment in cases:
            with self.subTest(request=str(request)[:120]):
                self.assert_fails(lambda: self.stub.ModelInfer(request), code, fragment)
        # Bytes that are no ModelInferRequest (invalid UTF-8 in model_name, then a truncated
        # field) are refused by gRPC itself, without a line in maasd's log per message.
        raw = self.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                       request_serializer=None, response_deserializer=None)
        for garbage in (b"\x0a\x02\xff\xfe", b"\x0a\x10ab"):
            with self.assertRaises(grpc.RpcError) as raised:
                raw(garbage, timeout=30)
            self.assertNotEqual(raised.exception.code(), grpc.StatusCode.OK)
        self.assertNotIn("libprotobuf", self.server.stderr())
        # After all that, the channel and the server still serve.
        out = self.stub.ModelInfer(fp32_request("identity", [1, 4], [1, 2, 3, 4]))
        self.assertEqual(fp32_output(out), [1, 2, 3, 4])

    def test_an_unknown_model_is_named_in_tritons_words(self):
        for call in (lambda: self.stub.ModelInfer(fp32_request("nope", [1, 4], [1, 2, 3, 4])),
                     lambda: self.stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"))):
            self.assert_fails(call, grpc.StatusCode.NOT_FOUND,
                              "Request for unknown model: 'nope' is not found")

    def test_parameters_maasd_does_not_implement_are_refused_not_ignored(self):
        sequence = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        sequence.parameters["sequence_id"].int64_param = 7
        self.assert_fails(lambda: self.stub.ModelInfer(sequence),
                          grpc.StatusCode.INVALID_ARGUMENT,
                          "the request: parameter 'sequence_id' is not supported")
        classification = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        classification.outputs.add(name="y").parameters["classification"].int64_param = 2
        self.assert_fails(lambda: self.stub.ModelInfer(classification),
                          grpc.StatusCode.INVALID_ARGUMENT,
                          "output 'y': parameter 'classification' is not supported")
        shared = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        shared.inputs[0].parameters["shared_memory_region"].string_param = "region"
        self.assert_fails(lambda: self.stub.ModelInfer(shared), grpc.StatusCode.INVALID_ARGUMENT,
                          "input 'x': parameter 'shared_memory_region' is not supported")

    def test_rests_binary_parameters_as_the_kserve_sdk_sends_them_are_checked(self):
        # KServe's Python SDK (kserve 0.21, InferenceGRPCClient) puts REST's binary_data_size
        # on every raw input and may put binary_data on requested outputs.
        request = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        request.inputs[0].parameters["binary_data_size"].int64_param = 16
        request.outputs.add(name="y").parameters["binary_data"].bool_param = True
        self.assertEqual(fp32_output(self.stub.ModelInfer(request)), [1, 2, 3, 4])
        wrong = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        wrong.inputs[0].parameters["binary_data_size"].int64_param = 12
        self.assert_fails(lambda: self.stub.ModelInfer(wrong), grpc.StatusCode.INVALID_ARGUMENT,
                          "input 'x': binary_data_size is 12 but its raw_input_contents entry "
                          "has 16 bytes")
        typed = pb.ModelInferRequest(model_name="identity")
        typed.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        typed.inputs[0].contents.fp32_contents.extend([1, 2, 3, 4])
        typed.inputs[0].parameters["binary_data_size"].int64_param = 16
        self.assert_fails(lambda: self.stub.ModelInfer(typed), grpc.StatusCode.INVALID_ARGUMENT,
                          "declares binary_data_size but the request has no raw_input_contents")
        not_bool = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        not_bool.outputs.add(name="y").parameters["binary_data"].string_param = "yes"
        self.assert_fails(lambda: self.stub.ModelInfer(not_bool),
                          grpc.StatusCode.INVALID_ARGUMENT,
                          "output 'y': parameter binary_data must be a bool_param")

    def test_statistics_agree_with_rest(self):
        for _ in range(3):
            self.stub.ModelInfer(fp32_request("echo_fp32", [1, 3], [1, 2, 3]))
        response = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name="echo_fp32"))
        self.assertEqual(len(response.model_stats), 1)
        stats = response.model_stats[0]
        self.assertEqual((stats.name, stats.version), ("echo_fp32", "1"))
        self.assertGreater(stats.last_inference, 0)
        self.assertGreaterEqual(stats.execution_count, 1)
        self.assertGreaterEqual(stats.inference_stats.success.count, 3)
        self.assertGreater(stats.inference_stats.success.ns, 0)
        self.assertGreater(stats.inference_stats.compute_infer.ns, 0)
        self.assertTrue(stats.batch_stats)
        rest = requests.get(self.server.url + "/v2/models/echo_fp32/stats",
                            timeout=60).json()["model_stats"][0]
        self.assertEqual(rest["inference_stats"]["success"]["count"],
                         stats.inference_stats.success.count)
        self.assertEqual(rest["execution_count"], stats.execution_count)
        everything = self.stub.ModelStatistics(pb.ModelStatisticsRequest())
        self.assertIn("identity", {s.name for s in everything.model_stats})
        self.assert_fails(
            lambda: self.stub.ModelStatistics(pb.ModelStatisticsRequest(name="nope")),
            grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'nope' is not found")
        extensions = self.stub.ServerMetadata(pb.ServerMetadataRequest()).extensions
        self.assertIn("statistics", extensions)

    def test_a_model_error_is_internal_and_spoils_nothing_else(self):
        self.assert_fails(lambda: self.stub.ModelInfer(fp32_request("picky", [1, 2], [-1, 1])),
                          grpc.StatusCode.INTERNAL, "negative input is not allowed")
        out = self.stub.ModelInfer(fp32_request("picky", [1, 2], [1, 2]))
        self.assertEqual(fp32_output(out), [2, 4])

    def test_concurrent_clients_each_get_their_own_answer(self):
        failures = []

        def client(k):
            # A channel per client: separate HTTP/2 connections, as separate processes have.
            with grpc.insecure_channel(self.server.grpc_target) as channel:
                stub = stubs.GRPCInferenceServiceStub(channel)
                for i in range(40):
                    values = [k, i, k * i, -k]
                    out = stub.ModelInfer(fp32_request("identity", [1, 4], values), timeout=60)
                    if fp32_output(out) != values:
                        failures.append((k, i, fp32_output(out)))

        harness.run_clients(client, 16)
        self.assertEqual(failures, [])
        # Many requests in flight on one channel (HTTP/2 streams), answered out of order.
        futures = [self.stub.ModelInfer.future(fp32_request("identity", [1, 4], [i, 0, 0, i]))
                   for i in range(64)]
        self.assertEqual([fp32_output(f.result(timeout=60)) for f in futures],
                         [[i, 0, 0, i] for i in range(64)])

    def test_priority_timeout_and_the_clients_deadline(self):
        ok = fp32_request("identity", [1, 4], [1, 2, 3, 4])
        ok.parameters["priority"].uint64_param = 2  # as Triton's client sends it
        ok.parameters["timeout"].int64_param = 5000000
        self.assertEqual(fp32_output(self.stub.ModelInfer(ok)), [1, 2, 3, 4])
        # Behind slow requests (20-60 ms a run), neither a 1 us timeout nor a 10 ms gRPC
        # deadline can be met: maasd refuses them without running them (its log says so: the
        # client's own deadline alone would not show it), and the slow ones still answer.
        # Two runs first, so that maasd has learned how long the model takes: without that, an
        # idle moment could let the 10 ms request start, and finish after its client gave up.
        for _ in range(2):
            self.stub.ModelInfer(fp32_request("slow", [1, 2], [1, 2]), timeout=60)
        busy = [self.stub.ModelInfer.future(fp32_request("slow", [1, 2], [1, 2]))
                for _ in range(8)]
        time.sleep(0.01)
        late = fp32_request("slow", [1, 2], [1, 2])
        late.parameters["timeout"].int64_param = 1
        self.assert_fails(lambda: self.stub.ModelInfer(late),
                          grpc.StatusCode.DEADLINE_EXCEEDED, "deadline")
        with self.assertRaises(grpc.RpcError) as raised:
            self.stub.ModelInfer(fp32_request("slow", [1, 2], [1, 2]), timeout=0.01)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        for future in busy:
            self.assertEqual(fp32_output(future.result(timeout=60)), [1, 2])
        time.sleep(0.2)
        refused = [line for line in self.server.stderr().splitlines()
                   if '"model":"slow"' in line and '"status":"DEADLINE_EXCEEDED"' in line]
        self.assertEqual(len(refused), 2, self.server.stderr()[-2000:])

    def test_repository_index(self):
        index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
        identity = [m for m in index.models if m.name == "identity"]
        self.assertEqual([(m.version, m.state) for m in identity], [("1", "READY")])
        self.assert_fails(
            lambda: self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(
                model_name="identity")), grpc.StatusCode.FAILED_PRECONDITION, "explicit")

    def test_metrics_count_grpc_requests_apart(self):
        self.stub.ModelInfer(fp32_request("identity", [1, 4], [0, 0, 0, 0]))
        metrics = requests.get(self.server.url + "/metrics", timeout=60).text
        self.assertRegex(metrics, r'maas_server_responses_total\{model="identity",version="1",'
                                  r'protocol="grpc",outcome="success"\} [1-9]')

    def test_request_log_lines_are_json(self):
        self.stub.ModelInfer(fp32_request("identity", [1, 4], [0, 0, 0, 0]))
        time.sleep(0.1)
        lines = [line for line in self.server.stderr().splitlines()
                 if '"rpc":"ModelInfer"' in line]
        self.assertTrue(lines)
        self.assertIn('"model":"identity","version":1,"status":"OK"', lines[-1])


class GrpcLifecycleTest(unittest.TestCase):
    def test_messages_over_the_limit_are_refused(self):
        server = Maasd("--max-body-bytes=4096", "--model=identity")
        try:
            with grpc.insecure_channel(server.grpc_target) as channel:
                stub = stubs.GRPCInferenceServiceStub(channel)
                big = fp32_request("identity", [512, 4], [0.0] * 2048)  # 8 KiB
                with self.assertRaises(grpc.RpcError) as raised:
                    stub.ModelInfer(big)
                self.assertEqual(raised.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                small = stub.ModelInfer(fp32_request("identity", [1, 4], [1, 2, 3, 4]))
                self.assertEqual(fp32_output(small), [1, 2, 3, 4])
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_thousand_idle_connections_cost_little_and_block_nothing(self):
        server = Maasd("--model=identity")
        host, port = server.grpc_target.split(":")
        try:
            before = server.rss_kib()
            # 500 idle HTTP/2 connections (the client preface and an empty SETTINGS frame, then
            # nothing), and 500 that never send a byte.
            preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
            sockets = []
            try:
                for i in range(1000):
                    s = socket.create_connection((host, int(port)))
                    if i % 2 == 0:
                        s.sendall(preface)
                    sockets.append(s)
                time.sleep(0.5)
                with grpc.insecure_channel(server.grpc_target) as channel:
                    stub = stubs.GRPCInferenceServiceStub(channel)
                    out = stub.ModelInfer(fp32_request("identity", [1, 4], [1, 2, 3, 4]),
                                          timeout=30)
                    self.assertEqual(fp32_output(out), [1, 2, 3, 4])
                grown = server.rss_kib() - before
                print(f"\nRSS grew {grown} KiB for 1000 idle gRPC connections", file=sys.stderr)
                # gRPC keeps HTTP/2 state per connection: about 18 KiB here (18 MiB for
                # 1000), about four times that under AddressSanitizer (redzones, quarantine).
                limit = 96 if "ASAN_OPTIONS" in os.environ else 32
                self.assertLess(grown, limit * 1024, f"RSS grew {grown} KiB")
            finally:
                for s in sockets:
                    s.close()
        finally:
            self.assertEqual(server.stop(), 0)

    def test_sigterm_answers_accepted_rpcs_then_exits_zero(self):
        server = Maasd("--model=slow")
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = stubs.GRPCInferenceServiceStub(channel)
            futures = [stub.ModelInfer.future(fp32_request("slow", [1, 2], [1, 2]))
                       for _ in range(8)]
            time.sleep(0.3)  # accepted: read and queued or running
            server.proc.send_signal(signal.SIGTERM)
            self.assertEqual([fp32_output(f.result(timeout=60)) for f in futures], [[1, 2]] * 8)
            self.assertEqual(server.proc.wait(timeout=60), 0)
        server.stop()  # closes its log

    def test_explicit_mode_loads_and_unloads(self):
        server = Maasd("--model-control-mode=explicit")
        try:
            with grpc.insecure_channel(server.grpc_target) as channel:
                stub = stubs.GRPCInferenceServiceStub(channel)
                ready = lambda: stub.ModelReady(pb.ModelReadyRequest(name="identity")).ready
                self.assertFalse(ready())
                stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="identity"))
                self.assertTrue(ready())
                with self.assertRaises(grpc.RpcError) as raised:
                    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="nope"))
                self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)
                stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="identity"))
                self.assertFalse(ready())
        finally:
            self.assertEqual(server.stop(), 0)

    def test_a_new_version_under_grpc_load_fails_no_request(self):
        def connect(server):
            channel = grpc.insecure_channel(server.grpc_target)
            stub = stubs.GRPCInferenceServiceStub(channel)

            def infer():
                out = stub.ModelInfer(fp32_request("tagged", [1, 2], [0, 0]), timeout=60)
                return int(out.model_version), fp32_output(out)
            return infer, channel.close

        harness.check_a_new_version_under_load(self, connect)


if __name__ == "__main__":
    sys.exit(harness.main(before_tests=lambda: generate_stubs(harness.OPTIONS["proto"]),
                          options=("proto",)))
