"""The official tensorflow-serving-api client works against our server unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from serving_support import dtypes_model, start_server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def official_available() -> None:
    probe = "import tensorflow_serving.apis.prediction_service_pb2_grpc"
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode:
        pytest.skip("tensorflow-serving-api is not installed (pip install --no-deps ...)")


def test_official_client(official_available, arith_server, tmp_path):
    dtypes_model(tmp_path / "models" / "1" / "m.onnx")
    dtype_server = start_server(tmp_path / "models", tmp_path)
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "official_client.py"), arith_server.address,
             dtype_server.address],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        dtype_server.kill()
    assert done.returncode == 0, done.stderr[-5000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["sum"] == [[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
    assert len(out["prod"]) == 2 and len(out["prod"][0]) == 4
    assert out["version"] == 2 and out["signature_name"] == "serving_default"
    assert out["unpacked"] is True
    assert out["inputs"] == {"a": ["float32", [-1, 3]], "b": ["float32", [-1, 3]]}
    assert out["status"] == [2, "AVAILABLE"]
    assert out["error"][0] == "INVALID_ARGUMENT" and "Missing but required: {b}" in out["error"][1]
    assert out["dtypes"] == {
        "f32_out": ["float32", [[3.0, -4.0]]],
        "f64_out": ["float64", [[0.2, 2e300]]],
        "i32_out": ["int32", [[-6, 14]]],
        "i64_out": ["int64", [[-(2**41), 18]]],
        "flag_out": ["bool", [[False, True]]],
        "text_out": ["object", [["a", "é"]]],
    }


DESCRIPTORS = """
import json, sys
import tensorflow_serving.apis.prediction_service_pb2 as p
import tensorflow_serving.apis.model_service_pb2 as m
from google.protobuf import descriptor_pool
pool = descriptor_pool.Default()
out = {}
for name in sys.argv[1:]:
    try:
        d = pool.FindMessageTypeByName(name)
    except KeyError:
        out[name] = None
        continue
    out[name] = {f.name: [f.number, f.type, f.is_repeated,
                          f.message_type.full_name if f.message_type else None,
                          f.enum_type.full_name if f.enum_type else None,
                          f.containing_oneof.name if f.containing_oneof and
                          not f.containing_oneof.name.startswith('_') else None]
                 for f in d.fields}
print(json.dumps(out))
"""


def _ours() -> dict:
    from imm.serving.protos import pool  # noqa: F401  (populates the pool)
    from imm.serving.protos.pool import POOL
    from imm.serving.protos.services import METHODS

    names: set[str] = set()
    todo = [m.request.DESCRIPTOR for m in METHODS.values()]
    todo += [m.response.DESCRIPTOR for m in METHODS.values()]
    todo.append(POOL.FindMessageTypeByName("tensorflow.serving.SignatureDefMap"))
    while todo:
        d = todo.pop()
        if d.full_name in names or d.full_name.startswith("google.protobuf"):
            continue
        names.add(d.full_name)
        todo.extend(f.message_type for f in d.fields if f.message_type)
    out = {}
    for name in sorted(names):
        d = POOL.FindMessageTypeByName(name)
        out[name] = {
            f.name: [
                f.number, f.type, f.is_repeated,
                f.message_type.full_name if f.message_type else None,
                f.enum_type.full_name if f.enum_type else None,
                f.containing_oneof.name
                if f.containing_oneof and not f.containing_oneof.name.startswith("_") else None,
            ]
            for f in d.fields
        }  # fmt: skip
    return out


def test_our_messages_match_the_official_descriptors(official_available):
    ours = _ours()
    done = subprocess.run(
        [sys.executable, "-c", DESCRIPTORS, *ours],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    official = json.loads(done.stdout.strip().splitlines()[-1])
    for name, fields in ours.items():
        theirs = official[name]
        assert theirs is not None, f"{name} is not an official message"
        for field, spec in fields.items():
            assert theirs.get(field) == spec, (
                f"{name}.{field}: ours {spec}, official {theirs.get(field)}"
            )
        left_out = set(theirs) - set(fields)
        # Fields we leave out on purpose (protocols.md 0.4): parsers skip them.
        assert left_out <= {
            "predict_streamed_options", "client_id", "request_options", "composite_tensor",
            "config",
        }, (name, left_out)  # fmt: skip


def test_generated_modules_are_up_to_date(tmp_path):
    """Regenerate in a subprocess (protoc beside TensorFlow in one process can crash)."""
    pytest.importorskip("grpc_tools")
    gen = tmp_path / "gen"
    done = subprocess.run(
        [sys.executable, "-m", "imm.serving.protos.build", "--out", str(gen)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    from imm.serving.protos import build

    here = Path(build.__file__).parent / "generated"
    fresh = {p.relative_to(gen): p.read_text() for p in gen.rglob("*.py*")}
    committed = {p.relative_to(here): p.read_text() for p in here.rglob("*.py*")}
    assert fresh == committed, "run: python -m imm.serving.protos.build"


def test_our_modules_and_tensorflows_share_a_process():
    """Our private descriptor pool: TensorFlow's protos and ours import side by side."""
    code = (
        "import tensorflow\n"
        "from imm.serving.protos import predict_pb2\n"
        "from tensorflow.core.framework import tensor_pb2\n"
        "r = predict_pb2.PredictRequest(); r.inputs['x'].float_val.append(1.0)\n"
        "t = tensor_pb2.TensorProto.FromString(r.inputs['x'].SerializeToString())\n"
        "print(t.float_val[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if "No module named 'tensorflow'" in done.stderr:
        pytest.skip("tensorflow is not installed")
    assert done.returncode == 0 and done.stdout.strip().endswith("1.0"), done.stderr[-3000:]
