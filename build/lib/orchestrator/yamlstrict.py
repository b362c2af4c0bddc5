"""A strict YAML loader for sweep specs: YAML 1.2's core scalars, no duplicate keys, bounded.

PyYAML follows YAML 1.1, which reads ``1:30`` as 90 (sexagesimal), ``yes``/``no``/``on``/``off``
as booleans, ``010`` as 8 (octal) and ``2026-01-01`` as a date, and lets a repeated key
silently replace the first. Here only ``true``/``false`` are booleans, integers are decimal
(or ``0o``/``0x``), floats are YAML 1.2's (``1e-4`` is a number), everything else is a string;
a repeated key, a recursive anchor, more than ``MAX_ALIASES`` aliases, a document expanding to
more than ``MAX_NODES`` nodes (a billion-laughs file) or larger than ``MAX_BYTES`` is an error
with its line. Pure: PyYAML only.
"""

from __future__ import annotations

import re

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent

from .errors import UserError

MAX_BYTES = 64_000      # the shipped specs are under 2 kB
MAX_ALIASES = 1_000
MAX_NODES = 200_000

_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
             "tag:yaml.org,2002:timestamp"}


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
                raise ComposerError(None, None, f"recursive anchor &{event.anchor} (an alias inside itself)",
                                    event.start_mark)
            if self._aliases > MAX_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_ALIASES} aliases", event.start_mark)
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
                    raise ConstructorError(None, None, f"a key must be a scalar, not {type(key).__name__}",
                                           key_node.start_mark) from None
                if first is not None:
                    raise ConstructorError(None, None, f"duplicate key {key!r} (first on line {first})",
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
                raise ComposerError(None, None, f"the document expands to more than {MAX_NODES:,} values "
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
