"""A workflow's notifications: where to POST a message, and on which outcomes.

``notify = {url = "https://hooks.example.com/services/...", events = {"failed", "degraded"}}`` in a
workflow's configuration. A webhook URL is often a credential (a token in its path or query, a
user and password), so it is stored encrypted and only ever shown through :func:`mask_url`: the
scheme, the host and the first path segment, everything else masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .configread import Reader
from .errors import ConfigError

EVENTS = ("failed", "refused", "degraded", "succeeded", "rolled_back")
# A refusal (nothing applied: a conflict, a plan that moved) needs a person as a failure does.
DEFAULT_EVENTS = ["failed", "refused", "degraded", "rolled_back"]
MASKED = "***"


def mask_url(url: str) -> str:
    """``https://u:p@hooks.example.com/services/T0/B0/xyz?k=v`` -> ``https://***@hooks.example.com/services/***?***``.

    The host says where a message goes; everything that could be a credential (userinfo, path
    segments after the first, the query, the fragment) is masked.
    """
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        port = f":{p.port}" if p.port else ""
    except ValueError:
        return MASKED
    userinfo = f"{MASKED}@" if (p.username or p.password) else ""
    segments = [s for s in p.path.split("/") if s]
    path = ""
    if segments:
        path = "/" + segments[0] + (f"/{MASKED}" if len(segments) > 1 else "")
    query = f"?{MASKED}" if p.query else ""
    fragment = f"#{MASKED}" if p.fragment else ""
    return f"{p.scheme}://{userinfo}{host}{port}{path}{query}{fragment}"


@dataclass
class Notify:
    url: str = field(repr=False)
    events: list[str] = field(default_factory=lambda: list(DEFAULT_EVENTS))

    @classmethod
    def from_config(cls, data: Any, where: str = "notify") -> Notify | None:
        if data is None:
            return None
        r = Reader(data, where)
        url = r.get("url", str)
        events = r.strings("events")
        r.done()
        # Errors never repeat the URL: it may hold a token.
        if not url:
            raise ConfigError(f"{r.key('url')}: required (the http or https URL messages are POSTed to)")
        try:
            p = urlsplit(url.strip())
            p.port  # noqa: B018 - validates the port
        except ValueError:
            raise ConfigError(f"{r.key('url')}: not a valid URL") from None
        if p.scheme not in ("http", "https") or not p.hostname:
            raise ConfigError(f"{r.key('url')}: must be an http:// or https:// URL with a host")
        if MASKED in url:
            raise ConfigError(f"{r.key('url')}: is a masked URL (as shown); give the whole URL")
        for i, event in enumerate(events):
            if event not in EVENTS:
                raise ConfigError(f"{r.key('events')}[{i + 1}]: {event!r} is not one of {', '.join(EVENTS)}")
        return cls(url.strip(), list(dict.fromkeys(events)) if events else list(DEFAULT_EVENTS))

    def public(self) -> dict[str, Any]:
        return {"url": mask_url(self.url), "events": list(self.events)}

    @property
    def display(self) -> str:
        return mask_url(self.url)


__all__ = ["DEFAULT_EVENTS", "EVENTS", "MASKED", "Notify", "mask_url"]
