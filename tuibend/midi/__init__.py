"""MIDI and OSC control: faders, mappings with learn and soft takeover, scene recall, remote control.

Controllers push into the engine through :class:`ControlTarget` (the engine's non-blocking setters);
nothing here knows the interface. :class:`MidiInput` listens to MIDI ports, :class:`OscServer` to
OSC over UDP; mappings live in TOML files (:mod:`tuibend.midi.mapfile`). Names load on first use, so
that reading a map or a scene's ``[midi]`` tables needs neither rtmidi nor an OSC library.
"""

from __future__ import annotations

from tuibend.lazy import lazy_exports

_LAZY = {
    "CURVES": "curves", "to_position": "curves", "to_value": "curves", "MidiError": "errors", "OscError": "errors",
    "ALL_PORTS": "input", "VIRTUAL_PORT": "input", "MidiInput": "input", "default_map_path": "mapfile",
    "load_mappings": "mapfile", "mappings_from_tables": "mapfile", "mappings_from_toml": "mapfile",
    "mappings_to_toml": "mapfile", "save_mappings": "mapfile", "Mapping": "mapping", "default_map": "mapping",
    "merge": "mapping", "Message": "messages", "decode": "messages",
    "PitchOut": "output", "DEFAULT_OSC_PORT": "osc", "OscServer": "osc", "OscTelemetry": "osc",
    "input_ports": "ports", "Router": "router",
    "ControlTarget": "target", "parameter_range": "target",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
