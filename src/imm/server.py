"""``imm up``: the whole platform on this machine, in the foreground."""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import uvicorn

from imm.api.app import create_app
from imm.api.registry import expire_uploads
from imm.auth.issuer.users import USERS_FILE, UserFile
from imm.config import Settings
from imm.control.reconciler import Reconciler
from imm.db.engine import Database
from imm.runtime.base import Runtime
from imm.store import ModelStore, open_store

log = logging.getLogger("imm.server")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def prepare(settings: Settings, say: Callable[[str], None] = print) -> Database:
    """First-run set-up, repeated harmlessly on every start: data dir, schema, admin user."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    db = Database(settings.db_url)
    db.migrate()
    if settings.builtin_issuer_enabled:
        ensure_admin_user(settings, say)
    return db


def ensure_admin_user(settings: Settings, say: Callable[[str], None]) -> None:
    users = UserFile(settings.issuer_dir / USERS_FILE)
    wanted = settings.admin_password
    existing = users.get("admin")
    if existing is None:
        password = wanted or secrets.token_urlsafe(12)
        users.add("admin", password, [settings.admin_group])
        if wanted:
            say("Created user 'admin' with the password from IMM_ADMIN_PASSWORD.")
        else:
            say(f"Created user 'admin' with password: {password}  (shown only this once)")
    elif wanted and users.authenticate("admin", wanted) is None:
        users.add("admin", wanted, list(existing.groups), existing.email, replace=True)
        say("Updated the password of user 'admin' from IMM_ADMIN_PASSWORD.")


class PlatformServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after it stops, which would kill the process before
    the platform stops its replicas and nginx; here a signal only ends serving, and
    ``serve`` then shuts everything down and exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def open_runtime(settings: Settings) -> Runtime:
    """The runtime the settings choose; imported late so each mode loads only its own."""
    if settings.runtime == "kubernetes":
        from imm.runtime.kubernetes import KubernetesRuntime

        return KubernetesRuntime.from_settings(settings)
    from imm.runtime.local.runtime import LocalRuntime

    return LocalRuntime(settings)


def serve(settings: Settings) -> None:
    db = prepare(settings)
    store = open_store(settings)
    app = create_app(settings, db, store)
    runtime = open_runtime(settings)
    runtime.start()
    reconciler = Reconciler(db, runtime, settings)
    app.state.reconciler = reconciler
    reconciler.start()
    sweeper = UploadSweeper(db, store, settings)
    sweeper.start()
    host, port = settings.api_host_port
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", access_log=False, lifespan="on"
    )
    server = PlatformServer(config)
    # SIGINT/SIGTERM end serving (PlatformServer); the rest is stopped below.
    print(f"IMM API on {settings.api_url}  (issuer {settings.issuer_url})")
    try:
        server.run()
    finally:
        sweeper.stop()
        reconciler.stop()
        runtime.stop()
        db.dispose()


class UploadSweeper:
    """Expires abandoned uploads now and then, in a thread of its own."""

    def __init__(self, db: Database, store: ModelStore, settings: Settings) -> None:
        self.db, self.store = db, store
        self.max_age = timedelta(hours=settings.upload_expiry_hours)
        self.interval = settings.upload_gc_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upload-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.db.open() as session:
                    expire_uploads(session, self.store, self.max_age)
            except Exception:
                log.exception("upload expiry sweep failed; will try again")
