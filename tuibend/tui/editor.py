"""The scene set as a performer edits it: focus, fader moves, chain edits, undo and redo.

Plain Python with no interface in it, so every edit is testable on its own; the app turns each
edit into engine calls (a fader move into ``Engine.set``, a chain change into ``Engine.load``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

from tuibend.bend.registry import SPECS, Bend, parameter_range
from tuibend.bend.scene import Scene


def set_value(bend: Bend, name: str, value: float) -> None:
    if name == "proportion":
        bend.proportion = value
    else:
        bend.params[name] = value


@dataclass
class SceneEditor:
    """Scenes (with their files), the focused bend and parameter, and the undo history."""

    scenes: list[Scene]
    paths: list[Path | None]
    points: list[str]
    current: int = 0
    row: int = 0
    column: int = 0
    dirty: set[int] = field(default_factory=set)
    _undo: list[tuple[int, Scene, str]] = field(default_factory=list)
    _redo: list[tuple[int, Scene, str]] = field(default_factory=list)

    @property
    def scene(self) -> Scene:
        return self.scenes[self.current]

    def focused(self) -> tuple[int, str] | None:
        """(bend index, parameter name) under the cursor, or None for an empty chain."""
        if not self.scene.bends:
            return None
        self.row = min(self.row, len(self.scene.bends) - 1)
        names = self.scene.bends[self.row].parameter_names()
        self.column = min(self.column, len(names) - 1)
        return self.row, names[self.column]

    def select(self, index: int) -> None:
        self.current, self.row, self.column = index, 0, 0

    def move_row(self, delta: int) -> None:
        if self.scene.bends:
            self.row = (self.row + delta) % len(self.scene.bends)
            self.column = 0

    def move_column(self, delta: int) -> None:
        if (focus := self.focused()) is not None:
            self.column = (self.column + delta) % len(self.scene.bends[focus[0]].parameter_names())

    def _checkpoint(self, kind: str) -> None:
        """Keeps the scene as it was before an edit; a run of moves of one fader is one step."""
        if not (kind.startswith("move") and self._undo and self._undo[-1][2] == kind
                and self._undo[-1][0] == self.current):
            self._undo.append((self.current, copy.deepcopy(self.scene), kind))
        if not kind.startswith("move"):  # a chain edit makes a new scene: the playing one stays intact
            self.scenes[self.current] = copy.deepcopy(self.scene)
        self._redo.clear()
        self.dirty.add(self.current)

    def adjust(self, fraction: float) -> tuple[int, str, float] | None:
        """Moves the focused parameter by ``fraction`` of its range; returns (bend, name, new value)."""
        if (focus := self.focused()) is None:
            return None
        bend_index, name = focus
        bend = self.scene.bends[bend_index]
        low, high = parameter_range(bend.transform, name)
        value = min(high, max(low, bend.value(name) + fraction * (high - low)))
        self._checkpoint(f"move {bend_index} {name}")
        set_value(bend, name, round(value, 6))
        return bend_index, name, value

    def sync(self, bend_index: int, name: str, value: float) -> None:
        """Takes a value moved elsewhere (MIDI, OSC, a lane) without making an undo step."""
        if bend_index < len(self.scene.bends) and name in self.scene.bends[bend_index].parameter_names():
            set_value(self.scene.bends[bend_index], name, round(value, 6))

    def add_bend(self) -> Scene:
        """A new bend after the focused one: the focused bend's point, a gentle oscillate."""
        self._checkpoint("add")
        point = self.scene.bends[self.row].point if self.scene.bends else self.points[0]
        position = self.row + 1 if self.scene.bends else 0
        self.scene.bends.insert(position, Bend(point, "oscillate", 0.0))
        self._shift_lanes(position, +1)
        self.row, self.column = position, 0
        return self.scene

    def remove_bend(self) -> Scene | None:
        if not self.scene.bends:
            return None
        self._checkpoint("remove")
        del self.scene.bends[self.row]
        self.scene.automation = {k: v for k, v in self.scene.automation.items() if k[0] != self.row}
        self._shift_lanes(self.row + 1, -1)
        self.row = max(0, min(self.row, len(self.scene.bends) - 1))
        return self.scene

    def _shift_lanes(self, start: int, delta: int) -> None:
        self.scene.automation = {((b + delta) if b >= start else b, name): lane
                                 for (b, name), lane in self.scene.automation.items()}

    def move_bend(self, delta: int) -> Scene | None:
        """Moves the focused bend up or down the chain (the order transforms apply in)."""
        other = self.row + delta
        if not self.scene.bends or not 0 <= other < len(self.scene.bends):
            return None
        self._checkpoint("reorder")
        bends = self.scene.bends
        bends[self.row], bends[other] = bends[other], bends[self.row]
        swap = {self.row: other, other: self.row}
        self.scene.automation = {(swap.get(b, b), name): lane for (b, name), lane in self.scene.automation.items()}
        self.row = other
        return self.scene

    def cycle_transform(self, delta: int) -> Scene | None:
        """The next transform for the focused bend, with that transform's default parameters."""
        if (focus := self.focused()) is None:
            return None
        self._checkpoint("transform")
        names = list(SPECS)
        bend = self.scene.bends[focus[0]]
        transform = names[(names.index(bend.transform) + delta) % len(names)]
        self.scene.bends[focus[0]] = replace(bend, transform=transform, params={})
        self.scene.automation = {k: v for k, v in self.scene.automation.items()
                                 if k[0] != focus[0] or k[1] == "proportion"}
        self.column = 0
        return self.scene

    def cycle_point(self, delta: int) -> Scene | None:
        if (focus := self.focused()) is None:
            return None
        self._checkpoint("point")
        bend = self.scene.bends[focus[0]]
        point = self.points[(self.points.index(bend.point) + delta) % len(self.points)]
        self.scene.bends[focus[0]] = replace(bend, point=point)
        return self.scene

    def set_lane(self, bend_index: int, name: str, lane) -> None:
        self._checkpoint("lane")
        self.scene.automation[(bend_index, name)] = lane

    def undo(self) -> Scene | None:
        return self._step(self._undo, self._redo)

    def redo(self) -> Scene | None:
        return self._step(self._redo, self._undo)

    def _step(self, source: list, target: list) -> Scene | None:
        if not source:
            return None
        index, scene, kind = source.pop()
        target.append((index, copy.deepcopy(self.scenes[index]), kind))
        self.scenes[index] = scene
        self.current = index
        self.dirty.add(index)
        self.focused()
        return scene

    def saved(self, path: Path) -> None:
        self.paths[self.current] = path
        self.dirty.discard(self.current)
