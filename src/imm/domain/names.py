"""Names of tenants, models and endpoints, and model versions.

They end up in bucket names, file paths, host names and Kubernetes object names, so they
follow the DNS-label rule (RFC 1123) with a minimum length of 3.
"""

from __future__ import annotations

import re

from imm.domain.errors import InvalidInput

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_MIN, NAME_MAX = 3, 63
VERSION_MAX = 2**63 - 1


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid resource name, else raise InvalidInput saying why."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if not NAME_MIN <= len(value) <= NAME_MAX:
        raise InvalidInput(
            f"{what} must be {NAME_MIN} to {NAME_MAX} characters long, got {len(value)}"
        )
    if not NAME_RE.match(value):
        raise InvalidInput(
            f"{what} {value!r} must consist of lower-case letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return value


def check_version(value: object, what: str = "model version") -> int:
    """Versions are positive integers, as TensorFlow Serving's version folders are."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a positive integer")
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= VERSION_MAX:
        raise InvalidInput(f"{what} must be a positive integer, got {value!r}")
    return value


SUBJECT_MAX = 64
# Characters that need escaping in an RFC 2253 distinguished name (as nginx and OpenSSL
# print a client subject) or in an nginx string: refused, so the ingress's exact CN check
# compares plain text with plain text.
SUBJECT_FORBIDDEN = set('/,=+"\\<>;$#')


def check_subject_name(value: object) -> str:
    """A client certificate's subject CN that an endpoint admits."""
    if not isinstance(value, str):
        raise InvalidInput("subjectName must be a string")
    if not 1 <= len(value) <= SUBJECT_MAX:
        raise InvalidInput(f"subjectName must be 1 to {SUBJECT_MAX} characters long")
    if not all(" " <= c <= "~" for c in value):
        raise InvalidInput("subjectName must consist of printable ASCII characters")
    bad = sorted(set(value) & SUBJECT_FORBIDDEN)
    if bad:
        raise InvalidInput(f"subjectName must not contain {' '.join(bad)}")
    if value != value.strip():
        raise InvalidInput("subjectName must not start or end with a space")
    return value


HOST_LABEL_MAX = 63  # DNS: <endpoint>-<tenant> is one label of the endpoint's host name


def host_label(endpoint: str, tenant: str) -> str:
    """``<endpoint>-<tenant>``, the first label of an endpoint's host name; InvalidInput if
    it would not fit one DNS label."""
    label = f"{endpoint}-{tenant}"
    if len(label) > HOST_LABEL_MAX:
        raise InvalidInput(
            f"endpoint name and tenant name together ({label!r}, {len(label)} characters) must "
            f"fit the {HOST_LABEL_MAX}-character host label <endpoint>-<tenant>"
        )
    return label


def endpoint_host(endpoint: str, tenant: str, domain: str) -> str:
    """Where clients reach an endpoint: ``<endpoint>-<tenant>.<domain>``, in every runtime."""
    return f"{endpoint}-{tenant}.{domain}"
