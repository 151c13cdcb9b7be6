"""Config files and their overrides: how every config-driven command reads ``--config=FILE[:ARG]`` and
``--config.FIELD=VALUE``, and how study files set fields of the recipes they name.

- :func:`load`: a ``configs/`` file's ``get_config([ARG])``.
- :func:`override` / :func:`apply_overrides`: ``FIELD=TEXT`` from a command line, the text parsed as the field's
  declared type; :func:`set_value` / :func:`apply_mapping`: Python values (a study file's nested dicts). Both go
  through one field-setting function, so a mistake reads the same wherever it was made: an unknown field names the
  closest valid ones, a wrong type names the field, the value and the type expected, and a group of fields
  (``optimizer``) says so.
- A budget is written one way: ``budget=UNIT:AMOUNT`` (:func:`scaling.budget.parse`; ``hours:2`` is seconds), which
  sets the structured ``budget.unit`` and ``budget.amount`` (those fields can still be set one by one).

Every mistake is a :class:`scaling.errors.UserError` whose message starts with the field as the user wrote it
(``--config.optimizer.lrate``, ``config.runs.crammed.optimizer.lrate``): commands print it as one line, exit 2.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from scaling import budget as budget_lib
from scaling.errors import UserError

COMMAND_LINE = "--config."  # how a field is named on a command line
BUDGET = "budget"  # the field written UNIT:AMOUNT
_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    tuple: "a tuple such as (1, 2)",
    list: "a list such as [1, 2]",
}
_NULL = ("none", "null")


# ----------------------------------------------------------------------------------------------- files


def load(spec: str, where: str = "--config") -> ml_collections.ConfigDict:
    """``configs/NAME.py`` or ``configs/NAME.py:ARG`` → the file's ``get_config([ARG])``.

    A missing file, a file without ``get_config``, an argument the file does not take or refuses (its
    ``ValueError``) is a :class:`UserError` naming ``where=spec``.
    """
    path, _, arg = str(spec).partition(":")
    file = Path(path)
    if not path:
        raise UserError(f"{where}: give a config file, e.g. {where}=configs/demo.py")
    if not file.is_file():
        siblings = [str(p) for p in file.parent.glob("*.py")] if file.parent.is_dir() else []
        close = difflib.get_close_matches(str(file), siblings, n=1)
        hint = f"did you mean {where}={close[0]}?" if close else f"give a config file such as {where}=configs/demo.py"
        raise UserError(f"{where}={spec}: no file {file}; {hint}")
    module_spec = importlib.util.spec_from_file_location(f"config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise UserError(f"{where}={spec}: {file} has no get_config(); give a file from configs/")
    if arg and not inspect.signature(get_config).parameters:
        raise UserError(f"{where}={spec}: {file} takes no argument; drop ':{arg}'")
    try:
        config = get_config(arg) if arg else get_config()
    except ValueError as e:  # the file refusing its argument, e.g. configs/li_roberta.py:deep
        raise UserError(f"{where}={spec}: {e}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"{where}={spec}: get_config() returned a {type(config).__name__}, not a ConfigDict")
    return config


def load_with_overrides(spec: str, overrides: Sequence[tuple[str, str]]) -> ml_collections.ConfigDict:
    """What a config-driven command runs: :func:`load`, then every ``--config.FIELD=VALUE`` in order."""
    config = load(spec)
    apply_overrides(config, overrides)
    return config


# ---------------------------------------------------------------------------------------------- fields


def field_names(config: ml_collections.ConfigDict, prefix: str = "", *, groups: bool = True) -> list[str]:
    """Every dotted field of ``config`` (``optimizer.name``, …) and, with ``groups``, every group (``optimizer``)."""
    names = []
    for key in config:
        is_group = isinstance(config[key], ml_collections.ConfigDict)
        if groups or not is_group:
            names.append(prefix + key)
        if is_group:
            names += field_names(config[key], f"{prefix}{key}.", groups=groups)
    return names


def get(config: ml_collections.ConfigDict, dotted: str) -> Any:
    """The value of dotted ``FIELD`` (a :class:`UserError` suggesting the closest fields when there is none)."""
    target, key = _locate(config, dotted, COMMAND_LINE)
    return target[key]


def _is_abbreviation(short: str, long: str) -> bool:
    """Whether ``short``'s letters appear in order in ``long``, from its first one (``lrate``: ``learning_rate``)."""
    letters = iter(long)
    return bool(short) and short[0] == long[0] and all(c in letters for c in short)


