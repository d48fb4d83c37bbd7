"""The gRPC front end: TF Serving's two services plus grpc.health.v1, on one port.

Handlers are plain functions of a request; this module adds what every call needs
(status mapping, metrics, never a crash) and nothing else.

The server is grpc.aio on its own event loop thread (uvloop when installed). A call whose
handler is quick runs right on the loop: handing it to a worker thread and back costs
more than a small model's inference (measured in bench/serving.py). Once calls of a method
take longer than ``INLINE_BELOW`` on average (and until they are known to be quicker),
they go to a thread pool instead, where runtimes that release the GIL overlap inference
and the loop keeps answering meanwhile.
The public methods are synchronous, so the process's main thread only waits for signals.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from imm.serving.errors import ServingError
from imm.serving.handlers import Handlers
from imm.serving.protos.services import METHODS, MODEL_SERVICE, PREDICTION_SERVICE

if TYPE_CHECKING:  # imported at run time only after multi-process metrics are set up
    from imm.serving.metrics import Metrics

log = logging.getLogger("imm.serving")

MAX_MESSAGE = 1024  # TF Serving cuts longer status messages (grpc_status_util.cc)
SERVICES = (PREDICTION_SERVICE, MODEL_SERVICE)
INLINE_BELOW = 0.001  # seconds: slower calls (on average) leave the event loop
_SMOOTHING = 0.1  # weight of the newest call in the running average

T = TypeVar("T")


@dataclass(frozen=True)
class ServerOptions:
    host: str = "0.0.0.0"
    port: int = 8500
    workers: int = 8  # threads for calls too slow to run on the event loop
    max_request_bytes: int = 64 * 1024 * 1024
    credentials: grpc.ServerCredentials | None = None  # TLS; None: plaintext
    reuse_port: bool = False  # several worker processes share the port


def _truncate(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "...TRUNCATED"


def _unimplemented(name: str) -> Callable[[Any], Any]:
    def handler(request: Any) -> Any:
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{name} is not supported by this server; use Predict",
        )

    return handler


class _Placement:
    """Where a method's calls run: on the loop while they are quick, else on the pool.

    Unknown calls count as slow, so a heavy model's first calls never block the loop; a
    small model's calls move onto it after a few dozen."""

    def __init__(self) -> None:
        self.average = 1.0

    @property
    def inline(self) -> bool:
        return self.average < INLINE_BELOW

    def record(self, seconds: float) -> None:
        self.average += _SMOOTHING * (seconds - self.average)


def _wrap(
    name: str, fn: Callable[[Any], Any], metrics: Metrics, pool: ThreadPoolExecutor
) -> Callable[[Any, grpc.aio.ServicerContext], Coroutine[Any, Any, Any]]:
    inflight = metrics.inflight
    started = metrics.started
    clock = time.perf_counter
    placement = _Placement()

    def timed(request: Any) -> Any:
        start = clock()
        try:
            return fn(request)
        finally:
            placement.record(clock() - start)

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        start = clock()
        started(name)
        inflight.inc()
        code = "OK"
        inline = placement.inline
        try:
            if inline:  # one clock read at the end serves placement and metrics
                return fn(request)
            return await asyncio.get_running_loop().run_in_executor(pool, timed, request)
        except ServingError as exc:
            code = exc.code.name
            log.info("request failed", extra={"method": name, "code": code, "error": exc.message})
            await context.abort(exc.code, _truncate(exc.message))
        except Exception as exc:  # a bug or a runtime fault: report it, keep serving
            code = "INTERNAL"
            log.exception("request crashed", extra={"method": name})
            await context.abort(grpc.StatusCode.INTERNAL, _truncate(f"{type(exc).__name__}: {exc}"))
        finally:
            inflight.dec()
            elapsed = clock() - start
            if inline:
                placement.record(elapsed)
            metrics.observe(name, code, elapsed)

    return handler


def _handlers(
    handlers: Handlers, metrics: Metrics, pool: ThreadPoolExecutor
) -> list[grpc.GenericRpcHandler]:
    implemented: dict[str, Callable[[Any], Any]] = {
        "Predict": handlers.predict,
        "GetModelMetadata": handlers.get_model_metadata,
        "GetModelStatus": handlers.get_model_status,
    }
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for name, method in METHODS.items():
        fn = implemented.get(name) or _unimplemented(name)
        by_service.setdefault(method.service, {})[name] = grpc.unary_unary_rpc_method_handler(
            _wrap(name, fn, metrics, pool),
            request_deserializer=method.request.FromString,
            response_serializer=method.response.SerializeToString,
        )
    return [grpc.method_handlers_generic_handler(s, m) for s, m in by_service.items()]


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ModelServer:
    """Owns the gRPC server, its loop thread and its health status; ``ready()`` flips
    health to SERVING. Binding happens in the constructor, so a busy port fails early."""

    def __init__(self, handlers: Handlers, metrics: Metrics, options: ServerOptions) -> None:
        self.options = options
        self._pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="grpc")
        self._loop = _new_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="grpc-loop", daemon=True
        )
        self._thread.start()
        try:
            self.port = self._call(self._create(handlers, metrics))
        except BaseException:
            self._close_loop()
            raise

    async def _create(self, handlers: Handlers, metrics: Metrics) -> int:
        options = self.options
        self.health = health.aio.HealthServicer()
        self._server = grpc.aio.server(
            migration_thread_pool=self._pool,
            handlers=_handlers(handlers, metrics, self._pool),
            options=[
                ("grpc.max_receive_message_length", options.max_request_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 1 if options.reuse_port else 0),
            ],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{options.host}:{options.port}"
        if ":" in options.host and not options.host.startswith("["):
            address = f"[{options.host}]:{options.port}"
        if options.credentials is None:
            return self._server.add_insecure_port(address)
        return self._server.add_secure_port(address, options.credentials)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _set_health(self, status: int) -> None:
        for service in ("", *SERVICES):
            await self.health.set(service, status)

    def start(self) -> None:
        self._call(self._server.start())

    def ready(self) -> None:
        self._call(self._set_health(health_pb2.HealthCheckResponse.SERVING))

    def stop(self, grace: float) -> None:
        """Refuse new calls at once, let calls in flight finish for up to ``grace`` seconds."""

        async def stop() -> None:
            await self.health.enter_graceful_shutdown()
            await self._server.stop(grace)

        try:
            self._call(stop())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
