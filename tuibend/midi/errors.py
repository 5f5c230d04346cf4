"""The control layer's errors: one message naming the port, file or field, for the CLI to print."""

from __future__ import annotations

from tuibend.errors import TuibendError


class MidiError(TuibendError, ValueError):
    """A MIDI port that cannot be opened, or a mapping file or mapping that cannot be used."""


class OscError(TuibendError, ValueError):
    """An OSC server that cannot listen where it was asked to."""
