"""Storage URLs: where they come from, and how they are shown (never with a password).

URLs are taken apart by ``urllib.parse`` (the netloc, user-info and query), not by a pattern, so
a password is found wherever it sits: percent-encoded as it should be (``%40``, ``%2F``), or with
the common mistake of an unencoded ``@``, ``/``, ``?``, ``#`` or space in it. Where a URL is
malformed the mask errs on the side of hiding more. :func:`mask_url` masks every URL in a text
(a driver's error message quotes the URL it could not use); :func:`has_url_password` is the same
finding as a yes/no, for refusing a password on a command line or in a config.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote_plus, urlsplit

__all__ = [
    "DEFAULT_JOURNAL_NAME",
    "ENV_HOME",
    "ENV_STORAGE",
    "default_storage_url",
    "has_url_password",
    "mask_url",
    "resolve_storage_url",
    "storage_kind",
    "url_origin",
]

ENV_STORAGE = "HPO_STORAGE_URL"
ENV_HOME = "HPO_HOME"  # the project data folder; `.hpo` in the working directory by default
DEFAULT_JOURNAL_NAME = "studies.journal"

MASK = "***"
# Only finds where a URL starts in free text; taking the URL apart is urllib's job.
_URL_START = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://")
_SPACE = re.compile(r"\s")
# Query arguments that carry a credential (libpq's password/sslpassword, MySQL's passwd, SAS
# signatures, webhook and API tokens); a key ending in one of _SECRET_SUFFIXES counts too.
_SECRET_KEYS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "key", "apikey", "sig", "signature"}
)
_SECRET_SUFFIXES = ("password", "secret", "token", "_key", "apikey")


def mask_url(text: str) -> str:
    """``text`` with every password in every URL in it (user-info part or a credential query
    argument such as ``password=``) replaced by ``***``; the rest is left as written."""
    spans = _secret_spans(text)
    for start, end in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text


def has_url_password(text: str) -> bool:
    """Whether any URL in ``text`` carries a password (what :func:`mask_url` would hide)."""
    return bool(_secret_spans(text))


def url_origin(url: str) -> str:
    """``scheme://host[:port]``, and ``/...`` where the URL goes on: how a webhook is shown and
    recorded, since its tokens live in the path and query (``https://hooks.slack.com/...``)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a bracket or port that does not parse (`u:pa/ss@h`): show none of it
        host = port = None
    if not host:
        return "(a URL that does not parse)"
    shown = f"[{host}]" if ":" in host else host
    origin = f"{parts.scheme}://{shown}" + (f":{port}" if port else "")
    rest = url[len(parts.scheme) + 3 + len(parts.netloc) :]
    return origin + ("/..." if rest not in ("", "/") else "")


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where the credentials of the URLs in ``text`` are, as ``(start, end)`` offsets."""
    starts = [m.start() for m in _URL_START.finditer(text)]
    spans: list[tuple[int, int]] = []
    for i, begin in enumerate(starts):
        limit = starts[i + 1] if i + 1 < len(starts) else len(text)
        spans += _url_secret_spans(text, begin, limit)
    return spans


def _word_end(text: str, start: int, limit: int) -> int:
    match = _SPACE.search(text, start, limit)
    return match.start() if match else limit


def _url_secret_spans(text: str, begin: int, limit: int) -> list[tuple[int, int]]:
    """The credential spans of the URL starting at ``begin`` (the next URL starts at ``limit``)."""
    authority = text.index("://", begin) + 3
    end = _word_end(text, begin, limit)
    url = text[begin:end]
    try:
        netloc = urlsplit(url).netloc
    except ValueError:  # an unbalanced IPv6 bracket: the netloc ends where urllib would end it
        netloc = re.split(r"[/?#]", text[authority:end], maxsplit=1)[0]
    spans: list[tuple[int, int]] = []
    colon = netloc.find(":")
    at = netloc.rfind("@")
    host_start = authority + len(netloc)
    if at >= 0:
        if 0 <= colon < at - 1:
            spans.append((authority + colon + 1, authority + at))
        host_start = authority + at + 1
    elif colon >= 0 and not netloc.startswith("["):
        # `user:pa/ss@host`: urllib ends the netloc at the unencoded '/', '?' or '#' and sees
        # port `pa`; the password really runs to the last '@'. An unencoded space splits the URL
        # into words: with no '@' in this word, the next '@' on the line ends the password. A
        # password like `123 abc` reads as a port: only where the text is one URL (an option's
        # value, a connection) is the next word's '@' taken as its end.
        port = netloc[colon + 1 :]
        whole = begin == 0 and "\n" not in text
        at_abs = -1 if port.isdigit() else text.rfind("@", authority + colon, end)
        if at_abs < 0 and port and (whole or not port.isdigit()):
            line_end = text.find("\n", end, limit)
            at_abs = text.find("@", end, limit if line_end < 0 else line_end)
        if at_abs >= 0:
            spans.append((authority + colon + 1, at_abs))
            host_start = at_abs + 1
            end = max(end, _word_end(text, at_abs, limit))
    spans += _query_secret_spans(text, host_start, end)
    return spans


def _query_secret_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Values of credential arguments in the query (or fragment) between ``start`` and ``end``;
    a value runs to the next '&', so an unencoded '#' or '?' in a password stays hidden."""
    marks = [i for i in (text.find("?", start, end), text.find("#", start, end)) if i >= 0]
    if not marks:
        return []
    spans = []
    position = min(marks) + 1
    while position < end:
        stop = text.find("&", position, end)
        stop = end if stop < 0 else stop
        key, equals, _ = text[position:stop].partition("=")
        name = unquote_plus(key).strip().lower().replace("-", "_")
        if equals and stop > position + len(key) + 1 and _is_secret_key(name):
            spans.append((position + len(key) + 1, stop))
        position = stop + 1
    return spans


def _is_secret_key(name: str) -> bool:
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def default_storage_url() -> str:
    """The embedded default: a journal file in the project data folder, no server needed."""
    home = Path(os.environ.get(ENV_HOME) or ".hpo").expanduser().resolve()
    return f"journal://{(home / DEFAULT_JOURNAL_NAME).as_posix()}"


def resolve_storage_url(explicit: str | None = None) -> str:
    """``--storage`` if given, else ``$HPO_STORAGE_URL``, else the embedded journal default."""
    return explicit or os.environ.get(ENV_STORAGE) or default_storage_url()


def storage_kind(url: str) -> str:
    """``postgresql``, ``sqlite``, ``journal`` or the URL's scheme for anything else."""
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("postgres"):
        return "postgresql"
    if scheme.startswith("sqlite"):
        return "sqlite"
    return scheme
