"""``imm up``: the whole platform on this machine, in the foreground."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import uvicorn

from imm.api.app import create_app
from imm.auth.issuer.users import USERS_FILE, UserFile
from imm.config import Settings
from imm.db.engine import Database

log = logging.getLogger("imm.server")


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


def serve(settings: Settings) -> None:
    db = prepare(settings)
    store = None
    app = create_app(settings, db, store)
    host, port = settings.api_host_port
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    # uvicorn installs the SIGINT/SIGTERM handlers that stop it cleanly.
    print(f"IMM API on {settings.api_url}  (issuer {settings.issuer_url})")
    try:
        server.run()
    finally:
        db.dispose()
