"""The run-folder lock: a second process is refused at once, naming the holder; a dead holder's lock is taken over."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from art_rslad.experiments.lock import LOCK_NAME, FolderBusyError, FolderLock

HOLD = """
import sys, time
from art_rslad.experiments.lock import FolderLock
with FolderLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(folder) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_at_once_with_the_holders_pid(tmp_path):
    holder = _holder(tmp_path)
    try:
        started = time.perf_counter()
        with pytest.raises(FolderBusyError, match=rf"in use by process {holder.pid} .*choose another folder"), \
                FolderLock(tmp_path, "--out"):
            pass
        assert time.perf_counter() - started < 1.0
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, caplog):
    holder = _holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert str(holder.pid) in (tmp_path / LOCK_NAME).read_text()
    with caplog.at_level(logging.WARNING), FolderLock(tmp_path):
        assert f"process {os.getpid()} " in (tmp_path / LOCK_NAME).read_text()
    assert f"left by process {holder.pid}" in caplog.text
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released: no holder named


def test_the_lock_is_reentrant_within_one_process_and_released_at_the_end(tmp_path):
    with FolderLock(tmp_path), FolderLock(tmp_path):
        pass
    with FolderLock(tmp_path):  # free again
        pass
