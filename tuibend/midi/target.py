"""What MIDI and OSC push into: the small part of the engine they use, and parameter ranges.

The control layer is written against :class:`ControlTarget` rather than the engine itself, so it
never needs the interface and its logic runs against anything that moves faders and recalls scenes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tuibend.bend.registry import SPECS
from tuibend.bend.registry import parameter_range as transform_range

if TYPE_CHECKING:
    from tuibend.bend.scene import Scene
    from tuibend.control import Message


class ControlTarget(Protocol):
    """What MIDI and OSC steer (what :class:`tuibend.engine.Engine` offers): the scenes to read, where a
    fader is going, and :meth:`apply` for every change, a message of the one control protocol
    (:mod:`tuibend.control`) that never blocks, from any thread."""

    scene: Scene
    scenes: list[Scene]

    def target(self, bend: int, name: str) -> float: ...

    def apply(self, message: Message, source: str = ...): ...


def parameter_range(scene: Scene, bend: int, name: str) -> tuple[float, float]:
    """(minimum, maximum) of parameter ``name`` of bend ``bend`` (from 0); KeyError if the scene has none."""
    if not 0 <= bend < len(scene.bends):
        raise KeyError((bend, name))
    transform = scene.bends[bend].transform
    if name != "proportion" and name not in SPECS[transform].params:
        raise KeyError((bend, name))
    return transform_range(transform, name)
