"""YAML that remembers where every value came from.

PyYAML's composer gives nodes with positions; we build plain dicts and lists from them
(``YMap``/``YSeq``) that keep the line and column of every key and value, so any later
error — a pydantic validation error, an unknown asset reference, a template failure —
can point at ``file:line:col``. We also refuse what a config file never needs and an
attacker would love: duplicate keys, documents over a size limit, alias expansions that
blow up (the "billion laughs"), nesting deep enough to overflow a stack, and a second
document in one file.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import Location, SpecError
from pipeline.reads import note_read

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 100
"""Collections nested deeper than this are refused. A spec needs about six levels; libyaml's
composer recurses in C once per level, so a few hundred thousand ``[`` crash the process
(a segfault, not an exception) unless the depth is checked on the flat event stream first."""
MERGE_TAG = "tag:yaml.org,2002:merge"

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[attr-defined,assignment,unused-ignore]
except AttributeError:  # pragma: no cover - libyaml is in every wheel we install
    _Loader = yaml.SafeLoader


class YMap(dict[str, Any]):
    """A mapping that knows the location of itself, its keys and its values."""

    location: Location
    key_locations: dict[str, Location]
    value_locations: dict[str, Location]


class YSeq(list[Any]):
    """A sequence that knows the location of itself and of each item."""

    location: Location
    item_locations: list[Location]


BLOCK_STYLES = ("|", ">")


def _loc(display: str, node: yaml.Node) -> Location:
    return Location(display, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns a composed node tree into YMap/YSeq/scalars, counting nodes as it goes."""

    def __init__(self, display: str, lines: Sequence[str] = ()):
        self.display = display
        self.lines = lines
        self.count = 0
        self.seen: set[int] = set()  # ids of nodes built once: building again is an alias
        self.written: list[yaml.Node] = []  # collections being built for the first time
        self.scalars = yaml.constructor.SafeConstructor()

    def value_loc(self, node: yaml.Node) -> Location:
        """Where a value starts; for a block scalar (``|``/``>``), its first content line.

        A block scalar's text begins on the line after its indicator, so an error on line
        ``k`` of a multi-line inline template is at ``value line + k - 1`` only when the
        value's location is that first content line.
        """
        if not (isinstance(node, yaml.ScalarNode) and node.style in BLOCK_STYLES):
            return _loc(self.display, node)
        first = node.start_mark.line + 1  # 0-based index of the first content line
        if first > node.end_mark.line or first >= len(self.lines):
            return _loc(self.display, node)  # an empty block scalar: point at the indicator
        content = next((ln for ln in self.lines[first : node.end_mark.line + 1] if ln.strip()), "")
        indent = len(content) - len(content.lstrip(" "))
        return Location(self.display, first + 1, indent + 1)

    def build(self, node: yaml.Node, depth: int = 1) -> Any:
        """Build ``node``; ``depth`` is its nesting level counted in collections, aliases
        included (an alias re-enters its anchor, and ``&a [*a]`` refers to itself without
        end), the same count :func:`_check_depth` makes of the text."""
        self.count += 1
        repeat = id(node) in self.seen
        if self.count > MAX_NODES:
            # An alias re-builds its anchor's node; the place to show is the innermost
            # value written in the text (built once) whose aliases multiply, not some
            # value deep inside the anchors.
            where = self.written[-1] if repeat and self.written else node
            raise SpecError(
                f"the document expands to more than {MAX_NODES:,} values",
                _loc(self.display, where),
                "YAML aliases that refer to each other multiply; write the values out or "
                "split the file",
            )
        if depth > MAX_DEPTH and isinstance(node, yaml.CollectionNode):
            raise _too_deep(_loc(self.display, node))
        self.seen.add(id(node))
        if not isinstance(node, yaml.CollectionNode):
            return self._scalar(node)
        if not repeat:
            self.written.append(node)
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, depth)
            seq = YSeq(self.build(item, depth + 1) for item in node.value)
            seq.location = _loc(self.display, node)
            seq.item_locations = [self.value_loc(item) for item in node.value]
            return seq
        finally:
            if not repeat:
                self.written.pop()

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise SpecError(
                f"cannot read this value: {exc.problem}", _loc(self.display, node)
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # PyYAML's scalar constructors trust the resolver: a date such as 2001-13-45,
            # or an explicit tag on the wrong text (``!!int abc``, ``!!bool maybe``),
            # reaches int()/datetime() and raises a plain Python error.
            tag = node.tag.rsplit(":", 1)[-1]
            # datetime's own words ("month must be in 1..12") help; int()'s do not.
            why = f": {exc}" if tag == "timestamp" and isinstance(exc, ValueError) else ""
            raise SpecError(
                f"cannot read {node.value!r} as {_TAG_NAMES.get(tag, tag)}{why}",
                _loc(self.display, node),
                f'if it is text, quote it: "{node.value}"',
            ) from None

    def _mapping(self, node: yaml.MappingNode, depth: int) -> YMap:
        out = YMap()
        out.location = _loc(self.display, node)
        out.key_locations = {}
        out.value_locations = {}
        merged: set[str] = set()  # keys from `<<`: an explicit key overrides them (YAML 1.1)
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged |= self._merge(out, value_node, depth)
                continue
            key = self.build(key_node, depth + 1)
            if not isinstance(key, str):
                raise SpecError(
                    f"keys must be text, not {type(key).__name__} {key!r}",
                    _loc(self.display, key_node),
                    'quote it: "' + str(key) + '"',
                )
            if key in out.key_locations and key not in merged:
                first = out.key_locations[key]
                raise SpecError(
                    f"duplicate key '{key}' (first given at line {first.line})",
                    _loc(self.display, key_node),
                    "keep one of them",
                )
            merged.discard(key)
            out[key] = self.build(value_node, depth + 1)
            out.key_locations[key] = _loc(self.display, key_node)
            out.value_locations[key] = self.value_loc(value_node)
        return out

    def _merge(self, out: YMap, value_node: yaml.Node, depth: int) -> set[str]:
        """Add the keys of the merged mappings that ``out`` lacks; returns them."""
        sources: Sequence[yaml.Node] = (
            value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        )
        added: set[str] = set()
        for source in sources:
            merged = self.build(source, depth)
            if not isinstance(merged, YMap):
                raise SpecError("'<<' merges only mappings", _loc(self.display, source))
            for key, value in merged.items():
                if key not in out.key_locations:
                    out[key] = value
                    out.key_locations[key] = merged.key_locations[key]
                    out.value_locations[key] = merged.value_locations[key]
                    added.add(key)
        return added


_TAG_NAMES = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "timestamp": "a date",
    "null": "null",
    "binary": "base64 data",
}


