"""What every command needs: the saved config, an authenticated client, error exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from imm.cli.config import CliConfig
from imm.cli.oidc import LoginError, token_provider
from imm.cli.output import errors
from imm.client import ApiError, Client


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def api_client(config: CliConfig | None = None) -> Iterator[Client]:
    """A client as the logged-in user; API errors become one red line and exit code 1."""
    config = config or CliConfig.load()
    try:
        with Client(config.api, token_provider(config)) as client:
            yield client
    except ApiError as exc:
        hint = " (run `imm login`)" if exc.status == 401 else ""
        raise fail(f"{exc}{hint}") from None
    except LoginError as exc:
        raise fail(str(exc)) from None


def tenant_or_default(tenant: str | None, config: CliConfig | None = None) -> str:
    config = config or CliConfig.load()
    chosen = tenant or config.tenant
    if not chosen:
        raise fail("no tenant given: pass --tenant, or log in as a member of exactly one tenant")
    return chosen
