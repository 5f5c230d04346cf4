"""Glides for held notes: a parameter stepped from where it stands to a value over some seconds.

One small thread sends a value every ``step`` seconds while a glide runs and sleeps otherwise; the
engine smooths between steps per frame, so a few steps per attack sound continuous.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tuibend.control import SetParam
from tuibend.midi.target import ControlTarget


@dataclass(frozen=True)
class _Glide:
    start: float
    end: float
    began: float
    seconds: float


class Ramps:
    """Glides on ``target``'s parameters, logged as ``source``."""

    def __init__(self, target: ControlTarget, source: str = "midi", step: float = 0.01):
        self.target, self.source, self.step = target, source, step
        self._glides: dict[tuple[int, str], _Glide] = {}
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self, bend: int, name: str, value: float, seconds: float) -> None:
        """Glides from the parameter's current target (KeyError if it has none); 0 s jumps at once."""
        begin = self.target.target(bend, name)
        with self._wake:
            if seconds <= 0:
                self._glides.pop((bend, name), None)
            else:
                self._glides[(bend, name)] = _Glide(begin, value, time.monotonic(), seconds)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="tuibend-midi-ramps", daemon=True)
                    self._thread.start()
                self._wake.notify()
        if seconds <= 0:
            self.target.apply(SetParam(bend, name, value), self.source)

    @property
    def active(self) -> bool:
        return bool(self._glides)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._glides and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                now, steps = time.monotonic(), []
                for key, glide in list(self._glides.items()):
                    done = (now - glide.began) / glide.seconds
                    if done >= 1.0:
                        steps.append((key, glide.end))  # exactly: a held value is returned to as it was
                        del self._glides[key]
                    else:
                        steps.append((key, glide.start + (glide.end - glide.start) * done))
            for (bend, name), value in steps:
                self.target.apply(SetParam(bend, name, value), self.source)
            time.sleep(self.step)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=2)