def _too_deep(where: Location) -> SpecError:
    return SpecError(
        f"the document nests more than {MAX_DEPTH} levels deep",
        where,
        "a spec needs only a few levels of mappings and lists; an alias inside the value "
        "it names (&a [*a]) also nests without end",
    )


def load_yaml(path: Path, display: str) -> Any:
    """Parse one YAML file into YMap/YSeq/scalars; ``display`` is the name used in errors."""
    try:
        info = path.stat()
    except OSError as exc:
        raise SpecError(f"cannot read {display}: {exc.strerror}", Location(display)) from None
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or a device would block the read forever or never end.
        raise SpecError(f"{display} is not a regular file", Location(display))
    if info.st_size > MAX_DOCUMENT_BYTES:
        raise SpecError(
            f"the file is {info.st_size:,} bytes; a spec may have at most {MAX_DOCUMENT_BYTES:,}",
            Location(display),
            "split it into several spec files",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read {display}: {exc.strerror}", Location(display)) from None
    note_read(path, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(data, exc, display) from None
    return parse_yaml(text, display)


def _not_utf8(data: bytes, exc: UnicodeDecodeError, display: str) -> SpecError:
    """The first byte that is not UTF-8, at its line and (character) column."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1
    return SpecError(
        f"the file is not UTF-8 text: byte 0x{data[exc.start]:02X} cannot be decoded",
        Location(display, line, column),
        "save the file with the UTF-8 encoding",
    )


def parse_yaml(text: str, display: str) -> Any:
    """Parse YAML text; syntax errors become SpecErrors at the offending position."""
    try:
        _check_depth(text, display)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, display) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", Location(display)) from None
    if node is None:
        return None
    return _Builder(display, text.splitlines()).build(node)


def _check_depth(text: str, display: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing (see MAX_DEPTH).

    The event stream is flat, so this pass cannot overflow; it costs about a quarter of
    the composing that follows. A syntax error surfaces here rather than in ``compose``,
    as the same exception, and :func:`parse_yaml` reports it the same way. Newer libyaml
    builds stop at their own depth limit while scanning ahead, at another column; the
    pure-Python parser (no such limit, lazy) then finds where our limit is crossed.
    """
    try:
        _walk_depth(yaml.parse(text, Loader=_Loader), display)
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" not in str(exc.problem):
            raise
        _walk_depth(yaml.parse(text, Loader=yaml.SafeLoader), display)
        raise


def _walk_depth(events: Iterator[yaml.Event], display: str) -> None:
    depth = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                where = (
                    Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
                )
                raise _too_deep(where)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, display: str) -> SpecError:
    """A YAML syntax error at the most useful place, with what usually fixes it.

    The parser's problem mark is where it gave up; when that is the end of the file (an
    unclosed quote or bracket), the context mark — where the unclosed thing began — is
    the place to look.
    """
    problem = exc.problem or exc.context or "cannot parse"
    mark = exc.problem_mark or exc.context_mark
    if "another document" in problem and mark is not None:
        # `---` twice: a stream of documents. One file is one collection, so say that
        # rather than "expected a single document" with an indentation hint.
        return SpecError(
            "a spec file holds one YAML document; a second one starts here",
            Location(display, mark.line + 1, mark.column + 1),
            "remove this '---' line (and the document after it, or move that document to "
            "a spec file of its own)",
        )
    message = f"invalid YAML: {problem}"
    if "end of stream" in problem and exc.context and exc.context_mark is not None:
        mark = exc.context_mark
        thing = exc.context.removeprefix("while scanning ").removeprefix("while parsing ")
        message = f"invalid YAML: the file ends inside {thing} that starts here"
    where = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        cm = exc.context_mark
        message += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
    lines = text.splitlines()
    char = ""
    if mark is not None and mark.line < len(lines) and mark.column < len(lines[mark.line]):
        char = lines[mark.line][mark.column]
    return SpecError(message, where, _syntax_hint(problem, exc.context or "", char))


def _syntax_hint(problem: str, context: str, char: str) -> str:
    if char == "\t":
        return "YAML indents with spaces, not tabs"
    if "quoted scalar" in context:
        return "close the quote; for long text use a block: prompt: |, then indented lines"
    if "mapping values are not allowed" in problem:
        return 'quote a value that contains ": ", e.g. prompt: "Title: subtitle"'
    if "cannot start any token" in problem:
        return f"quote a value that starts with {char!r}" if char else "quote the value"
    if "flow" in context:
        return "close the bracket: [a, b] or {key: value}"
    return (
        "check the indentation: the keys of one mapping, and the items of one list, "
        "start in the same column"
    )


def locate(tree: Any, path: Sequence[str | int], *, key: bool = False) -> Location | None:
    """The location of the value at ``path`` (or of its key), as deep as the tree knows it."""
    found: Location | None = getattr(tree, "location", None)
    node = tree
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, YMap) and isinstance(step, str) and step in node.key_locations:
            found = node.key_locations[step] if (key and last) else node.value_locations[step]
            node = node[step]
        elif isinstance(node, YSeq) and isinstance(step, int) and 0 <= step < len(node):
            found = node.item_locations[step]
            node = node[step]
        else:
            break
    return found
