"""Just enough of gin's syntax to read the bindings of a Mesh TensorFlow `operative_config.gin`.

An operative config is a flat list of `[scope/]Configurable.param = value` bindings and `MACRO = value`
macros; values are Python literals, `%MACRO` references and `@configurable` references, and may continue
over several lines inside brackets or after a backslash. Lookups follow gin's precedence (the scoped
binding, then the unscoped one, then the base class's) and resolve macros.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scaling.convert.params import ConversionError

_REFERENCE = re.compile(r"([%@])([\w./]+(?:\(\))?)")
_BINDING = re.compile(r"^([\w./]+)\s*=\s*(.+)$", re.DOTALL)


class Reference(str):
    """An `@configurable` value, kept as its name."""


class Macro(str):
    """A `%MACRO` value, resolved on lookup."""


def _parse_value(text: str, where: str) -> Any:
    refs: dict[str, str] = {}

    def stash(m: re.Match) -> str:
        key = f"__ref{len(refs)}__"
        refs[key] = m.group(0)
        return repr(key)

    literal = _REFERENCE.sub(stash, text)
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        raise ConversionError(f"{where}: cannot parse value {text!r}") from None

    def restore(v: Any) -> Any:
        if isinstance(v, str) and v in refs:
            ref = refs[v]
            return Macro(ref[1:]) if ref[0] == "%" else Reference(ref[1:])
        if isinstance(v, (list, tuple)):
            return type(v)(restore(x) for x in v)
        if isinstance(v, dict):
            return {restore(k): restore(x) for k, x in v.items()}
        return v

    return restore(value)


def _statements(text: str) -> list[str]:
    """Logical lines: comment lines and imports dropped, continuations and open brackets joined."""
    out, pending, depth = [], "", 0
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("#") or (not line and not pending):
            continue
        continued = line.endswith("\\")
        pending += " " + (line[:-1] if continued else line).strip()
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
        if not continued and depth <= 0:
            out.append(pending.strip())
            pending, depth = "", 0
    if pending.strip():
        out.append(pending.strip())
    return [s for s in out if s and not s.startswith(("import ", "from ", "include "))]


class GinConfig:
    """The bindings of one operative config, with gin's lookup precedence."""

    def __init__(self, text: str, where: str):
        self.where = where
        self.bindings: dict[str, Any] = {}
        for statement in _statements(text):
            m = _BINDING.match(statement)
            if not m:
                raise ConversionError(f"{where}: cannot parse {statement[:80]!r}")
            self.bindings[m.group(1)] = _parse_value(m.group(2), f"{where}: {m.group(1)}")

    @classmethod
    def read(cls, path: str | Path) -> GinConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: the shape of a Mesh TF checkpoint is read from its operative_config.gin"
            )
        return cls(path.read_text(), str(path))

    def resolve(self, value: Any) -> Any:
        seen = set()
        while isinstance(value, Macro):
            if value in seen or value not in self.bindings:
                raise ConversionError(f"{self.where}: macro %{value} is {'circular' if value in seen else 'undefined'}")
            seen.add(value)
            value = self.bindings[value]
        return value

    def get(self, scope: str, names: Sequence[str], param: str, default: Any = KeyError) -> Any:
        """`scope/Name.param`, else `Name.param`, for each configurable name in turn (subclass first)."""
        for name in names:
            for key in (f"{scope}/{name}.{param}", f"{name}.{param}"):
                if key in self.bindings:
                    return self.resolve(self.bindings[key])
        if default is KeyError:
            raise ConversionError(f"{self.where}: no binding for {scope}/{names[0]}.{param} (nor unscoped)")
        return default

    def macro(self, name: str, default: Any = KeyError) -> Any:
        if name in self.bindings:
            return self.resolve(self.bindings[name])
        if default is KeyError:
            raise ConversionError(f"{self.where}: no macro {name}")
        return default
