"""Field types of the event schema: ids, bounded texts and numbers, country codes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

__all__ = [
    "CountryCode",
    "EffectiveType",
    "Id",
    "Millis",
    "NonNeg",
    "Scalar",
    "ShortText",
    "Text",
    "Url",
]

# 1 to 128 printable characters: no C0/C1 control characters, DEL or line/paragraph separators.
Id = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"
    ),
]
Text = Annotated[str, StringConstraints(max_length=2048)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Millis = Annotated[float, Field(ge=0, le=7 * 24 * 3600 * 1000, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Scalar = str | int | float | bool | None
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$", to_lower=True)]
EffectiveType = Literal["slow-2g", "2g", "3g", "4g", "5g", "wifi", "ethernet", "unknown"]
