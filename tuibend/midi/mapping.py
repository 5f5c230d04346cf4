"""Mappings from MIDI controls to faders and scene recalls; the default map; per-scene overrides.

A :class:`Mapping` checks itself when made, naming the faulty field ("channel: 17 is outside
1..16"), so a mapping file's loader only has to say which file and which entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuibend.midi.curves import CURVES
from tuibend.midi.errors import MidiError

SOURCES = ("cc", "cc14", "note", "program")
DEFAULT_FADERS = tuple(range(20, 28))  # CC 20-27: proportion faders of bends 1-8 (undefined CCs in General MIDI)


@dataclass(frozen=True)
class Mapping:
    """One control and what it moves.

    ``source`` is ``cc`` (7 bits), ``cc14`` (MSB on CC ``number`` 0-31, LSB on ``number + 32``),
    ``note`` (held: the parameter goes to ``value`` over ``attack`` seconds, back over ``release``)
    or ``program``. The target is parameter ``param`` of bend ``bend`` (from 0), or, with ``bend``
    None, scene ``scene`` (from 0; a program change with no ``scene`` recalls the scene it numbers).
    ``minimum``/``maximum`` default to the parameter's own range. With ``takeover`` a control is
    ignored until it reaches where the parameter stands, so nothing jumps.
    """

    source: str
    number: int = 0
    channel: int | None = None  # 1-16; None: every channel
    bend: int | None = None
    param: str = "proportion"
    scene: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    curve: str = "linear"
    amount: float | None = None  # the curve's steepness (exp, log) or exponent (power); None: its default
    takeover: bool = True
    value: float = 1.0
    attack: float = 0.05
    release: float = 0.3

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise MidiError(f"source: {self.source!r} is unknown (allowed: {', '.join(SOURCES)})")
        top = 31 if self.source == "cc14" else 127
        if not 0 <= self.number <= top:
            hint = " (a 14-bit pair is CC n with CC n+32)" if self.source == "cc14" else ""
            raise MidiError(f"number: {self.number} is outside 0..{top}{hint}")
        if self.channel is not None and not 1 <= self.channel <= 16:
            raise MidiError(f"channel: {self.channel} is outside 1..16")
        if self.bend is not None and self.scene is not None:
            raise MidiError("scene: give a bend or a scene, not both")
        if self.source == "program" and self.bend is not None:
            raise MidiError("bend: a program change recalls scenes; map a cc, cc14 or note to a bend")
        if self.source != "program" and self.bend is None and self.scene is None:
            raise MidiError("bend: missing (or give a scene to recall)")
        for field, number in (("bend", self.bend), ("scene", self.scene)):
            if number is not None and number < 0:
                raise MidiError(f"{field}: {number + 1} is not a {field} number (they count from 1)")
        if self.curve not in CURVES:
            raise MidiError(f"curve: {self.curve!r} is unknown (allowed: {', '.join(CURVES)})")
        if self.amount is not None and self.amount <= 0:
            raise MidiError(f"amount: {self.amount} must be above 0")
        if (self.minimum is None) != (self.maximum is None):
            raise MidiError("range: give both ends, [minimum, maximum]")
        for field, seconds in (("attack", self.attack), ("release", self.release)):
            if seconds < 0:
                raise MidiError(f"{field}: {seconds} is negative (seconds, 0 for at once)")

    def listens(self, channel: int) -> bool:
        return self.channel is None or self.channel == channel

    def controls(self) -> set[tuple[str, int]]:
        """The (message kind, number) pairs this mapping reads."""
        if self.source == "cc14":
            return {("cc", self.number), ("cc", self.number + 32)}
        if self.source == "program":
            return {("program", 0)}
        return {("note" if self.source == "note" else "cc", self.number)}

    def describe(self) -> str:
        """For the interface: ``CC 20 ch 1 -> bend 1 proportion``."""
        names = {"cc": f"CC {self.number}", "cc14": f"CC {self.number}/{self.number + 32}",
                 "note": f"note {self.number}", "program": "program change"}
        where = f" ch {self.channel}" if self.channel is not None else ""
        if self.bend is not None:
            to = f"bend {self.bend + 1} {self.param}"
        else:
            to = f"scene {self.scene + 1}" if self.scene is not None else "scene by number"
        return f"{names[self.source]}{where} -> {to}"


def overlaps(a: Mapping, b: Mapping) -> bool:
    """True when both read the same control on a shared channel."""
    shared_channel = a.channel is None or b.channel is None or a.channel == b.channel
    return shared_channel and bool(a.controls() & b.controls())


def default_map() -> list[Mapping]:
    """What works with no mapping made: CC 20-27 on any channel move bends 1-8's proportion faders,
    and program change N recalls scene N (from 0, "scene N+1" on screen)."""
    faders = [Mapping("cc", number, bend=index) for index, number in enumerate(DEFAULT_FADERS)]
    return [*faders, Mapping("program")]


def merge(global_map: list[Mapping], scene_overrides: list[Mapping]) -> list[Mapping]:
    """A scene's own mappings replace the global ones that read the same controls; the rest stay."""
    kept = [m for m in global_map if not any(overlaps(m, override) for override in scene_overrides)]
    return [*kept, *scene_overrides]
