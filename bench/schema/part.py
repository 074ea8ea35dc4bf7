"""The base of every typed record at a boundary: strict (a field nobody declares is an error), and a
field helper that carries the field's meaning into docs/schema.md's generated table."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Part(BaseModel):
    # extra="forbid": a field no part declares is an error, wherever a row is built or read.
    model_config = ConfigDict(extra="forbid")


def f(meaning: str, default: Any = ..., **kwargs) -> Any:
    """A field with its meaning (docs/schema.md's table text); no default means always written."""
    return Field(default, description=meaning, **kwargs)
