"""MIDI and OSC control: faders, mappings with learn and soft takeover, scene recall, remote control.

Controllers push into the engine through :class:`ControlTarget` (the engine's non-blocking setters);
nothing here knows the interface. :class:`MidiInput` listens to MIDI ports, :class:`OscServer` to
OSC over UDP; mappings live in TOML files (:mod:`tuibend.midi.mapfile`).
"""

from tuibend.midi.curves import CURVES, to_position, to_value
from tuibend.midi.errors import MidiError, OscError
from tuibend.midi.input import ALL_PORTS, VIRTUAL_PORT, MidiInput
from tuibend.midi.mapfile import (
    default_map_path,
    load_mappings,
    mappings_from_tables,
    mappings_from_toml,
    mappings_to_toml,
    save_mappings,
)
from tuibend.midi.mapping import Mapping, default_map, merge
from tuibend.midi.messages import Message, MonitorEntry, decode
from tuibend.midi.osc import DEFAULT_OSC_PORT, OscServer
from tuibend.midi.ports import input_ports
from tuibend.midi.router import Router
from tuibend.midi.target import ControlTarget, parameter_range

__all__ = ["ALL_PORTS", "CURVES", "DEFAULT_OSC_PORT", "VIRTUAL_PORT", "ControlTarget", "Mapping", "Message",
           "MidiError", "MidiInput", "MonitorEntry", "OscError", "OscServer", "Router", "decode", "default_map",
           "default_map_path", "input_ports", "load_mappings", "mappings_from_tables", "mappings_from_toml",
           "mappings_to_toml", "merge", "parameter_range", "save_mappings", "to_position", "to_value"]
