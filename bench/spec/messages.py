"""One line per invalid input: a pydantic error as `FILE: dotted.key: what was expected, got VALUE`,
for the suite file and the profiles alike."""

from __future__ import annotations

import re

_FRIENDLY = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "extra_forbidden": "unknown key",
    "missing": "required field is missing",
}


def _key(part) -> str:
    if not isinstance(part, str):
        return f"[{part}]"
    return part if part.isprintable() and part.strip() == part and part else repr(part)


def _format_error(err: dict, file: str) -> str:
    parts = err["loc"]
    if parts[:1] == ("task",) and parts[1:2] in (("glue",), ("custom",)):  # TaskSpec's branch tag
        parts = parts[:1] + parts[2:]
    loc = ".".join(_key(p) for p in parts).replace(".[", "[")
    kind, value = err["type"], err.get("input")
    if kind == "literal_error":
        msg = f"{err['msg'].replace('Input should be', 'expected')}, got {value!r}"
    elif kind in ("extra_forbidden", "missing"):
        msg = _FRIENDLY[kind]
    elif kind in _FRIENDLY:
        msg = f"{_FRIENDLY[kind]}, got {value!r}"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        # A section's own check names the sub-field first ("source: required ..."): join the paths.
        sub = re.match(r"^([A-Za-z_][\w.\[\]-]*): (.*)$", msg)
        if sub and kind == "value_error":
            loc, msg = (f"{loc}.{sub[1]}" if loc else sub[1]), sub[2]
    msg = msg if len(msg) < 300 else msg[:297] + "..."
    # Whole-suite checks name their field at the start of the message.
    return f"{file}: {loc}: {msg}" if loc else f"{file}: {msg}"
