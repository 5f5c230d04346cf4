"""MIDI bytes to messages.

Channels are 1-16 everywhere in tuibend, as musicians and controller manuals number them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_KINDS = {0x80: "note_off", 0x90: "note_on", 0xA0: "aftertouch", 0xB0: "cc", 0xC0: "program", 0xD0: "pressure",
          0xE0: "pitchbend"}


@dataclass(frozen=True)
class Message:
    """One channel message: ``number`` is the CC, note or program number; ``value`` the CC value, the
    velocity, the pressure or the 14-bit pitch bend."""

    kind: str
    channel: int
    number: int
    value: int


def decode(data: Sequence[int]) -> Message | None:
    """A channel message from rtmidi's bytes; None for system messages and anything truncated."""
    if not data or not 0x80 <= data[0] < 0xF0:
        return None
    kind, channel = _KINDS[data[0] & 0xF0], (data[0] & 0x0F) + 1
    if kind in ("program", "pressure"):
        if len(data) < 2:
            return None
        return Message(kind, channel, data[1], 0) if kind == "program" else Message(kind, channel, 0, data[1])
    if len(data) < 3:
        return None
    if kind == "pitchbend":
        return Message(kind, channel, 0, data[1] | data[2] << 7)
    if kind == "note_on" and data[2] == 0:  # a note on at velocity 0 is a note off by convention
        kind = "note_off"
    return Message(kind, channel, data[1], data[2])
