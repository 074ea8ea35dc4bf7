"""The results-schema table of docs/schema.md, generated from the row parts (bench/schema/row.py).

    python -m bench.schema.doc            # print the table
    python -m bench.schema.doc --write    # replace it in docs/schema.md between the markers

tests/test_schema.py fails when docs/schema.md's table differs from what this prints.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from pathlib import Path

from bench.schema.row import PARTS

BEGIN, END = "<!-- schema-table:begin (python -m bench.schema.doc --write) -->", "<!-- schema-table:end -->"
PIPE = "\\|"  # a literal | inside a Markdown table cell
SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def _type_name(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(inner) + (" \\| null" if type(None) in args else "")
    if origin is typing.Literal:
        return "enum"
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return "object"
    return {"str": "string", "int": "int", "float": "number", "bool": "bool"}.get(
        getattr(annotation, "__name__", str(annotation)), "object")


def table() -> str:
    lines = ["| part | field | type | always | meaning |", "|---|---|---|---|---|"]
    for part in PARTS:
        for name, info in part.model_fields.items():
            always = "yes" if info.is_required() else ""
            meaning = (info.description or "").replace("|", PIPE)
            lines.append(f"| {part.__name__} | `{name}` | {_type_name(info.annotation)} | {always} | {meaning} |")
    return "\n".join(lines)


def schema_block(text: str) -> str | None:
    m = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    return m.group(1) if m else None


def main(argv: list[str]) -> int:
    if "--write" not in argv:
        print(table())
        return 0
    text = SCHEMA_DOC.read_text()
    if schema_block(text) is None:
        print(f"{SCHEMA_DOC}: no {BEGIN} ... {END} block", file=sys.stderr)
        return 2
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    SCHEMA_DOC.write_text(text[:start] + "\n" + table() + "\n" + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
