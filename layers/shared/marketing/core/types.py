"""Field types shared by the API models of every capability."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Ids end up inside DynamoDB keys built with `#` separators: a strict charset keeps keys unambiguous.
ID_CHARS = r"[A-Za-z0-9_.:@-]"
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=rf"^{ID_CHARS}+$")]
Limit = Annotated[int, Field(ge=1, le=100)]
Cents = Annotated[int, Field(ge=0, description="an amount in integer cents")]


