"""The one type of every seed in the params: small enough for numpy's legacy generator, torch and
the offsets the code adds (``seed + k``) without overflow; a larger value is refused by name."""

from typing import Annotated

from pydantic import Field

MAX_SEED = 2**31 - 1

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description=f"0 .. {MAX_SEED}")]
