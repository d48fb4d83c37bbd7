"""The client-subject check of an endpoint's Ingress, without configuration snippets.

ingress-nginx turns ``nginx.ingress.kubernetes.io/auth-tls-match-cn`` into
``if ($ssl_client_s_dn !~ "<value>") { return 403; }`` (the value must start with ``CN=``
and compile as an RE2 regex; the controller quotes it since v1.11.5/v1.12.1). Snippet
annotations are off by default in current controllers, while this annotation is of risk
level "High", which the default ``annotations-risk-level`` admits.

``$ssl_client_s_dn`` is OpenSSL's RFC 2253 rendering of the subject (``CN=a,O=b``, with
``,+"\\<>;`` escaped by a backslash and bytes above 0x7f as ``\\XX``), and nginx matches the
regex anywhere in it. So the pattern below admits exactly the certificates whose CN equals
the subject name: the RDN must start the DN or follow an unescaped separator, and end at one.
"""

from __future__ import annotations

_RFC2253_SPECIAL = ',+"\\<>;'


def rfc2253_value(value: str) -> str:
    """``value`` as OpenSSL prints it inside an RFC 2253 DN (what nginx compares against)."""
    raw = value.encode()
    out: list[str] = []
    for index, byte in enumerate(raw):
        char = chr(byte)
        if byte > 0x7F or byte < 0x20 or byte == 0x7F:
            out.append(f"\\{byte:02X}")
        elif (
            char in _RFC2253_SPECIAL
            or (index == 0 and char in "# ")
            or (index == len(raw) - 1 and char == " ")
        ):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def regex_literal(text: str) -> str:
    """Escape every non-alphanumeric ASCII character: the result means the same to RE2 (which
    the controller validates with) and PCRE (which nginx matches with)."""
    return "".join(c if c.isascii() and c.isalnum() else "\\" + c for c in text)


def match_cn(subject_name: str) -> str:
    """The ``auth-tls-match-cn`` value admitting only ``CN=<subject_name>``.

    The annotation must begin with ``CN=``, which cannot anchor anything, so the first
    alternative ``CN=$^`` never matches and the second carries the anchored check.
    """
    cn = regex_literal(rfc2253_value(subject_name))
    return f"CN=$^|(^|[^\\\\][,+])CN={cn}(,|\\+|$)"
