"""What every command needs: the saved config, an authenticated client, error exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.markup import escape

from imm.cli.config import CliConfig
from imm.cli.oidc import LoginError, token_provider
from imm.cli.output import errors
from imm.client import ApiError, Client


def fail(message: str, code: int = 1) -> typer.Exit:
    """Prints the message as it is: one from a server may hold brackets rich reads as
    markup, and a script may grep it (no line breaks added)."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
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


def tenant_or_default(tenant: str | None, config: CliConfig) -> str:
    """``tenant``, or the one saved at login; pass the config the command's client uses."""
    chosen = tenant or config.tenant
    if not chosen:
        raise fail("no tenant given: pass --tenant, or log in as a member of exactly one tenant")
    return chosen


def tenant_config(tenant: str | None) -> tuple[CliConfig, str]:
    """Reads ~/.imm once for a tenant's command: the config (for ``api_client``) and the
    tenant, ``tenant`` or the default one."""
    config = CliConfig.load()
    return config, tenant_or_default(tenant, config)


def parse_pairs(items: list[str], option: str, example: str) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options as a dict; an empty key or value is refused."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise fail(f"{option} takes KEY=VALUE (e.g. {example}), got {item!r}")
        pairs[key] = value
    return pairs
