"""Git URLs and the secrets people write into them.

A URL may carry a credential: ``https://<token>@host/x``, ``https://user:password@host/x``,
percent-encoded or not. :func:`split_url` is the one place that takes it apart, for the model (a
URL credential becomes the repository's encrypted ``credentials``, never part of the stored URL)
and for the source stage (which still meets such URLs in repositories built by hand). The user
name of an ``ssh://`` or scp-like URL is a login name, not a secret, and stays. Secrets that
cannot become credentials are refused with an error that does not repeat them: a query string
(``?private_token=...``; git cannot fetch such a URL at all, it appends ``/info/refs`` after the
query) and a password in an ssh URL (ssh authenticates with a key). :func:`redact_url` and
:func:`redact_text` make any URL or git message safe to show. Nothing heavy is imported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["UrlError", "UrlParts", "redact_text", "redact_url", "split_url"]

# userinfo runs to the last "@" before the path: an unescaped "@" in a password is still the password's
_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_URL_QUERY = re.compile(r"^(?P<base>[A-Za-z][A-Za-z0-9+.-]*://[^?#]*)\?(?P<query>[^#]*)")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")
_SSH_SCHEMES = ("ssh://", "git+ssh://", "ssh+git://")


class UrlError(ValueError):
    """A URL holds a secret slipway cannot keep out of it; the message never repeats the secret."""


@dataclass(frozen=True)
class UrlParts:
    """A URL without its secret, and the user name and password that were in it.

    ``username`` is None when the URL had no credential; ``password`` is None when the user
    information had no ``:`` (a token written as the user name). Both are percent-decoded.
    """

    url: str
    username: str | None = None
    password: str | None = None


def _is_ssh(scheme: str) -> bool:
    return scheme.lower().startswith(_SSH_SCHEMES)


def _param_names(query: str) -> str:
    names = [part.partition("=")[0] for part in query.split("&") if part]
    return ", ".join(f"{unquote(n)}=..." for n in names) or "?"


def split_url(url: str) -> UrlParts:
    """``url`` taken apart into what may be stored and shown, and the credential it carried."""
    q = _URL_QUERY.match(url)
    if q and not _is_ssh(url) and q.group("query"):
        raise UrlError(
            f"has a query string ({_param_names(q.group('query'))}): git cannot fetch such a URL, and a token "
            "in it would be stored and shown as written; give the URL without it and the token as credentials"
        )
    m = _URL_USERINFO.match(url)
    if not m:
        return UrlParts(url)
    scheme, rest = m.group("scheme"), url[m.end() :]
    user, sep, password = m.group("userinfo").partition(":")
    if _is_ssh(scheme):
        if sep:
            raise UrlError("an ssh URL cannot carry a password; ssh authenticates with credentials.ssh_key")
        return UrlParts(url)
    if not user and not sep:
        return UrlParts(scheme + rest)  # "https://@host/x": an empty user information
    return UrlParts(scheme + rest, unquote(user), unquote(password) if sep else None)


def redact_url(url: str) -> str:
    """``url`` safe to show: no credential and no query value; an ssh user name stays. Never raises."""
    q = _URL_QUERY.match(url)
    if q and q.group("query"):
        hidden = "&".join(f"{p.partition('=')[0]}=***" for p in q.group("query").split("&") if p)
        url = f"{q.group('base')}?{hidden}{url[q.end() :]}"
    m = _URL_USERINFO.match(url)
    if not m:
        return url
    scheme = m.group("scheme")
    user = m.group("userinfo").partition(":")[0]
    keep = f"{user}@" if _is_ssh(scheme) and user else ""
    return f"{scheme}{keep}{url[m.end() :]}"


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` (a git message) with every URL in it redacted and every one of ``secrets`` replaced."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    for value in secrets:
        # A value this short would blot out ordinary words; credentials are never that short.
        if value and len(value) >= 3:
            text = text.replace(value, "***")
    return text
