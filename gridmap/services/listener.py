"""A thread per API process that LISTENs on one PostgreSQL channel and hands each notification on.

What one process commits, every process hears (the live feed, the dispatch caches, revoked sessions): the
database announces it with NOTIFY on commit (:mod:`gridmap.storage.notify`). A listener survives the
database going away: it logs, waits a second and listens again (``_listening`` runs each time it does, so a
subclass can forget what it may have missed meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, ClassVar

from gridmap.storage.notify import notifications

log = logging.getLogger(__name__)


class Listener:
    """Subclasses name the ``channel`` and the thread, and handle each message in ``_handle``."""

    channel: ClassVar[str]
    thread_name: ClassVar[str]

    def __init__(self, libpq_url: str) -> None:
        self.url = libpq_url
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start listening; returns once the LISTEN is in place (or after ``timeout_s``)."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _listening(self) -> None:
        """Called each time the LISTEN is (again) in place."""
        self._ready.set()

    def _handle(self, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for msg in notifications(self.url, self.channel, self._stop, poll_s=0.2, on_listen=self._listening):
                    self._handle(msg)
            except Exception:  # noqa: BLE001 - the database went away: retry, never kill the API
                log.exception("%s lost its connection to the database; listening again in 1 s", self.thread_name)
                time.sleep(1.0)
