"""``--fqdn-template``: ExternalDNS's Go-template host names, the field-reference subset.

A template is text with actions in ``{{ }}``; after rendering, the result is split on commas, each name stripped
of white space and of one trailing dot, empty names dropped — so ``"{{.Name}}.a.org,{{.Name}}.b.org"`` gives two
names, exactly as ExternalDNS does. Several ``--fqdn-template`` flags add up.

Supported inside ``{{ }}`` (anything else is refused by :func:`parse_templates` with a :class:`ValueError`):

* fields: ``.Name``, ``.Namespace``, ``.Kind`` (``Service``/``Ingress``), ``.Labels.<key>``, ``.Annotations.<key>``
  (``<key>`` a Go identifier: letters, digits, ``_``);
* ``index .Labels "<any key>"`` / ``index .Annotations "<any key>"`` for keys with ``-``, ``.`` or ``/``;
* ``toLower``: ``{{toLower .Name}}`` or ``{{.Name | toLower}}``;
* string literals (``"x"`` or ```x```) and Go's ``{{-``/``-}}`` white-space trimming.

One difference from Go on purpose: a label or annotation the object does not have is an error for that object
(Go would print ``<no value>`` into the name); the caller reports it as a skipped record and the other templates
(the comma-separated parts whose text does not use the missing key) still produce their names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateRenderError(ValueError):
    """A template could not be rendered for one object (e.g. a label it references is missing)."""


@dataclass(frozen=True)
class _Field:
    path: tuple[str, ...]  # ("Name",), ("Labels", "app"), ("Labels",) when used with index

    def describe(self) -> str:
        return "." + ".".join(self.path)


@dataclass(frozen=True)
class _Literal:
    value: str


@dataclass(frozen=True)
class _Index:
    mapping: str  # "Labels" or "Annotations"
    key: str


@dataclass(frozen=True)
class _Action:
    operand: _Field | _Literal | _Index
    lower: bool


_Node = str | _Action


@dataclass(frozen=True)
class _Template:
    source: str
    nodes: tuple[_Node, ...]

    def render(self, data: Mapping[str, Any]) -> str:
        out: list[str] = []
        for node in self.nodes:
            if isinstance(node, str):
                out.append(node)
                continue
            value = _evaluate(node.operand, data)
            out.append(value.lower() if node.lower else value)
        return "".join(out)


def _lookup(data: Mapping[str, Any], mapping: str, key: str) -> str:
    values = data.get(mapping) or {}
    if key not in values:
        singular = "label" if mapping == "Labels" else "annotation"
        raise TemplateRenderError(f"the object has no {singular} {key!r}")
    return str(values[key])


def _evaluate(operand: _Field | _Literal | _Index, data: Mapping[str, Any]) -> str:
    if isinstance(operand, _Literal):
        return operand.value
    if isinstance(operand, _Index):
        return _lookup(data, operand.mapping, operand.key)
    if len(operand.path) == 1:
        return str(data.get(operand.path[0]) or "")
    return _lookup(data, operand.path[0], operand.path[1])


@dataclass(frozen=True)
class FqdnTemplates:
    """Parsed templates; falsy when there are none. :meth:`render` turns one object into host names."""

    templates: tuple[_Template, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.templates)

    def render(self, obj: Mapping[str, Any], kind: str) -> tuple[list[str], list[tuple[str, str]]]:
        """Host names for ``obj`` (a Kubernetes object dict), and ``(template, reason)`` for templates that failed."""
        meta = obj.get("metadata") or {}
        data = {
            "Name": meta.get("name") or "",
            "Namespace": meta.get("namespace") or "",
            "Kind": obj.get("kind") or kind,
            "Labels": meta.get("labels") or {},
            "Annotations": meta.get("annotations") or {},
        }
        names: list[str] = []
        errors: list[tuple[str, str]] = []
        for template in self.templates:
            try:
                text = template.render(data)
            except TemplateRenderError as exc:
                errors.append((template.source, str(exc)))
                continue
            for name in text.split(","):
                name = name.strip()
                if name.endswith("."):
                    name = name[:-1]
                if name and name not in names:
                    names.append(name)
        return names, errors


def _fail(text: str, what: str) -> ValueError:
    return ValueError(f"invalid --fqdn-template {text!r}: {what}")


def _tokenize_action(text: str, body: str) -> list[str]:
    tokens: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch.isspace():
            i += 1
        elif ch == "|":
            tokens.append("|")
            i += 1
        elif ch == '"':
            j = i + 1
            while j < n and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            if j >= n:
                raise _fail(text, f"unterminated string in {{{{{body}}}}}")
            tokens.append(body[i : j + 1])
            i = j + 1
        elif ch == "`":
            j = body.find("`", i + 1)
            if j < 0:
                raise _fail(text, f"unterminated raw string in {{{{{body}}}}}")
            tokens.append(body[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and not body[j].isspace() and body[j] not in '|"`':
                j += 1
            tokens.append(body[i:j])
            i = j
    return tokens


def _string_literal(text: str, token: str) -> str | None:
    if token.startswith("`"):
        return token[1:-1]
    if token.startswith('"'):
        try:
            value = json.loads(token)
        except json.JSONDecodeError:
            raise _fail(text, f"bad string literal {token}") from None
        return str(value)
    return None


def _field(text: str, token: str, allow_map: bool) -> _Field:
    parts = token[1:].split(".")
    if not token.startswith(".") or not all(_IDENT.fullmatch(p) for p in parts):
        raise _fail(text, f"{token!r} is not a field reference (use .Name, .Namespace, .Kind, .Labels.key, "
                          ".Annotations.key, or index .Labels \"key\" for other keys)")
    head = parts[0]
    if head in ("Name", "Namespace", "Kind"):
        if len(parts) != 1:
            raise _fail(text, f"{token!r}: .{head} has no fields")
        return _Field((head,))
    if head in ("Labels", "Annotations"):
        if len(parts) == 1:
            if allow_map:
                return _Field((head,))
            raise _fail(text, f"{token!r} needs a key (.{head}.key or index .{head} \"key\")")
        if len(parts) != 2:
            raise _fail(text, f"{token!r}: use index .{head} \"key\" for keys with dots")
        return _Field((head, parts[1]))
    raise _fail(text, f"unknown field {token!r} (supported: .Name, .Namespace, .Kind, .Labels, .Annotations)")


def _operand(text: str, tokens: list[str]) -> _Field | _Literal | _Index:
    """One command without toLower: a field, a string literal, or ``index .Map "key"``."""
    if not tokens:
        raise _fail(text, "empty action")
    head = tokens[0]
    if head == "index":
        if len(tokens) != 3:
            raise _fail(text, 'index takes a map and a string key: index .Labels "key"')
        mapping = _field(text, tokens[1], allow_map=True)
        key = _string_literal(text, tokens[2])
        if len(mapping.path) != 1 or mapping.path[0] not in ("Labels", "Annotations") or key is None:
            raise _fail(text, 'index takes .Labels or .Annotations and a string key: index .Labels "key"')
        return _Index(mapping.path[0], key)
    if len(tokens) != 1:
        if not head.startswith((".", '"', "`")):
            raise _fail(text, f"unsupported function or value {head!r} (only field references, index and toLower)")
        raise _fail(text, f"unsupported command {' '.join(tokens)!r} (only field references, index and toLower)")
    literal = _string_literal(text, head)
    if literal is not None:
        return _Literal(literal)
    if head.startswith("."):
        return _field(text, head, allow_map=False)
    raise _fail(text, f"unsupported function or value {head!r} (only field references, index and toLower)")


def _parse_action(text: str, body: str) -> _Action:
    tokens = _tokenize_action(text, body)
    commands: list[list[str]] = [[]]
    for tok in tokens:
        if tok == "|":
            commands.append([])
        else:
            commands[-1].append(tok)
    first, rest = commands[0], commands[1:]
    lower = False
    if first and first[0] == "toLower":
        operand = _operand(text, first[1:])
        lower = True
    else:
        operand = _operand(text, first)
    for cmd in rest:
        if cmd != ["toLower"]:
            raise _fail(text, f"unsupported pipeline stage {' '.join(cmd)!r} (only | toLower)")
        lower = True
    return _Action(operand, lower)


def _parse_one(text: str) -> list[_Template]:
    nodes: list[_Node] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            nodes.append(text[pos:])
            break
        literal = text[pos:start]
        end = text.find("}}", start + 2)
        if end < 0:
            raise _fail(text, "unclosed action (missing '}}')")
        body = text[start + 2 : end]
        if body.startswith("- ") or body == "-":
            literal = literal.rstrip()
            body = body[1:]
        trim_after = body.endswith(" -")
        if trim_after:
            body = body[:-1]
        if body.strip().startswith("/*"):
            raise _fail(text, "comments are not supported")
        nodes.append(literal)
        nodes.append(_parse_action(text, body))
        pos = end + 2
        if trim_after:
            while pos < len(text) and text[pos].isspace():
                pos += 1
    if any(isinstance(n, str) and "}}" in n for n in nodes):
        raise _fail(text, "'}}' without a matching '{{'")
    # Split at commas in the literal text: each part is a template of its own (its failure spares the others).
    groups: list[list[_Node]] = [[]]
    for node in nodes:
        if isinstance(node, str):
            pieces = node.split(",")
            groups[-1].append(pieces[0])
            for piece in pieces[1:]:
                groups.append([piece])
        else:
            groups[-1].append(node)
    templates: list[_Template] = []
    for group in groups:
        if not _source_text(group):
            continue
        templates.append(_Template(source=_source_text(group), nodes=tuple(group)))
    return templates


def _source_text(group: list[_Node]) -> str:
    parts: list[str] = []
    for node in group:
        if isinstance(node, str):
            parts.append(node)
        else:
            operand = node.operand
            if isinstance(operand, _Field):
                inner = operand.describe()
            elif isinstance(operand, _Index):
                inner = f"index .{operand.mapping} {json.dumps(operand.key)}"
            else:
                inner = json.dumps(operand.value)
            parts.append("{{" + (f"toLower {inner}" if node.lower else inner) + "}}")
    return "".join(parts).strip()


def parse_templates(text_or_list: str | Iterable[str] | None) -> FqdnTemplates:
    """Parse one template string or several (repeated flags); :class:`ValueError` names the bad part."""
    if text_or_list is None:
        return FqdnTemplates(())
    texts = [text_or_list] if isinstance(text_or_list, str) else list(text_or_list)
    templates: list[_Template] = []
    for text in texts:
        if text.strip():
            templates.extend(_parse_one(text))
    return FqdnTemplates(tuple(templates))
