"""Mapping files: a ``[[map]]`` list in TOML, global (``~/.config/tuibend/midi.toml``) or a scene's own.

In a file, bends and scenes count from 1 as on screen, and a range is ``range = [minimum, maximum]``.
Loading checks every field; a fault is one :class:`MidiError` naming the file, the entry and the field.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import fields
from pathlib import Path

import tomli_w

from tuibend.atomic import atomic_path
from tuibend.midi.errors import MidiError
from tuibend.midi.mapping import Mapping, default_map
from tuibend.places import user_config
from tuibend.textfile import read_user_text

_INTEGERS = ("number", "channel", "bend", "scene")
_NUMBERS = ("amount", "value", "attack", "release")
_FIELDS = {"source", "param", "range", "curve", "takeover", *_INTEGERS, *_NUMBERS}
_DEFAULTS = {f.name: f.default for f in fields(Mapping)}


def default_map_path() -> Path:
    """``midi.toml`` in the user's config folder (``~/.config/tuibend`` on Linux)."""
    return user_config("midi.toml")


def _expect(value, kinds, where: str, what: str):
    if isinstance(value, bool) is not (kinds is bool) or not isinstance(value, kinds):
        raise MidiError(f"{where}: expected {what}, got {value!r}")
    return value


def mapping_from_table(table, where: str) -> Mapping:
    """One ``[[map]]`` entry; ``where`` names it in errors (``midi.toml: map[2]``)."""
    table = _expect(table, dict, where, "a [[map]] table")
    for key in table:
        if key not in _FIELDS:
            raise MidiError(f"{where}.{key}: unknown field (allowed: {', '.join(sorted(_FIELDS))})")
    if "source" not in table:
        raise MidiError(f"{where}.source: missing (cc, cc14, note or program)")
    values: dict = {"source": _expect(table["source"], str, f"{where}.source", "cc, cc14, note or program")}
    for key in _INTEGERS:
        if key in table:
            values[key] = _expect(table[key], int, f"{where}.{key}", "an integer")
    for key in ("bend", "scene"):
        if key in values:
            values[key] -= 1  # counted from 1 in files
    for key in _NUMBERS:
        if key in table:
            values[key] = _finite(table[key], f"{where}.{key}")
    for key in ("param", "curve"):
        if key in table:
            values[key] = _expect(table[key], str, f"{where}.{key}", "a string")
    if "takeover" in table:
        values["takeover"] = _expect(table["takeover"], bool, f"{where}.takeover", "true or false")
    if "range" in table:
        ends = _expect(table["range"], list, f"{where}.range", "[minimum, maximum]")
        if len(ends) != 2:
            raise MidiError(f"{where}.range: expected [minimum, maximum], got {ends!r}")
        values["minimum"], values["maximum"] = (_finite(end, f"{where}.range") for end in ends)
    try:
        return Mapping(**values)
    except MidiError as error:
        raise MidiError(f"{where}.{error}") from None


def _finite(value, where: str) -> float:
    """A number that is neither NaN nor infinite (an attack of NaN once muted the output for good)."""
    number = float(_expect(value, (int, float), where, "a number"))
    if not math.isfinite(number):
        raise MidiError(f"{where}: expected a finite number, got {value!r}")
    return number


def mappings_from_tables(tables, where: str) -> list[Mapping]:
    """A ``[[map]]`` list (a scene's ``[[midi.map]]`` too); ``where`` names the list in errors."""
    tables = _expect(tables, list, where, "a list of [[map]] tables")
    return [mapping_from_table(table, f"{where}[{index}]") for index, table in enumerate(tables, start=1)]


def mapping_table(mapping: Mapping) -> dict:
    """The file form: what differs from the defaults, and always the source and its target."""
    table: dict = {"source": mapping.source}
    for name, default in _DEFAULTS.items():
        value = getattr(mapping, name)
        if name in ("source", "minimum", "maximum") or value is None or (value == default and name != "number"):
            continue
        table[name] = value + 1 if name in ("bend", "scene") else value
    if mapping.source == "program":
        table.pop("number")
    if mapping.bend is not None:
        table["param"] = mapping.param
    if mapping.minimum is not None:
        table["range"] = [mapping.minimum, mapping.maximum]
    return table


def mappings_from_toml(text: str, where: str = "midi map") -> list[Mapping]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MidiError(f"{where}: unreadable TOML ({error})") from None
    for key in document:
        if key != "map":
            raise MidiError(f"{where}: {key}: unknown field (a mapping file holds [[map]] tables)")
    return mappings_from_tables(document.get("map", []), f"{where}: map")


def mappings_to_toml(mappings: list[Mapping]) -> str:
    return tomli_w.dumps({"map": [mapping_table(mapping) for mapping in mappings]})


def load_mappings(path: str | os.PathLike | None = None) -> list[Mapping]:
    """The map in ``path``; with no path, the global file, or the default map while there is none."""
    if path is None and not default_map_path().exists():
        return default_map()
    path = Path(path) if path is not None else default_map_path()
    return mappings_from_toml(read_user_text(path, MidiError, "mapping file"), str(path))


def save_mappings(mappings: list[Mapping], path: str | os.PathLike | None = None) -> Path:
    """Writes atomically (the old file stays whole until the new one is complete)."""
    path = Path(path) if path is not None else default_map_path()
    text = mappings_to_toml(mappings)
    mappings_from_toml(text, str(path))  # never write what could not be read back
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path
