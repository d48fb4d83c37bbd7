"""``imm admin``: users of the built-in issuer, managed on the platform machine itself."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

import typer

from imm.cli.common import fail
from imm.cli.output import Output, console, show
from imm.domain.errors import IMMError

if TYPE_CHECKING:
    from imm.auth.issuer.users import UserFile

app = typer.Typer(help="Manage users of the built-in OIDC issuer (reads IMM_DATA_DIR).")


def _users() -> UserFile:
    """The server's settings and argon2 are loaded only by the commands that need them."""
    from imm.auth.issuer.users import USERS_FILE, UserFile
    from imm.config import load_settings

    settings = load_settings()
    if not settings.builtin_issuer_enabled:
        raise fail("IMM_OIDC_ISSUER names an external issuer: manage users there")
    return UserFile(settings.issuer_dir / USERS_FILE)


@app.command("add-user")
def add_user(
    name: str,
    group: list[str] = typer.Option([], "--group", "-g", help="group of the user; repeatable"),
    password: str = typer.Option(None, "--password", help="password (prompted if absent)"),
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    email: str = typer.Option(None, "--email"),
    replace: bool = typer.Option(False, "--replace", help="overwrite an existing user"),
) -> None:
    """Add a user with groups; the password is stored as an argon2 hash."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif password is None:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise fail("the passwords differ")
    try:
        user = _users().add(name, password, group, email, replace=replace)
    except IMMError as exc:
        raise fail(exc.detail) from None
    console.print(f"User {user.name} saved, groups: {', '.join(user.groups) or '-'}")


@app.command("remove-user")
def remove_user(name: str) -> None:
    """Remove a user; tokens already issued stay valid until they expire."""
    try:
        _users().remove(name)
    except IMMError as exc:
        raise fail(exc.detail) from None
    console.print(f"User {name} removed.")


@app.command("list-users")
def list_users(output: Output = typer.Option(Output.table, "--output", "-o")) -> None:
    """List users and their groups."""
    users = [{"name": u.name, "email": u.email, "groups": list(u.groups)} for u in _users().list()]
    show(users, output, ("name", "email", "groups"))
