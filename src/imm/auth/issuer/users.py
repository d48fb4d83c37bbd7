"""Users of the built-in issuer: a JSON file in the data directory with argon2 hashes.

The file is the source of truth and is re-read when it changes, so ``imm admin add-user``
takes effect on a running platform without a restart.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from imm.domain.errors import Conflict, InvalidInput, NotFound
from imm.files import write_private

USERNAME_MAX = 64
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the user is unknown, so timing matches a wrong password."""
    return _hasher.hash("imm-timing-equaliser")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    email: str
    password_hash: str


def check_username(name: str) -> str:
    if not name or len(name) > USERNAME_MAX or not all(c.isalnum() or c in "._-@" for c in name):
        raise InvalidInput(
            f"user name must be 1..{USERNAME_MAX} letters, digits or '._-@', got {name!r}"
        )
    return name


def check_group(group: str) -> str:
    if not group or len(group) > 255 or not group.isprintable():
        raise InvalidInput(f"group must be 1..255 printable characters, got {group!r}")
    return group


USERS_FILE = "users.json"


class UserFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, User]] | None = None

    def _read(self) -> dict[str, User]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        raw = json.loads(self.path.read_text())
        users = {
            name: User(name, tuple(u.get("groups", [])), u.get("email", ""), u["hash"])
            for name, u in raw.get("users", {}).items()
        }
        self._cache = (mtime, users)
        return users

    def _write(self, users: dict[str, User]) -> None:
        doc = {
            "users": {
                u.name: {"hash": u.password_hash, "groups": list(u.groups), "email": u.email}
                for u in users.values()
            }
        }
        write_private(self.path, json.dumps(doc, indent=2).encode())
        self._cache = None

    def list(self) -> list[User]:
        with self._lock:
            return sorted(self._read().values(), key=lambda u: u.name)

    def get(self, name: str) -> User | None:
        with self._lock:
            return self._read().get(name)

    def add(
        self,
        name: str,
        password: str,
        groups: list[str],
        email: str | None = None,
        replace: bool = False,
    ) -> User:
        check_username(name)
        for group in groups:
            check_group(group)
        if len(password) < 8:
            raise InvalidInput("password must be at least 8 characters")
        with self._lock:
            users = dict(self._read())
            if name in users and not replace:
                raise Conflict(f"user {name!r} already exists")
            user = User(
                name=name,
                groups=tuple(dict.fromkeys(groups)),
                email=email or (name if "@" in name else f"{name}@imm.local"),
                password_hash=_hasher.hash(password),
            )
            users[name] = user
            self._write(users)
            return user

    def remove(self, name: str) -> None:
        with self._lock:
            users = dict(self._read())
            if name not in users:
                raise NotFound(f"no user {name!r}")
            del users[name]
            self._write(users)

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.get(name)
        try:
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user
