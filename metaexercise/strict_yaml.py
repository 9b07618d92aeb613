"""YAML as the toolkit reads it: safe, small and unambiguous.

`yaml.safe_load` accepts three things a project file should never hold: aliases (a few kilobytes of nested
aliases expand to gigabytes, the "billion laughs"), duplicate keys (the last one silently wins) and files of
any size. `load_yaml` refuses all three and every error names the file, the line and, where there is one, the
key. Mappings keep their order; the line of each key is kept so that schema checks can point at it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from metaexercise.errors import SpecError

#: Largest YAML file read (bytes): project and spec files are a few kilobytes.
MAX_BYTES = 2_000_000


class LocatedDict(dict):
    """A mapping read from YAML that remembers the line of each key (1-based) and its own line."""

    __slots__ = ("lines", "line")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.lines: dict[str, int] = {}
        self.line: int = 0


def line_of(mapping, key: str | None = None) -> int | None:
    """The line of `key` in `mapping` (or of the mapping itself), when it was read by `load_yaml`."""
    if isinstance(mapping, LocatedDict):
        return mapping.lines.get(key, mapping.line) if key is not None else mapping.line
    return None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases and without duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not allowed in this file; write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, f"expected a mapping, found {node.id}",
                                                    node.start_mark)
        out = LocatedDict()
        out.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value",
                                                        key_node.start_mark) from None
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {out.lines[key]})", key_node.start_mark)
            out[key] = self.construct_object(value_node, deep=True)
            out.lines[key] = key_node.start_mark.line + 1
        return out


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_mapping)


def load_yaml(path: str | Path, *, what: str = "YAML file"):
    """The content of the YAML file at `path`, read strictly (see the module docstring).

    Raises `SpecError` naming the file (and line) when the file is missing, too large, not UTF-8, not YAML,
    or uses an alias or a duplicate key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: {what} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SpecError(f"{path}: {what} is {size:,} bytes; the limit is {MAX_BYTES:,}")
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as "
                        "UTF-8") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if not isinstance(exc, yaml.constructor.ConstructorError):
            problem = f"not valid YAML ({problem})"
        raise SpecError(f"{path}{where}: {problem}") from None
