"""A strict YAML loader for sweep specs: YAML 1.2's core scalars, no duplicate keys, bounded.

PyYAML follows YAML 1.1, which reads ``1:30`` as 90 (sexagesimal), ``yes``/``no``/``on``/``off``
as booleans, ``010`` as 8 (octal) and ``2026-01-01`` as a date, and lets a repeated key
silently replace the first. Here only ``true``/``false`` are booleans, integers are decimal
(or ``0o``/``0x``), floats are YAML 1.2's (``1e-4`` is a number), everything else is a string;
a repeated key, a recursive anchor, more than ``MAX_ALIASES`` aliases, a document expanding to
more than ``MAX_NODES`` nodes (a billion-laughs file) or larger than ``MAX_BYTES`` is an error
with its line. Sweep files (``spec``) and task files (``registry.tasks``) are read here
(:func:`read`), and their pydantic schemas' errors become one ``file:line`` line here
(:func:`explain`). Pure: PyYAML only (pydantic's errors are read as plain data).
"""

from __future__ import annotations

import difflib
import re
import types
import typing

import yaml
from yaml.events import AliasEvent

from .errors import UserError

MAX_BYTES = 64_000      # the shipped specs are under 2 kB
MAX_ALIASES = 1_000
MAX_NODES = 200_000

_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
             "tag:yaml.org,2002:timestamp"}


class Refused(yaml.MarkedYAMLError):
    """Valid YAML that breaks a rule of this loader (a repeated key, a recursive anchor, too big)."""


class StrictLoader(yaml.SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if event.anchor in self._open_anchors:
                raise Refused(None, None, f"recursive anchor &{event.anchor} (an alias inside itself)",
                              event.start_mark)
            if self._aliases > MAX_ALIASES:
                raise Refused(None, None, f"more than {MAX_ALIASES} aliases", event.start_mark)
            return super().compose_node(parent, index)
        anchor = self.peek_event().anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.discard(anchor)

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_size(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    raise Refused(None, None, f"a key must be a scalar, not {type(key).__name__}",
                                  key_node.start_mark) from None
                if first is not None:
                    raise Refused(None, None, f"duplicate key {key!r} (first on line {first})",
                                  key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
        if digits[:2] == "0o":
            return sign * int(digits[2:], 8)
        if digits[:2] == "0x":
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)


def _check_size(root) -> None:
    """Count the nodes the document expands to (aliases included), memoised per node: linear."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [n for kv in node.value for n in kv]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        n = 1
        for c in children:
            n += size(c)
            if n > MAX_NODES:
                raise Refused(None, None, f"the document expands to more than {MAX_NODES:,} values "
                                          f"(aliases nested too deep)", node.start_mark)
        sizes[id(node)] = n
        return n

    size(root)


StrictLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                   list("-+0123456789"))
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)


def load(text: str):
    """The document, strictly (raises yaml.YAMLError with a mark)."""
    return load_with_node(text)[0]


def load_with_node(text: str):
    """(the document, its node graph): the graph gives the lines of keys without a second parse."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def compose(text: str):
    return yaml.compose(text, Loader=StrictLoader)


def read(text: str, path: str, what: str):
    """(the document, its node graph) of a file's text (``what`` it is, for messages); a broken
    file is one UserError naming ``path:line``: ``not valid YAML (...)``, or the rule it breaks
    (``duplicate key 'x' (first on line 3)``)."""
    if len(text) > MAX_BYTES:
        raise UserError(f"{path}: {len(text):,} characters: {what} is at most {MAX_BYTES:,}")
    try:
        return load_with_node(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        problem = one_line(getattr(e, "problem", None) or e)
        raise UserError(f"{where}: {problem}" if isinstance(e, Refused) else
                        f"{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise UserError(f"{path}: not valid YAML (anchors nested too deeply)") from None


# ----------------------------------------------------------------------------- errors with lines

def one_line(msg: str) -> str:
    return " ".join(str(msg).split())


class Where:
    """Maps a path of keys/indices in the YAML document to ``file:line``."""

    def __init__(self, path: str, text: str, node=None):
        self.path, self.lines = path, _lines(text, node)

    def __call__(self, *keys) -> str:
        for n in range(len(keys), 0, -1):
            if keys[:n] in self.lines:
                return f"{self.path}:{self.lines[keys[:n]]}"
        return self.path

    def fail(self, keys: tuple, msg: str):
        raise UserError(f"{self(*keys)}: {one_line(msg)}")


def _lines(text: str, node=None) -> dict[tuple, int]:
    """Line number (1-based) of every mapping key and list item, by its path of keys/indices."""
    out: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value,)
                out[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        walk(node if node is not None else compose(text), ())
    except (yaml.YAMLError, RecursionError):
        pass
    return out


def explain(err, where: Where, schema: type, what: str) -> UserError:
    """A pydantic ``ValidationError`` of ``schema`` (the model of a whole file: ``what`` it is)
    as one line: ``file:line: unknown key 'x' (did you mean 'y'?)``, ``file: missing key 'x'``,
    ``file:line: what is wrong``. Reads the error's plain data: no pydantic import here."""
    errors = err.errors()
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])   # a typo first, as it explains more
    loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    inside = lambda keys: f" in {'/'.join(map(str, keys))}" if keys else ""   # noqa: E731
    if e["type"] == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        allowed = sorted(getattr(_model_at(schema, parent), "model_fields", ()))
        near = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else (f"; allowed: {', '.join(allowed)}" if allowed else "")
        return UserError(f"{where(*loc)}: unknown key {str(key)!r}{inside(parent)}{hint}")
    if e["type"] in ("missing", "missing_argument"):
        return UserError(f"{where(*loc[:-1]) if len(loc) > 1 else where.path}: missing key '{loc[-1]}'"
                         f"{inside(loc[:-1])}")
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] in ("model_type", "model_attributes_type", "dict_type", "dataclass_type"):
        msg = f"{'/'.join(map(str, loc)) or what} must be a mapping"
    elif loc and not msg.startswith(str(loc[-1])):
        msg = f"{'/'.join(map(str, loc))}: {msg}"
    return UserError(f"{where(*loc)}: {one_line(msg)}")


def _model_at(schema, loc: tuple):
    """The pydantic model whose keys sit at ``loc`` (keys and list indices) in a document of ``schema``."""
    t = schema
    for key in loc:
        t = _unwrap(t)
        if hasattr(t, "model_fields"):
            t = t.model_fields[key].annotation if key in t.model_fields else None
        elif typing.get_origin(t) in (list, dict):
            t = typing.get_args(t)[-1]          # list[X] or dict[str, X]: X
        else:
            return None
    t = _unwrap(t)
    return t if hasattr(t, "model_fields") else None


def _unwrap(t):
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X (the first arm that is a model or a container)."""
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
        elif origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(t) if a is not type(None)]
            t = next((a for a in arms if hasattr(_unwrap(a), "model_fields") or typing.get_origin(_unwrap(a))), arms[0])
        else:
            return t
