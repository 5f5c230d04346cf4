"""The control layer's errors: one message naming the port, file or field, for the CLI to print."""

from __future__ import annotations


class MidiError(ValueError):
    """A MIDI port that cannot be opened, or a mapping file or mapping that cannot be used."""


class OscError(ValueError):
    """An OSC server that cannot listen where it was asked to."""
