"""Ingress benchmark: Predict through the nginx mTLS ingress versus straight to the replica.

    .venv/bin/python bench/ingress.py [--calls 12000] [--concurrency 1 8]

In one run it starts the platform (``imm up``) on free ports, creates a tenant, uploads a
small ONNX model, creates an endpoint with one replica and then, for each concurrency,
alternates the two paths (direct, ingress, direct, ingress) so that machine drift hits
both alike. Clients are separate processes sending one pre-serialized request, so the
client costs the same on both paths. It prints throughput, p50 and p99 per path, the
throughput ratio and the p50 the ingress adds (targets: ratio >= 0.9, added p50 <= 0.5 ms),
then the time from create to ``running`` and from scale 0 -> 1 to the first answer
(target: under 2 s each for a small model). Each row also shows the CPU time per call of
the replica and of nginx's workers, read from /proc.

Last run (2026-12-04, quiet 2-vCPU machine, defaults; 2000 calls per path were too few at
8 clients, where the ratio swung from 0.76 to 0.98 between runs):

    path       clients   calls/s   p50 ms   p99 ms  CPU us/call: replica  nginx
    direct           1      1533    0.641    0.980                   488      0
    ingress          1      1200    0.808    1.197                   505    130
      -> 1 client(s): throughput ratio ingress/direct 0.78, added p50 0.167 ms
    direct           8      2749    2.342    5.727                   371      0
    ingress          8      2185    2.580   11.989                   407    116
      -> 8 client(s): throughput ratio ingress/direct 0.79, added p50 0.238 ms
    create -> running: 1.07 s; scale 0 -> 1 -> first answer: 0.53 s

The ratio misses 0.9. The clients, nginx and the replica share two cores, so the ingress
costs throughput in proportion to the CPU its workers use: about 120 us per call (TLS,
HTTP/2 twice, and above all the wake-ups of one more process hop, which perf shows as a
third of nginx's samples), a quarter of the replica's own. Tried without effect: one
worker process, worker_cpu_affinity, AES-128-GCM only, a Unix socket to the replica.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serving import build_model  # noqa: E402 - the same small MLP as bench/serving.py

PREDICT = "/tensorflow.serving.PredictionService/Predict"
WARMUP = 20  # untimed calls per client before the timed ones
ADMIN_PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def predict_bytes() -> bytes:
    from imm.serving.protos import predict_pb2
    from imm.serving.tensors import make_tensor_proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mlp"
    request.inputs["x"].CopyFrom(make_tensor_proto(np.ones((1, 64), dtype=np.float32)))
    return request.SerializeToString()


def channel(target: dict):  # type: ignore[no-untyped-def]
    import grpc

    if target.get("tls") is None:
        return grpc.insecure_channel(target["address"])
    ca, cert, key = target["tls"]
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    host = target["host"]
    return grpc.secure_channel(
        target["address"],
        credentials,
        options=[("grpc.ssl_target_name_override", host), ("grpc.default_authority", host)],
    )


def client(job: tuple[dict, bytes, int]) -> tuple[list[float], float, float]:
    """Latencies of ``calls`` calls after a warm-up, and when the timed calls began and
    ended (CLOCK_MONOTONIC is one clock for every process)."""
    target, payload, calls = job
    ch = channel(target)
    call = ch.unary_unary(PREDICT, request_serializer=None, response_deserializer=None)
    for _ in range(WARMUP):
        call(payload, timeout=30)
    latencies = []
    began = time.monotonic()
    for _ in range(calls):
        start = time.monotonic()
        call(payload, timeout=30)
        latencies.append(time.monotonic() - start)
    ended = time.monotonic()
    ch.close()
    return latencies, began, ended


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def pgrep(*args: str) -> list[int]:
    found = subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def run(
    target: dict, payload: bytes, calls: int, concurrency: int, watched: dict[str, list[int]]
) -> dict[str, float]:
    """Throughput over the timed calls only: process start-up, imports, connecting and
    the warm-up stay out of it. Also the CPU time per call of each ``watched`` group of
    processes (over the whole run, warm-up included)."""
    per_client = max(1, calls // concurrency)
    before = {name: cpu_seconds(pids) for name, pids in watched.items()}
    with mp.get_context("spawn").Pool(concurrency) as pool:
        results = pool.map(client, [(target, payload, per_client)] * concurrency)
    used = {name: cpu_seconds(pids) - before[name] for name, pids in watched.items()}
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    latencies = np.array([x for r in results for x in r[0]]) * 1000
    answered = len(latencies) + WARMUP * concurrency
    return {
        "throughput": len(latencies) / wall,
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
        **{f"{name} us": 1e6 * seconds / answered for name, seconds in used.items()},
    }


class Platform:
    def __init__(self, work: Path) -> None:
        self.data = work / "data"
        self.api = f"127.0.0.1:{free_port()}"
        self.ingress_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("IMM_")},
            "IMM_DATA_DIR": str(self.data),
            "IMM_API_LISTEN": self.api,
            "IMM_INGRESS_LISTEN": f"127.0.0.1:{self.ingress_port}",
            "IMM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
        self.log = (work / "imm-up.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imm", "up"], env=self.env, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self.api}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit("imm up did not start; see imm-up.log")

    def token(self, user: str, password: str) -> str:
        answer = httpx.post(
            f"http://{self.api}/oidc/token",
            data={"grant_type": "password", "client_id": "imm-cli", "username": user,
                  "password": password},
        )  # fmt: skip
        answer.raise_for_status()
        return answer.json()["id_token"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def wait_status(client, tenant: str, name: str, status: str, timeout: float = 120) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        view = client.get_endpoint(tenant, name)
        if view["status"] == status and view["observedGeneration"] == view["generation"]:
            return time.perf_counter() - start
        time.sleep(0.05)
    raise SystemExit(f"endpoint never reached {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=12000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    from imm import certs
    from imm.client import Client

    work = Path(tempfile.mkdtemp(prefix="imm-bench-ingress-"))
    platform = Platform(work)
    try:
        ca_key = certs.new_key()
        ca = certs.create_ca("Bench CA", ca_key)
        key = certs.new_key()
        cert = certs.sign_csr(certs.create_csr("bench-client", key), ca, ca_key)
        subprocess.run(
            [sys.executable, "-m", "imm", "admin", "add-user", "bench", "--group", "bench",
             "--password", "bench-user-password"],
            env=platform.env, check=True, capture_output=True,
        )  # fmt: skip
        admin = Client(f"http://{platform.api}", platform.token("admin", ADMIN_PASSWORD))
        admin.create_tenant("bench", certs.cert_pem(ca).decode(), "bench")
        user = Client(f"http://{platform.api}", platform.token("bench", "bench-user-password"))
        model = build_model(work / "model.onnx").read_bytes()
        upload_id = user.upload_start("bench", "mlp", 1, "model.onnx")
        etag = user.upload_part("bench", upload_id, 1, model)["ETag"]
        user.upload_done("bench", upload_id, [(1, etag)])

        user.create_endpoint("bench", "mlp", "bench-client", "mlp", 1, replicas=1)
        create_to_running = wait_status(user, "bench", "mlp", "running")

        conf = (platform.data / "ingress" / "nginx.conf").read_text()
        replica_port = int(re.search(r"server 127\.0\.0\.1:(\d+)", conf).group(1))
        host = "mlp-bench.imm.localhost"
        tls = ((platform.data / "pki" / "ca.crt").read_bytes(), certs.cert_pem(cert),
               certs.key_pem(key))  # fmt: skip
        direct = {"address": f"127.0.0.1:{replica_port}"}
        ingress = {"address": f"127.0.0.1:{platform.ingress_port}", "host": host, "tls": tls}
        payload = predict_bytes()

        # CPU per call of the replica and of nginx's workers: on two shared cores the ingress
        # costs throughput in proportion to the CPU its workers take from the replica and
        # the clients.
        master = (platform.data / "ingress" / "nginx.pid").read_text().strip()
        watched = {
            "replica": pgrep("-f", f"imm.serving .*--port {replica_port} "),
            "nginx": pgrep("-P", master),  # the workers
        }
        print(f"{'path':<10} {'clients':>7} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'CPU us/call: replica':>21} {'nginx':>6}")  # fmt: skip
        for concurrency in args.concurrency:
            rounds: dict[str, list[dict[str, float]]] = {"direct": [], "ingress": []}
            for _ in range(2):
                for name, target in (("direct", direct), ("ingress", ingress)):
                    rounds[name].append(run(target, payload, args.calls // 2, concurrency, watched))
            summary = {}
            for name, results in rounds.items():
                summary[name] = {k: float(np.mean([r[k] for r in results])) for k in results[0]}
                s = summary[name]
                cpu = f"{s['replica us']:>21.0f} {s['nginx us']:>6.0f}"
                print(f"{name:<10} {concurrency:>7} {s['throughput']:>9.0f} {s['p50']:>8.3f} "
                      f"{s['p99']:>8.3f} {cpu}")  # fmt: skip
            ratio = summary["ingress"]["throughput"] / summary["direct"]["throughput"]
            added = summary["ingress"]["p50"] - summary["direct"]["p50"]
            print(f"  -> {concurrency} client(s): throughput ratio ingress/direct {ratio:.2f} "
                  f"(target >= 0.9), added p50 {added:.3f} ms (target <= 0.5)")  # fmt: skip

        user.scale_endpoint("bench", "mlp", 0)
        wait_status(user, "bench", "mlp", "scaled to 0")
        import grpc

        ch = channel(ingress)
        call = ch.unary_unary(PREDICT)
        while True:  # the API says "scaled to 0" at once; wait until the ingress does too
            try:
                call(payload, timeout=5)
                time.sleep(0.05)
            except grpc.RpcError:
                break
        start = time.perf_counter()
        user.scale_endpoint("bench", "mlp", 1)
        seen: dict[str, float] = {}
        while True:
            try:
                call(payload, timeout=5)
                break
            except grpc.RpcError as exc:
                seen.setdefault(f"{exc.code().name}: {exc.details()}", time.perf_counter() - start)
                time.sleep(0.02)
        scale_up = time.perf_counter() - start
        for answer, at in seen.items():
            print(f"  first {answer!r} at {at:.2f} s")
        ch.close()
        print(f"create -> running: {create_to_running:.2f} s (target < 2 s)")
        print(f"scale 0 -> 1 -> first answer: {scale_up:.2f} s (target < 2 s)")
    finally:
        platform.stop()


if __name__ == "__main__":
    main()