def _most_similar(word: str, candidates: Sequence[str], n: int) -> list[str]:
    """difflib's close matches (ratio >= 0.6), keeping only those nearly as close as the best."""
    scored = sorted(((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in candidates), reverse=True)
    best = scored[0][0] if scored else 0.0
    return [c for ratio, c in scored[:n] if ratio >= max(0.6, best - 0.1)]


def closest(dotted: str, names: Sequence[str], n: int = 3) -> list[str]:
    """The names most like ``dotted``: abbreviations of a field of the same group first, then difflib's."""
    group, _, last = dotted.rpartition(".")
    abbreviated = [
        name for name in names if name.rpartition(".")[0] == group and _is_abbreviation(last, name.rpartition(".")[2])
    ]
    similar = _most_similar(dotted, names, n)
    if not similar:  # a typo in the last part only: compare it with the last part of every field
        leaves = {name.rpartition(".")[2]: name for name in names}
        similar = [leaves[m] for m in _most_similar(last, list(leaves), n)]
    return list(dict.fromkeys(abbreviated + similar))[:n]


def _unknown(config: ml_collections.ConfigDict, dotted: str, where: str, text: str | None) -> UserError:
    """The error for a field ``config`` lacks: the closest names, and the budget's one spelling where it applies."""
    close = closest(dotted, field_names(config, groups=False))
    hints = []
    head, _, rest = dotted.partition(".")
    if head == BUDGET and isinstance(config.get(BUDGET), ml_collections.ConfigDict):
        unit = difflib.get_close_matches(rest.lower(), budget_lib.SPELLINGS, n=1, cutoff=0.5)
        amount = text if text is not None and unit else "AMOUNT"
        hints.append(
            f"write the budget as {where}{BUDGET}={unit[0] if unit else 'UNIT'}:{amount} (UNIT one of "
            f"{', '.join(budget_lib.SPELLINGS)})"
        )
    if close:
        hints.append("did you mean " + " or ".join(where + name for name in close) + "?")
    return UserError(f"{where}{dotted}: no such field" + ("; " + "; ".join(hints) if hints else ""))


def _locate(
    config: ml_collections.ConfigDict, dotted: str, where: str, text: str | None = None
) -> tuple[ml_collections.ConfigDict, str]:
    """(the group holding dotted ``FIELD``, its last name); the field must exist."""
    parts = dotted.split(".")
    target = config
    for i, part in enumerate(parts[:-1]):
        if not part or part not in target:
            raise _unknown(config, dotted, where, text)
        if not isinstance(target[part], ml_collections.ConfigDict):
            group = ".".join(parts[: i + 1])
            raise UserError(
                f"{where}{dotted}: {where}{group} is a value, not a group of fields; set {where}{group}=VALUE"
            )
        target = target[part]
    if not parts[-1] or parts[-1] not in target:
        raise _unknown(config, dotted, where, text)
    return target, parts[-1]


def _nullable(group: ml_collections.ConfigDict, key: str) -> bool:
    # A placeholder field (``config_dict.placeholder(int)``) is stored as a FieldReference and may be None.
    return group[key] is None or isinstance(getattr(group, "_fields", {}).get(key), ml_collections.FieldReference)


def _parse(text: str, kind: type, nullable: bool) -> Any:
    """Command-line text as a value of ``kind`` (ValueError with what was expected)."""
    if nullable and text.strip().lower() in _NULL:
        return None
    if kind is bool:
        if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError
        return text.strip().lower() in ("true", "1", "yes")
    if kind is int:
        number = float(text)
        if not number.is_integer():
            raise ValueError
        return int(number)
    if kind is float:
        return float(text)
    if kind is str:
        return text
    if kind in (tuple, list):
        value = ast.literal_eval(text if text.strip().startswith(("(", "[")) else f"({text},)")
        if not isinstance(value, (tuple, list)):
            raise ValueError
        return kind(value)
    if kind is type(None):  # a field left None without a declared type: a literal if it reads as one
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    raise ValueError


def _set(config: ml_collections.ConfigDict, dotted: str, value: Any, where: str, from_text: bool) -> None:
    """The one field-setting function: ``value`` is command-line text (``from_text``) or a Python value."""
    shown = value if from_text else repr(value)
    if (
        dotted == BUDGET
        and isinstance(value, str)
        and BUDGET in config
        and (isinstance(config[BUDGET], ml_collections.ConfigDict) or config.get_type(BUDGET) is str)
    ):
        try:
            unit, amount = budget_lib.parse(value)
        except UserError as e:
            raise UserError(f"{where}{BUDGET}={value}: {e}") from None
        if isinstance(config[BUDGET], ml_collections.ConfigDict):
            config[BUDGET].unit, config[BUDGET].amount = unit, amount
        else:  # a study file's budget is the text itself, parsed again when its runs are built
            config[BUDGET] = value
        return
    target, key = _locate(config, dotted, where, value if from_text else None)
    current = target[key]
    if isinstance(current, ml_collections.ConfigDict) and not (isinstance(value, Mapping) and not from_text):
        fields = ", ".join(list(current.keys())[:4]) or "none yet"
        raise UserError(
            f"{where}{dotted}={shown}: {where}{dotted} is a group of fields ({fields}); set one of "
            f"them, e.g. {where}{dotted}.{next(iter(current.keys()), 'FIELD')}=VALUE"
        )
    if isinstance(value, Mapping) and not from_text:
        if not isinstance(current, ml_collections.ConfigDict):
            raise UserError(f"{where}{dotted}: {where}{dotted} is a value, not a group of fields")
        for sub, sub_value in value.items():
            _set(config, f"{dotted}.{sub}", sub_value, where, from_text=False)
        return
    kind = target.get_type(key)
    expected = _TYPE_NAMES.get(kind, kind.__name__)
    wrong = f"{where}{dotted}={shown}: expected {expected} (now {current!r})"
    if from_text:
        try:
            value = _parse(value, kind, _nullable(target, key))
        except (ValueError, SyntaxError):
            raise UserError(wrong) from None
    elif kind is int and isinstance(value, float) and not value.is_integer():
        raise UserError(wrong)
    try:
        target[key] = value
    except TypeError:
        raise UserError(wrong) from None


def override(config: ml_collections.ConfigDict, dotted: str, text: str, where: str = COMMAND_LINE) -> None:
    """Sets dotted ``FIELD`` from command-line ``text``, parsed as the field's declared type."""
    _set(config, dotted, text, where, from_text=True)


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]], where: str = COMMAND_LINE
) -> None:
    """Every ``(FIELD, TEXT)`` of ``--config.FIELD=TEXT`` arguments, in order."""
    for dotted, text in overrides:
        override(config, dotted, text, where)


def set_value(config: ml_collections.ConfigDict, dotted: str, value: Any, where: str = "config.") -> None:
    """Sets dotted ``FIELD`` to a Python ``value`` (a mapping sets the fields of a group)."""
    _set(config, dotted, value, where, from_text=False)


def apply_mapping(config: ml_collections.ConfigDict, values: Mapping[str, Any], where: str = "config.") -> None:
    """Sets each (nested) entry of ``values``; ``where`` names them in errors (``config.runs.crammed.``)."""
    for dotted, value in _flatten(values):
        set_value(config, dotted, value, where)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
