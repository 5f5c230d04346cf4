"""From decoded MIDI messages to engine calls: mappings, 14-bit pairs, soft takeover, held notes, learn.

:meth:`Router.handle` runs on the thread that reads the MIDI ports, so it only looks
mappings up in a dictionary and calls the target's non-blocking setters; a lock held for those few
instructions keeps that thread, the learn button and the interface consistent.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from tuibend.control import MonitorEntry, Recall, SetParam
from tuibend.midi.curves import to_position, to_value
from tuibend.midi.mapping import Mapping, default_map, merge, overlaps
from tuibend.midi.messages import Message
from tuibend.midi.ramps import Ramps
from tuibend.midi.target import ControlTarget, parameter_range

PICKUP_WINDOW = 1.0 / 127  # a control this close to where the parameter stands takes it over at once
PAIR_SECONDS = 0.5  # while learning, an LSB this soon after its MSB makes the control 14-bit
MONITOR_SIZE = 256


@dataclass
class _Pickup:
    """Soft takeover state of one mapping."""

    engaged: bool = False
    last: float | None = None  # the control's last position
    sent: float | None = None  # the last value it set, to notice the parameter moved by someone else


class Router:
    """Applies ``mappings`` (the global map) and, while a scene of that name plays, its ``overrides``."""

    def __init__(self, target: ControlTarget, mappings: list[Mapping] | None = None,
                 overrides: dict[str, list[Mapping]] | None = None, source: str = "midi",
                 notify: Callable[[str], None] | None = None, on_learn: Callable[[Mapping], None] | None = None):
        self.target, self.source = target, source
        self.monitor: collections.deque[MonitorEntry] = collections.deque(maxlen=MONITOR_SIZE)
        self.ramps = Ramps(target, source)
        self._notify = notify or (lambda text: None)
        self._on_learn = on_learn or (lambda mapping: None)
        self._mappings = list(default_map() if mappings is None else mappings)
        self._overrides = dict(overrides or {})
        self._lock = threading.Lock()
        self._indexes: dict[str, dict[tuple[str, int], list[tuple[Mapping, str]]]] = {}
        self._pickups: dict[Mapping, _Pickup] = {}
        self._msb: dict[tuple[int, int], int] = {}
        self._held: dict[Mapping, float] = {}  # held note mappings -> value to return to
        self._learning: tuple[int, str] | None = None
        self._pair: tuple[Mapping, float] | None = None
        self._warned: set[tuple[Mapping, str]] = set()

    # ----- the map ------------------------------------------------------------------------------

    @property
    def mappings(self) -> list[Mapping]:
        """The global map (what is saved), learned mappings included."""
        return list(self._mappings)

    def set_mappings(self, mappings: list[Mapping], overrides: dict[str, list[Mapping]] | None = None) -> None:
        """A new map (and, if given, new scene overrides); every control must take over its fader afresh."""
        with self._lock:
            self._mappings = list(mappings)
            if overrides is not None:
                self._overrides = dict(overrides)
            self._indexes.clear()
            self._pickups.clear()

    def active(self) -> list[Mapping]:
        """The map in force for the playing scene."""
        return merge(self._mappings, self._overrides.get(self.target.scene.name, []))

    def _index(self) -> dict[tuple[str, int], list[tuple[Mapping, str]]]:
        name = self.target.scene.name
        index = self._indexes.get(name)
        if index is None:
            index = collections.defaultdict(list)
            for mapping in self.active():
                if mapping.source == "cc14":
                    index["cc", mapping.number].append((mapping, "msb"))
                    index["cc", mapping.number + 32].append((mapping, "lsb"))
                else:
                    (control,) = mapping.controls()
                    index[control].append((mapping, "value"))
            self._indexes[name] = index = dict(index)
        return index

    # ----- learn --------------------------------------------------------------------------------

    def learn(self, bend: int, name: str) -> None:
        """The next CC (or 14-bit pair) that arrives becomes the control of parameter ``name`` of ``bend``."""
        with self._lock:
            self._learning, self._pair = (bend, name), None

    def cancel_learn(self) -> None:
        with self._lock:
            self._learning = None

    @property
    def learning(self) -> tuple[int, str] | None:
        return self._learning

    def _learn(self, message: Message) -> bool:
        """True when ``message`` was taken by learning rather than played."""
        if self._pair is not None:
            learned, since = self._pair
            self._pair = None
            if (message.kind == "cc" and message.number == learned.number + 32 and learned.listens(message.channel)
                    and time.monotonic() - since < PAIR_SECONDS):
                self._adopt(replace(learned, source="cc14"))
                return True
        if self._learning is None or message.kind != "cc":
            return False
        bend, name = self._learning
        self._learning = None
        learned = Mapping("cc", message.number, message.channel, bend=bend, param=name)
        self._adopt(learned)
        if message.number < 32:
            self._pair = (learned, time.monotonic())
        return True

    def _adopt(self, learned: Mapping) -> None:
        """A learned mapping replaces whatever read its control or set its parameter from a fader."""
        def replaced(mapping: Mapping) -> bool:
            same_target = (mapping.bend, mapping.param) == (learned.bend, learned.param) and mapping.source != "note"
            return overlaps(mapping, learned) or same_target

        self._mappings = [mapping for mapping in self._mappings if not replaced(mapping)] + [learned]
        self._indexes.clear()
        self._on_learn(learned)

    # ----- playing ------------------------------------------------------------------------------

    def handle(self, message: Message, port: str = "") -> None:
        """Records ``message`` in the monitor and plays it."""
        self.record(message, port)
        with self._lock:
            if self._learn(message):
                return
            if message.kind == "cc":
                self._control_change(message)
            elif message.kind in ("note_on", "note_off"):
                self._note(message)
            elif message.kind == "program":
                for mapping, _ in self._index().get(("program", 0), ()):
                    if mapping.listens(message.channel):
                        self._recall(message.number if mapping.scene is None else mapping.scene, message)

    def record(self, message: Message, port: str = "") -> None:
        """Shows ``message`` in the monitor."""
        self.monitor.append(MonitorEntry(time.monotonic(), port, message.channel, message.kind, message.number,
                                         message.value))

    def _control_change(self, message: Message) -> None:
        for mapping, role in self._index().get(("cc", message.number), ()):
            if not mapping.listens(message.channel):
                continue
            if role == "msb":  # an MSB resets the LSB (MIDI 1.0); the LSB refines it when it follows
                self._msb[message.channel, message.number] = message.value
                position = (message.value << 7) / 16383
            elif role == "lsb":
                position = (self._msb.get((message.channel, mapping.number), 0) << 7 | message.value) / 16383
            else:
                position = message.value / 127
            if mapping.bend is None:
                if position >= 0.5:  # a button: pressed
                    self._recall(mapping.scene, message)
            else:
                self._move(mapping, position)

    def _move(self, mapping: Mapping, position: float) -> None:
        try:
            low, high = self._range(mapping)
        except KeyError:
            self._warn(mapping)
            return
        value = to_value(position, low, high, mapping.curve, mapping.amount)
        if mapping.takeover and not self._picked_up(mapping, position, value, low, high):
            return
        self.target.apply(SetParam(mapping.bend, mapping.param, value), self.source)

    def positions(self) -> list[tuple[Mapping, float]]:
        """Where each control of the map in force should stand for the faders as they are now (0..1): what
        motorised faders and controller displays are sent back."""
        placed = []
        for mapping in self.active():
            if mapping.bend is None or mapping.source not in ("cc", "cc14"):
                continue
            try:
                low, high = self._range(mapping)
                value = self.target.target(mapping.bend, mapping.param)
            except KeyError:  # the playing scene has no such bend or parameter
                continue
            placed.append((mapping, min(1.0, max(0.0, to_position(value, low, high, mapping.curve, mapping.amount)))))
        return placed

    def _range(self, mapping: Mapping) -> tuple[float, float]:
        """The mapping's range, else the parameter's; KeyError when the playing scene lacks the parameter."""
        own = parameter_range(self.target.scene, mapping.bend, mapping.param)
        return own if mapping.minimum is None else (mapping.minimum, mapping.maximum)

    def _picked_up(self, mapping: Mapping, position: float, value: float, low: float, high: float) -> bool:
        """Soft takeover: True once the control has reached (or passed) where the parameter stands."""
        pickup = self._pickups.setdefault(mapping, _Pickup())
        try:
            current = self.target.target(mapping.bend, mapping.param)
        except KeyError:
            return False
        if pickup.engaged and not math.isclose(current, pickup.sent, rel_tol=1e-6, abs_tol=1e-9):
            pickup.engaged = False  # a scene, the interface or a glide moved it since
        if not pickup.engaged:
            here = to_position(current, low, high, mapping.curve, mapping.amount)
            crossed = pickup.last is not None and (pickup.last - here) * (position - here) <= 0
            pickup.engaged = crossed or abs(position - here) <= PICKUP_WINDOW
        pickup.last = position
        if pickup.engaged:
            pickup.sent = value
        return pickup.engaged

    def _note(self, message: Message) -> None:
        pressed = message.kind == "note_on"
        for mapping, _ in self._index().get(("note", message.number), ()):
            if not mapping.listens(message.channel):
                continue
            if mapping.bend is None:
                if pressed:
                    self._recall(mapping.scene, message)
                continue
            try:
                if pressed:
                    if mapping not in self._held:
                        self._held[mapping] = self.target.target(mapping.bend, mapping.param)
                    self.ramps.start(mapping.bend, mapping.param, mapping.value, mapping.attack)
                elif mapping in self._held:
                    self.ramps.start(mapping.bend, mapping.param, self._held.pop(mapping), mapping.release)
            except KeyError:
                self._held.pop(mapping, None)
                self._warn(mapping)

    def _recall(self, index: int, message: Message) -> None:
        if not self.target.apply(Recall(index), self.source):
            self._notify(f"MIDI {message.kind} {message.number}: no scene {index + 1} "
                         f"(the set has {len(self.target.scenes)})")

    def _warn(self, mapping: Mapping) -> None:
        """Once per mapping and scene: the playing scene has no such bend or parameter."""
        scene = self.target.scene.name
        if (mapping, scene) not in self._warned:
            self._warned.add((mapping, scene))
            self._notify(f"MIDI {mapping.describe()}: scene {scene!r} has no such bend or parameter")

    def close(self) -> None:
        self.ramps.close()
