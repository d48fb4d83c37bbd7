"""Several server processes on one port (``--processes N``), for throughput past one core.

Python serves a gRPC call on one core at a time (the GIL); TF Serving uses threads for
this, we use processes. The supervisor fetches the model once, then forks workers before
any gRPC object exists (gRPC is not fork-safe after that); each worker loads the model
and binds the port with SO_REUSEPORT only when ready, so the kernel spreads connections
over ready workers only. SIGTERM is passed on; each worker drains its own calls.
Metrics use prometheus_client's multi-process mode, served by the supervisor.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
from collections.abc import Callable

from imm.serving.errors import ModelError
from imm.serving.fetch import Fetched, fetch
from imm.serving.stopping import StopFlag, stop_on_signals

log = logging.getLogger("imm.serving")

Serve = Callable[..., int]


def _worker(serve: Serve, args: argparse.Namespace, fetched: Fetched) -> None:
    os._exit(serve(args, stop_on_signals(), fetched=fetched, worker=True))


def supervise(args: argparse.Namespace, stop: StopFlag, serve: Serve) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="imm-serving-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before prometheus_client loads
    try:
        try:
            fetched = fetch(
                args.model_base_path, args.model_name, args.model_version,
                args.cache_dir.expanduser(),
            )  # fmt: skip
        except ModelError as exc:
            log.error("cannot load model", extra={"error": str(exc)})
            return 1
        if args.metrics_port is not None:
            from prometheus_client import CollectorRegistry, multiprocess, start_http_server

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            start_http_server(args.metrics_port, args.metrics_host or args.host, registry)
        ctx = mp.get_context("fork")
        procs = [
            ctx.Process(target=_worker, args=(serve, args, fetched), name=f"worker-{i}")
            for i in range(args.processes)
        ]
        for proc in procs:
            proc.start()
        log.info("workers started", extra={"pids": [p.pid for p in procs], "port": args.port})
        return _wait(procs, stop)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _wait(procs: list[mp.Process], stop: StopFlag) -> int:
    """Until SIGTERM, or until a worker dies: then stop the rest and report failure."""
    failed = False
    while not stop.wait(0.2):
        dead = [p for p in procs if not p.is_alive()]
        if dead:
            failed = True
            log.error("worker exited", extra={"codes": [p.exitcode for p in dead]})
            break
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.join()
    codes = [p.exitcode for p in procs]
    log.info("stopped", extra={"worker_codes": codes})
    return 1 if failed or any(codes) else 0
