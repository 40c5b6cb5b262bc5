"""Reading the YAML and JSON files users give: bounded, strict, and never a traceback or a hang.

Every file the project reads from a user (sweep specs, ARC task and label files, trial files for
``hpo enqueue``) goes through here, so each limit holds everywhere:

- only a regular file is read, and at most ``max_bytes + 1`` bytes of it: a 10 GB file ends at
  once, and a directory, ``/dev/zero``, a pipe (fed by ``yes``, or with no writer at all, which
  would wait for ever) or a socket is refused by its type, before it is read;
- the text must be UTF-8, and the message names the offset of the first bad byte;
- YAML anchors and aliases are refused as the parser meets them, so an alias bomb ("billion
  laughs") is never expanded: no file here needs them;
- nesting deeper than :data:`MAX_DEPTH` is refused while the document is composed, long before
  Python's recursion limit (a ``[[[[...`` of 100,000 levels is one line, not a RecursionError);
- a key written twice in one mapping is refused (YAML and JSON keep the last one silently);
- a YAML date (``2026-01-01`` unquoted) is refused with its field path: no field takes a date,
  and a date is not JSON, which is how specs, parameters and labels are stored.

Problems are :class:`InputError`, an :class:`~hpo_core.errors.HpoError` that says where (the field
path, or the line and column) and what to do; callers turn it into their own error type when they
have a better frame for it (a spec's :class:`~hpo_core.errors.SpecError`).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from hpo_core.errors import HpoError

__all__ = [
    "MAX_DEPTH",
    "InputError",
    "describe",
    "parse_json",
    "parse_yaml",
    "read_json",
    "read_text",
    "read_yaml",
]

MAX_DEPTH = 32  # nested lists/mappings; a spec needs 4, an ARC task 5

Reason = Literal["missing", "type", "size", "encoding", "unreadable", "syntax", "content"]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class InputError(HpoError):
    """A user's file (or text) that cannot be read: ``source: where: problem`` on one line."""

    def __init__(
        self, problem: str, *, source: str | None = None, where: str = "", reason: Reason
    ) -> None:
        self.problem = problem  # what is wrong and the fix
        self.source = source  # the file, if the text came from one
        self.where = where  # field path, or "line L, column C"; "" for the whole file
        self.reason = reason  # lets a caller word a missing file its own way
        super().__init__(": ".join(part for part in (source, where, problem) if part))


# --------------------------------------------------------------------------- reading


