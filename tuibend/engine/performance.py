"""A performance: the engine playing and what steers it, as the engine's process keeps it.

The engine is swapped when the performer changes model or input (prepared while the old one plays);
the MIDI and OSC inputs follow it. Messages of the control protocol that reach above one engine
(switch, stop, MIDI learn) are applied here; the rest go to the engine (:func:`control.apply`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tuibend import control
from tuibend.control import Learn, ProtocolError, Stop, Switch
from tuibend.engine.errors import EngineError
from tuibend.errors import describe

if TYPE_CHECKING:
    from tuibend.engine.engine import Engine


def swap_engine(old: Engine, new: Engine, make_engine: Callable[[dict], Engine],
                controls: tuple) -> tuple[Engine, str | None]:
    """Stops ``old`` and starts the prepared ``new``; should ``new`` fail to start, a fresh engine of the
    first settings plays instead, and the fault is returned. The controls steer whichever plays."""
    old.stop()
    failure = None
    try:
        new.start()
    except EngineError as error:
        failure = f"could not start: {error}; restarting the previous engine"
        new = make_engine({})
        new.prepare()
        new.start()
    for control_input in controls:
        if control_input is not None:
            control_input.retarget(new)
    return new, failure


class Performance:
    """The engine (:attr:`engine`, replaced on a switch: :attr:`generation` counts them), its controls,
    and the labels an interface shows; :attr:`ended` is set when a client asks the performance to stop."""

    def __init__(self, engine: Engine, labels: tuple[str, str], make_engine: Callable[[dict], Engine] | None = None,
                 controls: tuple = (None, None), notices: list[str] | None = None):
        self.engine = engine
        self.model, self.source = labels
        self.make_engine = make_engine
        self.controls = controls
        self.generation = 0
        # what a performer should know, for every attached interface: the last 200, and how many ever
        self.notices: collections.deque[str] = collections.deque(maxlen=200)
        self.notice_count = 0
        self._notice_lock = threading.Lock()
        for text in notices or []:
            self.notify(text)
        self.switching: str | None = None
        self.ended = threading.Event()

    def notify(self, text: str) -> None:
        with self._notice_lock:
            self.notices.append(text)
            self.notice_count += 1

    def collect_notices(self) -> None:
        """Moves what the MIDI and OSC inputs have to say into :attr:`notices`."""
        for control_input in self.controls:
            while control_input is not None and control_input.notices:
                try:
                    self.notify(control_input.notices.popleft())
                except IndexError:  # another client's state took it first
                    break

    @property
    def midi(self):
        return self.controls[0]

    @property
    def osc(self):
        return self.controls[1]

    def apply(self, message: control.Message, source: str):
        """Applies one message of the protocol; the reply's value (None where it has none)."""
        match message:
            case Stop():
                self.ended.set()
            case Switch(model, input_):
                changes = {key: value for key, value in (("model", model), ("input", input_)) if value}
                self.switch(changes)
            case Learn(bend, name):
                if self.midi is None:
                    raise ProtocolError("no MIDI input is open (start tuibend play with --midi)")
                self.midi.learn(bend, name)
            case _:
                return control.apply(self.engine, message, source)
        return None

    def switch(self, changes: dict) -> None:
        """Prepares the engine ``changes`` ask for on a thread while this one plays, then swaps to it."""
        label = ", ".join(f"{key} {value}" for key, value in changes.items()) or "restart"
        if self.make_engine is None:
            raise ProtocolError("switching is not available in this performance")
        if self.switching is not None:
            raise ProtocolError(f"already preparing {self.switching}")
        self.switching = label
        threading.Thread(target=self._switch, args=(changes, label), name="tuibend-switch", daemon=True).start()

    def _switch(self, changes: dict, label: str) -> None:
        try:
            engine = self.make_engine(changes)
            engine.prepare()
        except Exception as error:  # any fault: the performance goes on with what was playing
            self.notify(f"{label} failed: {describe(error)}")
            self.switching = None
            return
        self.engine, failure = swap_engine(self.engine, engine, self.make_engine, self.controls)
        if failure is None:
            self.model = Path(changes.get("model", self.model)).name
            self.source = source_label(changes.get("input", self.source))
        else:
            self.notify(failure)
        self.generation += 1
        self.switching = None

    def stop(self) -> None:
        """Stops the engine (the take finished, the log flushed) and closes the controls."""
        self.engine.stop()
        for control_input in self.controls:
            if control_input is not None:
                control_input.close()


def source_label(source: str) -> str:
    """How an input is named on screen: mic, or the file's name."""
    return "mic" if source == "mic" else Path(source).name
