"""The settings table's machinery: one row per `RELAY_*` variable, and what is made from it.

A row (`Setting`) gives a variable's name, default, help, bounds, and whether it is a secret;
its type is the annotation of the `Settings` field it fills. The rows are declared as the
fields of `relay.config.Settings` themselves (`setting(...)`), so that adding a setting is one
line; the variables that one field is built from (the OAuth credentials, the mapping file)
are rows attached to that field (`assembled(...)`). From the rows come:

- parsing of the environment's text, with a message naming the variable (`parse_text`);
- `NAME_FILE` for every secret (mounted Kubernetes secrets) (`read_text`);
- bounds and choice checks on typed values, used when `Settings` is built (`row_problems`);
- the settings list of `relay run --help` and the README's table (`help_text`, `markdown`).

Messages never contain a secret's value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, Union

from relay.errors import ConfigError, Problem
from relay.secret import Secret

Kind = Literal["int", "float", "bool", "str", "secret", "path", "choice", "custom"]
Default = int | float | bool | str | None

ROW: Final = "relay.setting"
ROWS: Final = "relay.settings"
TRUE: Final = ("1", "true", "yes", "on")
FALSE: Final = ("0", "false", "no", "off")
WHOLE_NUMBER: Final = re.compile(r"[+-]?[0-9]+")


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One row of the table. `field` is the `Settings` field it fills ('' when assembled)."""

    name: str
    default: Default
    help: str
    kind: Kind | None = None  # resolved from the field's annotation when None
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound
    choices: tuple[str, ...] = ()
    secret: bool = False
    from_file: bool = False  # also `NAME_FILE`; always true for secrets
    parse: Callable[[str], Any] | None = None  # text -> value, raises ConfigError/ValueError
    check: Callable[[Any], str | None] | None = None  # typed value -> problem or None
    type_label: str = ""  # how the README names the type, when the kind does not say it
    field: str = ""

    @property
    def file_variable(self) -> str | None:
        return f"{self.name}_FILE" if self.secret or self.from_file else None

    def default_value(self) -> Any:
        if self.secret:
            return Secret(str(self.default or ""))
        if self.parse is not None and isinstance(self.default, str):
            return self.parse(self.default)
        return self.default


def setting(
    name: str,
    default: Default,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
    from_file: bool = False,
    path: bool = False,
    parse: Callable[[str], Any] | None = None,
    check: Callable[[Any], str | None] | None = None,
    type_label: str = "",
) -> Any:
    """A `Settings` field that is one row of the table (its type is the field's annotation)."""
    row = Setting(
        name,
        default,
        help,
        kind="path" if path else None,
        minimum=minimum,
        maximum=maximum,
        above=above,
        choices=choices,
        secret=secret,
        from_file=from_file,
        parse=parse,
        check=check,
        type_label=type_label,
    )
    return dataclasses.field(default_factory=row.default_value, metadata={ROW: row})


def assembled(default_factory: Callable[[], Any], *rows: Setting) -> Any:
    """A `Settings` field built by the loader from several rows (no field of their own)."""
    return dataclasses.field(default_factory=default_factory, metadata={ROWS: rows})


def rows_of(cls: type) -> tuple[Setting, ...]:
    """The table, in declaration order: each field's row, or the rows it is assembled from."""
    hints = typing.get_type_hints(cls)
    rows: list[Setting] = []
    for f in dataclasses.fields(cls):
        row: Setting | None = f.metadata.get(ROW)
        if row is not None:
            kind = row.kind or _kind_of(row, hints[f.name])
            rows.append(dataclasses.replace(row, field=f.name, kind=kind))
        for extra in f.metadata.get(ROWS, ()):
            kind = extra.kind or ("secret" if extra.secret else "str")
            rows.append(dataclasses.replace(extra, kind=kind))
    names = [r.name for r in rows]
    if len(names) != len(set(names)):
        raise TypeError(f"settings table names a variable twice: {sorted(names)}")
    return tuple(rows)