def read_text(path: str | Path, *, max_bytes: int, what: str) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``.

    ``what`` names the expected file in the fixes, e.g. ``"a sweep spec (YAML)"``.
    """
    source = str(path)
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind != "file":
            raise InputError(
                f"is a {kind}, not a file; give the path of {what}", source=source, reason="type"
            )
        # O_NONBLOCK: should a pipe replace the file between the stat and the open, the open
        # returns at once instead of waiting for a writer (and the fstat below refuses it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(
            "file not found; check the path", source=source, reason="missing"
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot be read ({exc.strerror}); check the path and its permissions",
            source=source,
            reason="unreadable",
        ) from None
    with os.fdopen(fd, "rb") as stream:
        try:
            os.set_blocking(fd, True)
            if _kind(os.fstat(fd).st_mode) != "file":  # swapped since the stat
                raise InputError(
                    f"is not a regular file; give the path of {what}", source=source, reason="type"
                )
            raw = stream.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(
                f"cannot be read ({exc.strerror})", source=source, reason="unreadable"
            ) from None
    if len(raw) > max_bytes:
        raise InputError(
            f"is larger than {_size(max_bytes)}, the limit for {what}; check that this is the "
            "right file",
            source=source,
            reason="size",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8",
            source=source,
            reason="encoding",
        ) from None


def read_yaml(path: str | Path, *, max_bytes: int, what: str) -> Any:
    """A YAML (or JSON) file, read and parsed with every limit of this module."""
    return parse_yaml(read_text(path, max_bytes=max_bytes, what=what), source=str(path))


def read_json(path: str | Path, *, max_bytes: int, what: str) -> Any:
    """A JSON file, read and parsed with every limit of this module."""
    return parse_json(read_text(path, max_bytes=max_bytes, what=what), source=str(path))


_KINDS = (
    (stat.S_ISREG, "file"),
    (stat.S_ISFIFO, "pipe"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def describe(value: Any) -> str:
    """What a parsed value is, in words, without quoting all of it (a file may be megabytes)."""
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} keys"
    if value is None:
        return "nothing"
    kind = type(value).__name__
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} ({str(value)[:40]!r})"


# --------------------------------------------------------------------------- YAML

try:  # libyaml's parser is about three times faster; the composer stays ours, in Python
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class _Refused(yaml.YAMLError):
    """A limit of this module, raised while composing: where it was met, and why."""

    def __init__(self, mark: Any, problem: str) -> None:
        super().__init__(problem)
        self.mark = mark
        self.problem = problem


class _SafeLoader(Composer, _Parser, SafeConstructor, Resolver):
    """PyYAML's safe loading, with this module's limits checked on the parser's events, before
    a node is built: no anchor or alias, no nesting past :data:`MAX_DEPTH`, no duplicate key."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()
        if isinstance(event, AliasEvent) or event.anchor is not None:
            raise _Refused(
                event.start_mark,
                "YAML anchors and aliases (&name, *name) are not allowed; write the value out",
            )
        if not isinstance(event, SequenceStartEvent | MappingStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels; flatten it")
        node = super().compose_node(parent, index)
        self._depth -= 1
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # `? [a, b]`: PyYAML's own check comes after ours
                raise ConstructorError(
                    None, None, "a list or mapping as a key; keys are names", key_node.start_mark
                )
            if key in seen:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key] + 1}); keep one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, *, source: str | None = None) -> Any:
    """YAML text as Python data (``None`` for an empty document), within this module's limits."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_dates(node, source)
        return loader.construct_document(node)
    except _Refused as exc:
        raise InputError(
            exc.problem, source=source, where=_at(exc.mark), reason="content"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        fix = "" if "duplicate key" in problem else "; fix the indentation or quoting there"
        raise InputError(
            f"YAML syntax error: {problem}{fix}",
            source=source,
            where=_at(mark) if mark is not None else "YAML",
            reason="syntax",
        ) from None
    except ValueError as exc:  # a constructor's own check, e.g. a !!float that is not a number
        raise InputError(
            f"has a value that cannot be read ({exc}); quote it if it is text",
            source=source,
            where="YAML",
            reason="content",
        ) from None
    finally:
        loader.dispose()


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _refuse_dates(root: Node, source: str | None) -> None:
    """Refuse an unquoted date anywhere (a value or a key), naming its field path."""
    stack: list[tuple[Node, str, bool]] = [(root, "", False)]  # node, its path, is it a key
    while stack:
        node, path, is_key = stack.pop()
        if isinstance(node, ScalarNode) and node.tag == _TIMESTAMP_TAG:
            what, use = (f"key {node.value}", "a name") if is_key else (node.value, "text")
            raise InputError(
                f"{what} is a date to YAML; quote it ('{node.value}') to use it as {use}",
                source=source,
                where=path or _at(node.start_mark),
                reason="content",
            )
        if isinstance(node, SequenceNode):
            stack += [(item, _join(path, str(i)), False) for i, item in enumerate(node.value)]
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, ScalarNode) else "?"
                stack += [(key, path, True), (value, _join(path, name), False)]


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


# --------------------------------------------------------------------------- JSON


def parse_json(text: str, *, source: str | None = None) -> Any:
    """JSON text as Python data, within this module's limits (depth, duplicate keys)."""
    try:
        data = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; fix it there",
            source=source,
            reason="syntax",
        ) from None
    except _DuplicateKey as exc:
        raise InputError(
            f"duplicate key {exc.key!r}; keep one of them", source=source, reason="content"
        ) from None
    except RecursionError:  # the C scanner stops at Python's recursion limit, cleanly
        data = _TOO_DEEP
    if data is _TOO_DEEP or _depth(data) > MAX_DEPTH:
        raise InputError(
            f"nested deeper than {MAX_DEPTH} levels; flatten it", source=source, reason="content"
        )
    return data


_TOO_DEEP = object()


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _depth(data: Any) -> int:
    """Nesting depth of lists and dicts, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:  # deeper than the limit is all a caller needs to know
                children = value.values() if isinstance(value, dict) else value
                stack += [(child, depth + 1) for child in children]
    return deepest
