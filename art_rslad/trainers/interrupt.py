"""Ctrl-C (and SIGTERM, where :func:`terminate_as_interrupt` made it one) during training, held until the end of the
batch in progress, so the checkpoint written then resumes exactly: the weights, the optimizer and every random
generator stand between two batches."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

logger = logging.getLogger(__name__)

#: The signals that stop a run the way Ctrl-C does, once they raise KeyboardInterrupt.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM (what SLURM, Kubernetes and Docker send before they kill a job, torchrun to each
    rank) stops the process as Ctrl-C does: it raises KeyboardInterrupt, and :func:`held_interrupt` holds it to
    the batch's end.

    Only from the main thread, and only where SIGTERM still has its default action (a handler the user installed
    is left alone).
    """
    if not _on_main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Interrupt:
    """Whether a stop signal arrived inside :func:`held_interrupt`'s block (the loop checks it between batches), and
    whether a second one abandoned the batch in progress."""

    requested: bool = False
    abandoned: bool = False


@contextlib.contextmanager
def held_interrupt(enabled: bool = True) -> Iterator[Interrupt]:
    """Hold SIGINT (and SIGTERM) for the block: the first one sets :attr:`Interrupt.requested`, a second one stops
    at once.

    Only from the main thread, and only each signal that raises KeyboardInterrupt (Python's default for SIGINT,
    :func:`terminate_as_interrupt`'s for SIGTERM; a handler the user installed is left alone); elsewhere, and where
    ``enabled`` is False (a distributed run, whose ranks must stop at the same batch), the signal raises
    KeyboardInterrupt as usual.
    """
    state = Interrupt()
    held = [number for number in STOP_SIGNALS if signal.getsignal(number) is signal.default_int_handler] \
        if enabled and _on_main_thread() else []

    def hold(signum: int, frame: FrameType | None) -> None:
        if state.requested:
            state.abandoned = True
            raise KeyboardInterrupt
        state.requested = True
        logger.warning("Interrupted (%s): stopping after this batch, with a checkpoint to resume from (a second "
                       "Ctrl-C or SIGTERM stops at once, without one).", signal.Signals(signum).name)

    previous = {number: signal.signal(number, hold) for number in held}
    try:
        yield state
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
