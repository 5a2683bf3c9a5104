"""Every method of the shared loop -> its plain PyTorch loop: the earlier methods' (``bench/plain_loops.py``) and
those of the methods since 2022 (``bench/plain_loops_recent.py``)."""

from __future__ import annotations

from bench.plain_loops import EARLIER_PLAIN_METHODS, PlainMethod
from bench.plain_loops_recent import RECENT_PLAIN_METHODS

#: Method name (as in art_rslad's registry) -> its plain loop.
PLAIN_METHODS: dict[str, PlainMethod] = {**EARLIER_PLAIN_METHODS, **RECENT_PLAIN_METHODS}  # type: ignore[dict-item]
