"""The events log: every applied control change as one JSON line, so a performance can be replayed.

Callers on any thread append to a deque (atomic under the GIL, never waits); the engine's file
writer writes the lines out ten times a second and flushes them each second. A line is
``{"t": seconds of engine time, "source": "tui"|"midi"|"osc"|"replay"|..., "target": ..., "value": ...}``
with targets ``bend<N>.<parameter>`` (N from 1), ``scene``, ``bypass``, ``gain``, ``gate`` (the noise gate's
threshold offset, dB), ``panic``, ``transport``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
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
        self.failure: str | None = None  # why the file stopped being written (a full disk): the log goes on in memory
        # Held while lines are written or the file closed (the file writer, or whoever stops the engine):
        # a writer that outlives stop() writes nothing instead of failing on a closed file.
        self._writing = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - open for the performance
        self._last_flush = time.monotonic()

    def add(self, event: Event) -> None:
        self._pending.append(event)
        self.recent.append(event)

    def write_pending(self, force_flush: bool = False) -> None:
        """Writes what has arrived (the engine's file writer), flushing about once a second."""
        with self._writing:
            self._write_pending(force_flush)

    def _write_pending(self, force_flush: bool) -> None:
        try:
            while self._pending:
                event = self._pending.popleft()
                if self._file is not None:
                    self._file.write(event.line() + "\n")
            if self._file is not None and (force_flush or time.monotonic() - self._last_flush >= 1.0):
                self._file.flush()
                self._last_flush = time.monotonic()
        except OSError as error:  # what was flushed stays readable; the performance goes on without the file
            self.failure = f"events log {self.path}: {error.strerror or error}; no longer written"
            self._abandon()

    def _abandon(self) -> None:
        file, self._file = self._file, None
        with contextlib.suppress(OSError):
            file.close()

    def close(self) -> None:
        with self._writing:
            self._write_pending(force_flush=True)
            if self._file is not None:
                self._abandon()


def read_events(path: str | Path) -> list[Event]:
    """A log written by :class:`EventLog`, in time order, for replay."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise EngineError(f"{path}: cannot read the events log ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise EngineError(f"{path}: not an events log (not UTF-8 text: {error.reason} at byte {error.start})") from None
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            event = Event(float(record["t"]), str(record["source"]), str(record["target"]), record["value"])
        except (ValueError, KeyError, TypeError) as error:
            raise EngineError(f"{path}:{number}: not an events-log line ({error})") from None
        fault = check_event(event)
        if fault is not None:
            raise EngineError(f"{path}:{number}: {fault}")
        events.append(event)
    return sorted(events, key=lambda event: event.t)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_event(event: Event) -> str | None:
    """Why a logged event cannot be replayed (None: it can): every value is checked before the engine
    sees it, so a hand-edited or damaged log is refused with its line, never stops the music."""
    target, value = event.target, event.value
    if not math.isfinite(event.t) or event.t < 0:
        return f"'t' must be a finite time of at least 0, got {event.t}"
    if target.startswith("bend") or target in ("gain", "gate"):
        if isinstance(value, str) and target.startswith("bend") and value in ("record lane", "lane recorded"):
            return None
        if not _finite(value):
            return f"{target}: the value must be a finite number, got {value!r}"
    elif target == "bypass" and not isinstance(value, bool):
        return f"bypass: the value must be true or false, got {value!r}"
    elif target == "scene" and not isinstance(value, str):
        return f"scene: the value must be a scene name, got {value!r}"
    elif target == "transport":
        if not isinstance(value, str):
            return f"transport: the value must be play, pause or 'seek SECONDS', got {value!r}"
        if value.startswith("seek "):
            try:
                seconds = float(value.split()[1])
            except (IndexError, ValueError):
                seconds = math.nan
            if not math.isfinite(seconds) or seconds < 0:
                return f"transport: {value!r} needs a finite time of at least 0"
        elif value not in ("play", "pause"):
            return f"transport: {value!r} is not play, pause or 'seek SECONDS'"
    return None
