"""The events log: every applied control change as one JSON line, so a performance can be replayed.

Callers on any thread append to a deque (atomic under the GIL, never waits); the model thread
writes the lines out between blocks and flushes them each second. A line is
``{"t": seconds of engine time, "source": "tui"|"midi"|"osc"|"replay"|..., "target": ..., "value": ...}``
with targets ``bend<N>.<parameter>`` (N from 1), ``scene``, ``bypass``, ``gain``, ``panic``, ``transport``.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tuibend.engine.errors import EngineError


@dataclass(frozen=True)
class Event:
    t: float
    source: str
    target: str
    value: object

    def line(self) -> str:
        return json.dumps({"t": round(self.t, 6), "source": self.source, "target": self.target, "value": self.value})


class EventLog:
    """Collects events; writes them to ``path`` (JSON lines) when one is given."""

    def __init__(self, path: str | Path | None = None, keep: int = 1000):
        self.path = Path(path) if path is not None else None
        self._pending: collections.deque[Event] = collections.deque()
        self.recent: collections.deque[Event] = collections.deque(maxlen=keep)  # for the interface
        self._file = None
        # Held while lines are written or the file closed (model thread, or whoever stops the engine):
        # a model thread that outlives stop() writes nothing instead of failing on a closed file.
        self._writing = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - open for the performance
        self._last_flush = time.monotonic()

    def add(self, event: Event) -> None:
        self._pending.append(event)
        self.recent.append(event)

    def write_pending(self, force_flush: bool = False) -> None:
        """Writes what has arrived (model thread), flushing about once a second."""
        with self._writing:
            self._write_pending(force_flush)

    def _write_pending(self, force_flush: bool) -> None:
        while self._pending:
            event = self._pending.popleft()
            if self._file is not None:
                self._file.write(event.line() + "\n")
        if self._file is not None and (force_flush or time.monotonic() - self._last_flush >= 1.0):
            self._file.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        with self._writing:
            self._write_pending(force_flush=True)
            if self._file is not None:
                self._file.close()
                self._file = None


def read_events(path: str | Path) -> list[Event]:
    """A log written by :class:`EventLog`, in time order, for replay."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise EngineError(f"{path}: cannot read the events log ({error.strerror})") from None
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            events.append(Event(float(record["t"]), str(record["source"]), str(record["target"]), record["value"]))
        except (ValueError, KeyError, TypeError) as error:
            raise EngineError(f"{path}:{number}: not an events-log line ({error})") from None
    return sorted(events, key=lambda event: event.t)
