"""Hide the credentials a URL or URI carries before it is shown, logged, stored or passed on.

Two places hold secrets in the URLs mlrig sees: the userinfo password
(``postgresql://user:PASSWORD@host/db``, ``https://user:PASSWORD@host/x.csv``) and query
parameters of presigned or tokened links (``?X-Amz-Signature=…``, ``?sig=…``, ``?token=…``).
Both are replaced by ``***``; everything else is kept character for character, so a redacted
URI still says which store or file it is. Pure string functions: the real URL stays with the
caller, who needs it to connect.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# Query parameter names (compared lower-case) whose value is a credential.
_SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "awsaccesskeyid",
        "googleaccessid",
    }
)
# Any parameter name ending like this is a credential too (sas_token, db_password, …).
_SECRET_SUFFIXES = ("token", "secret", "password", "signature", "credential", "apikey", "api_key")

# A host (name or [IPv6]) and optional port, ending the authority: whatever follows is not
# a host character, '@' or ':' (then it was part of a password), e.g. '/', '?', ')' or the end.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%\-]+)(:\d*)?(?![A-Za-z0-9._~%\-@:\[])")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A URL inside free text (an exception message): scheme, then up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


def redact_url(url: str) -> str:
    """``url`` with its userinfo password and secret query values replaced by ``***``.

    A string without ``scheme://`` (a file path, ``sqlite:`` without slashes) is returned
    unchanged, as is a URL that holds no credential."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    head, rest = url[: match.end()], url[match.end() :]
    rest, fragment = _cut(rest, "#")
    # The authority ends at the first '/' or '?' after the last '@' that precedes them: a
    # sloppy URL may carry '@' unencoded in its password, never in its host.
    at = _userinfo_end(rest)
    if at >= 0:
        userinfo, rest = rest[:at], rest[at:]
        user, sep, password = userinfo.partition(":")
        if sep and password:
            userinfo = f"{user}:{MASK}"
        rest = userinfo + rest
    path, query = _cut(rest, "?")
    if query is not None:
        path += "?" + _redact_query(query)
    return head + path + ("" if fragment is None else "#" + fragment)


def redact_text(text: str) -> str:
    """``text`` (a message, an exception's string) with every URL in it redacted."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def has_credentials(url: str) -> bool:
    """True when ``url`` carries a password or a secret query value (redaction changes it)."""
    return redact_url(url) != url


def is_secret_param(name: str) -> bool:
    """True for a query parameter name whose value is a credential."""
    key = unquote(name).strip().lower()
    return key in _SECRET_PARAMS or key.endswith(_SECRET_SUFFIXES)


def _cut(text: str, mark: str) -> tuple[str, str | None]:
    before, sep, after = text.partition(mark)
    return (before, after) if sep else (text, None)


def _userinfo_end(rest: str) -> int:
    """Index of the '@' closing the userinfo, or -1 when there is none: the first '@' followed
    by a host (and port) that ends the authority. A sloppy URL may leave '@', '/' or '?'
    unencoded in its password; ``host:8080/a@b`` (a path holding '@') then reads like one
    too and is masked: when in doubt, hide."""
    for match in re.finditer("@", rest):
        if _HOST.match(rest, match.end()):
            before = rest[: match.start()]
            first_path = min(
                (i for i in (before.find("/"), before.find("?")) if i >= 0), default=-1
            )
            if first_path < 0 or ":" in before[:first_path]:
                return match.start()
    return -1


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep and value and is_secret_param(name):
            part = f"{name}={MASK}"
        parts.append(part)
    return "&".join(parts)
