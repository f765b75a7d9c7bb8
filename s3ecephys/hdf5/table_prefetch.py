"""Chunk tables read in the background after an open, so that a later first read finds them.

An open reads a file's structure in three round trips and leaves the chunk tables of its large
datasets out (see :mod:`s3ecephys.hdf5.chunk_tables`). Walking their B-trees takes three more
round trips, which the first read of such a dataset would otherwise wait for — in this process
and, if that read came later, in every process after it. So once an open has returned, the
tables missing from the index cache are read here, off the caller's path, and kept beside the
index: a user who opens a file and reads right away waits no longer than before (the read takes
over the walk's lock and finds the tables in), and every later process finds them on disk.

A few daemon threads do the walks (opening many files starts few threads). At interpreter exit
the walks under way get a bounded time to finish and save (:data:`EXIT_WAIT` seconds); a walk
that fails is only logged (debug): the first read of the dataset walks again and reports its
own error.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)

# How long an exiting interpreter waits for walks under way (each is bounded by the store's own
# limits anyway: retry budget 30 s). Three round trips take well under a second on S3.
EXIT_WAIT = 10.0
# Walks run side by side at most (each is one concurrent fetch per tree level).
WORKERS = 4

_jobs: queue.Queue[Callable[[], None]] = queue.Queue()
_lock = threading.Lock()
_workers: list[threading.Thread] = []
_unfinished = 0
_idle = threading.Condition(_lock)


def read_later(job: Callable[[], None], what: str) -> None:
    """Run ``job`` (a chunk-table walk of ``what``) on a background thread."""
    global _unfinished

    def run() -> None:
        try:
            job()
        except Exception as error:  # the first read walks again and says what went wrong
            _log.debug("background chunk-table read of %s failed: %s", what, error)

    with _lock:
        _unfinished += 1
        if len(_workers) < WORKERS and len(_workers) < _unfinished:
            worker = threading.Thread(target=_work, name="s3ecephys-chunk-tables", daemon=True)
            _workers.append(worker)
            worker.start()
    # Registered again each time, so that it runs before the exit handlers of anything the
    # walks use that was set up since (atexit runs the last registered first).
    atexit.unregister(wait_for_pending)
    atexit.register(wait_for_pending)
    _jobs.put(run)


def _work() -> None:
    global _unfinished
    while True:
        job = _jobs.get()
        try:
            job()
        finally:
            with _lock:
                _unfinished -= 1
                _idle.notify_all()


def wait_for_pending(timeout: float = EXIT_WAIT) -> bool:
    """Wait until every background walk has finished (at most ``timeout`` seconds); whether they
    all did."""
    deadline = time.monotonic() + timeout
    with _lock:
        while _unfinished:
            left = deadline - time.monotonic()
            if left <= 0:
                _log.debug("%d background chunk-table reads left unfinished", _unfinished)
                return False
            _idle.wait(left)
    return True
