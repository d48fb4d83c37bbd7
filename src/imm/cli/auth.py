"""``imm login``, ``imm logout``, ``imm whoami``."""

from __future__ import annotations

import getpass
import sys

import typer

from imm.cli.common import api_client, fail
from imm.cli.config import CliConfig
from imm.cli.oidc import LoginError, browser_login, has_browser, password_login, remember
from imm.cli.output import Output, console, show
from imm.client import ApiError, Client


def login(
    api: str = typer.Option(None, "--api", help="API URL (default: the saved one, or local)"),
    username: str = typer.Option(None, "--username", "-u", help="use the password grant"),
    password: str = typer.Option(None, "--password", "-p", help="password (prompted if absent)"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read it from stdin"),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="print the login URL instead of opening a browser"
    ),
) -> None:
    """Log in through the platform's OpenID Connect issuer and keep the token in ~/.imm."""
    config = CliConfig.load()
    if api:
        config.api = api.rstrip("/")
    try:
        with Client(config.api) as client:
            auth = client.auth_config()
    except ApiError as exc:
        raise fail(str(exc)) from None
    config.issuer, config.client_id = auth["issuer"], auth["clientId"]
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    try:
        if username or password or (no_browser is False and not has_browser()):
            username = username or typer.prompt("User name")
            password = password or getpass.getpass("Password: ")
            tokens = password_login(config.issuer, config.client_id, username, password)
        else:

            def show_url(url: str) -> None:
                print(f"Open this URL to log in:\n{url}", flush=True)

            tokens = browser_login(
                config.issuer, config.client_id, open_browser=not no_browser, show_url=show_url
            )
    except LoginError as exc:
        raise fail(str(exc)) from None
    remember(config, tokens)
    with api_client(config) as client:
        me = client.whoami()
    if len(me["tenants"]) == 1:
        config.tenant = me["tenants"][0]
    path = config.save()
    console.print(f"Logged in as [bold]{me['username']}[/bold]; token saved in {path}")


def logout() -> None:
    """Forget the saved tokens."""
    config = CliConfig.load()
    config.forget_tokens()
    config.save()
    console.print("Logged out.")


def whoami(output: Output = typer.Option(Output.table, "--output", "-o")) -> None:
    """Show who the API thinks you are, your groups and tenants."""
    with api_client() as client:
        show(client.whoami(), output)
