"""Ctrl-C during training, held until the end of the batch in progress, so the checkpoint written then resumes
exactly: the weights, the optimizer and every random generator stand between two batches."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

logger = logging.getLogger(__name__)


class Interrupt:
    """Whether a SIGINT arrived inside :func:`held_interrupt`'s block (the loop checks it between batches), and
    whether a second one abandoned the batch in progress."""

    requested: bool = False
    abandoned: bool = False


@contextlib.contextmanager
def held_interrupt(enabled: bool = True) -> Iterator[Interrupt]:
    """Hold SIGINT for the block: the first one sets :attr:`Interrupt.requested`, a second one stops at once.

    Only from the main thread, and only where SIGINT still has Python's default handler (a handler the user
    installed is left alone); elsewhere, and where ``enabled`` is False (a distributed run, whose ranks must stop
    at the same batch), SIGINT raises KeyboardInterrupt as usual.
    """
    state = Interrupt()
    if not enabled or threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield state
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        if state.requested:
            state.abandoned = True
            raise KeyboardInterrupt
        state.requested = True
        logger.warning("Interrupted: stopping after this batch, with a checkpoint to resume from (Ctrl-C again "
                       "stops at once, without one).")

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