def _kind_of(row: Setting, hint: Any) -> Kind:
    if typing.get_origin(hint) in (Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if row.secret:
        if hint is not Secret:
            raise TypeError(f"{row.name} is a secret: its field must be a Secret")
        return "secret"
    if row.parse is not None:
        return "custom"
    if row.choices:
        return "choice"
    for python_type, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if hint is python_type:
            return typing.cast(Kind, kind)
    raise TypeError(f"{row.name}: no parser for fields of type {hint!r}; give parse=")


def read_text(row: Setting, env: Mapping[str, str]) -> str | None:
    """The variable's text, or the content of the file `NAME_FILE` names; None when unset."""
    value = env.get(row.name) or None
    file_variable = row.file_variable
    file_name = env.get(file_variable) if file_variable else None
    if file_variable and file_name:
        if value is not None:
            raise ConfigError(
                problems=[Problem(row.name, f"set either {row.name} or {file_variable}, not both")]
            )
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(
                problems=[Problem(file_variable, f"cannot read {file_name}: {reason}")]
            ) from None
    return value


def parse_text(row: Setting, text: str) -> Any:
    """The typed value of a variable's text; ConfigError naming the variable when it is wrong."""
    try:
        return _parse(row, text)
    except (ConfigError, ValueError) as exc:
        detail = exc.problems[0].message if isinstance(exc, ConfigError) and exc.problems else exc
        raise ConfigError(problems=[Problem(row.name, str(detail))]) from None


def _parse(row: Setting, text: str) -> Any:
    shown = "" if row.secret else f", not {_short(text)}"
    stripped = text.strip()
    match row.kind:
        case "secret":
            return Secret(text)
        case "custom":
            assert row.parse is not None  # the kind says so
            return row.parse(text)
        case "int":
            if not WHOLE_NUMBER.fullmatch(stripped):
                raise ValueError(f"must be a whole number{shown}")
            return int(stripped)
        case "float":
            try:
                number = float(stripped)
            except ValueError:
                raise ValueError(f"must be a number{shown}") from None
            if not math.isfinite(number):
                raise ValueError(f"must be a finite number{shown}")
            return number
        case "bool":
            if stripped.lower() in TRUE:
                return True
            if stripped.lower() in FALSE:
                return False
            raise ValueError(f"must be true or false{shown}")
        case "choice":
            for choice in row.choices:
                if stripped.upper() == choice.upper():
                    return choice
            raise ValueError(f"must be one of {', '.join(row.choices)}{shown}")
        case "path":
            path = Path(stripped).expanduser()
            if not path.is_file() or not os.access(path, os.R_OK):
                raise ValueError(f"cannot read {stripped}: no such readable file")
            return str(path)
        case _:
            return stripped


def row_problems(rows: Iterable[Setting], values: Any) -> list[Problem]:
    """Bounds, choices and checks of the typed values (`values` is a `Settings`)."""
    problems: list[Problem] = []
    for row in rows:
        if not row.field:
            continue
        message = value_problem(row, getattr(values, row.field))
        if message is not None:
            problems.append(Problem(row.name, message))
    return problems


def value_problem(row: Setting, value: Any) -> str | None:
    """What is wrong with one typed value of the row (bounds, choices, check), or None."""
    message = _bounds_problem(row, value)
    if message is None and row.check is not None and value not in (None, ""):
        message = row.check(value)
    return message


def _bounds_problem(row: Setting, value: Any) -> str | None:
    if value is None and row.default is None:  # an optional number left unset
        return None
    if row.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if row.kind == "int" and not isinstance(value, int):
            return "must be a whole number"
        if not math.isfinite(value):
            return "must be a finite number"
        shown = f" (got {_number(value)})"
        if row.above is not None and not value > row.above:
            return f"must be greater than {_number(row.above)}{shown}"
        low, high = row.minimum, row.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            return f"must be {_range(row)}{shown}"
    if row.kind == "choice" and value not in (None, "") and value not in row.choices:
        return f"must be one of {', '.join(row.choices)}"
    return None


def _range(row: Setting) -> str:
    low, high = row.minimum, row.maximum
    if low is not None and high is not None:
        return f"between {_number(low)} and {_number(high)}"
    if low is not None:
        return f"at least {_number(low)}"
    return f"at most {_number(high or 0)}"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def describe_type(row: Setting) -> str:
    """The type and bounds, as `--help` and the README say them."""
    if row.type_label:
        return row.type_label
    match row.kind:
        case "secret":
            return "secret"
        case "choice":
            return " \\| ".join(row.choices)
        case "bool":
            return "true \\| false"
        case "path":
            return "file path"
        case "int" | "float":
            noun = "integer" if row.kind == "int" else "number"
            if row.above is not None:
                bound = f" > {_number(row.above)}"
                if row.maximum is not None:
                    bound += f", <= {_number(row.maximum)}"
                return noun + bound
            if row.minimum is not None and row.maximum is not None:
                return f"{noun} {_number(row.minimum)}..{_number(row.maximum)}"
            if row.minimum is not None:
                return f"{noun} >= {_number(row.minimum)}"
            return noun
        case _:
            return "text"


def describe_default(row: Setting) -> str:
    default = row.default
    if default is None or default == "":
        return "none"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, int | float):
        return _number(default)
    return str(default)


def help_text(rows: Iterable[Setting]) -> str:
    """The settings list of `relay run --help`: name, type, default, help (never a value)."""
    lines = ["settings (environment variables; secrets also as NAME_FILE):"]
    for row in rows:
        kind = describe_type(row).replace("\\|", "|")
        lines.append(f"  {row.name}  [{kind}; default: {describe_default(row)}]")
        lines.append(f"      {row.help}")
    return "\n".join(lines)


def markdown(rows: Iterable[Setting]) -> str:
    """The README's settings table."""
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for row in rows:
        name = f"`{row.name}`"
        if row.file_variable:
            name += f" (or `{row.file_variable}`)"
        default = describe_default(row)
        shown = default if default == "none" else f"`{default}`"
        lines.append(f"| {name} | {describe_type(row)} | {shown} | {row.help} |")
    return "\n".join(lines)


BEGIN_MARK: Final = "<!-- settings table: generated by `relay config table --write README.md` -->"
END_MARK: Final = "<!-- end of settings table -->"


def with_table(document: str, table: str) -> str:
    """`document` with the text between the settings table's marks replaced by `table`."""
    start, end = document.find(BEGIN_MARK), document.find(END_MARK)
    if start < 0 or end < start:
        raise ValueError("the document has no settings table marks")
    return f"{document[: start + len(BEGIN_MARK)]}\n{table}\n{document[end:]}"
