"""The engine's file writer: everything the engine writes while it plays, on a thread of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tuibend.errors import describe


class FileWriter:
    """Calls ``write`` every ``interval`` seconds on a thread of its own, and once more as it stops.

    The take, the events log and the stats file reach the disk here, never from the model thread: a disk that
    stalls (a USB stick, a network home folder) then delays the files, never the music. ``failed`` hears a bug's
    one-line description (its traceback kept in the user's log folder) and the writer stops; the music goes on.
    """

    def __init__(self, write: Callable[[], None], failed: Callable[[str], None], interval: float = 0.1):
        self._write = write
        self._failed = failed
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuibend-files", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                self._write()
            self._write()  # the last pass: what the model thread left
        except Exception as error:  # a bug here stops the files, never the performance
            self._failed(describe(error))

    def stop(self, timeout: float) -> bool:
        """Ends the thread after its last pass; False if the disk still holds it after ``timeout`` seconds."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()
