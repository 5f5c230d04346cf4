"""Scenes: named chains of bends with their faders and automation, kept as TOML under ``scenes/``.

Loading validates every field; a fault is one :class:`SceneError` naming the file, the field
path and what is allowed. Saving writes a temporary file and renames it, and a saved scene
loads back equal.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from tuibend.atomic import atomic_path
from tuibend.bend.automation import CURVES, SHAPES, AutomationError, Breakpoints, Lane, Lfo
from tuibend.bend.registry import Bend, BendError, check_bend, parameter_range
from tuibend.bend.selection import CLUSTER_COUNTS, FEATURES, METHODS, Selection
from tuibend.dynamics import GateSettings, parse_gate
from tuibend.errors import InputError, TuibendError
from tuibend.keyboard import VoiceSettings, settings_from_table, settings_table
from tuibend.textfile import read_user_text


class SceneError(TuibendError, ValueError):
    """A scene file that cannot be used, with the file, the field and the fault."""


@dataclass
class Scene:
    name: str
    bends: list[Bend] = field(default_factory=list)
    automation: dict[tuple[int, str], Lane] = field(default_factory=dict)  # (bend index from 0, parameter)
    morph_seconds: float = 0.0
    model: str | None = None
    midi: list[dict] = field(default_factory=list)  # raw [[midi.map]] tables: tuibend.midi reads them
    # The noise gate while this scene plays: None (the performance's setting), "auto", "off" or a threshold
    # in dB; and whether its bends may sound through rests on purpose (a drone: the output is not faded).
    gate: str | None = None
    drone: bool = False
    keyboard: VoiceSettings | None = None  # how a keyboard plays while this scene plays (None: the performance's)

    def check(self, widths: dict[str, int], where: str = "scene") -> Scene:
        """Checks the bends against a model's bend points."""
        for index, bend in enumerate(self.bends, start=1):
            try:
                check_bend(bend, widths, f"bend[{index}]")
            except BendError as error:
                raise SceneError(f"{where}: {error}") from None
        return self


def _expect(value, kinds, where: str, what: str):
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise SceneError(f"{where}: expected {what}, got {value!r}")
    if not isinstance(value, kinds):
        raise SceneError(f"{where}: expected {what}, got {value!r}")
    return value


def _number(value, where: str) -> float:
    number = float(_expect(value, (int, float), where, "a number"))
    if not math.isfinite(number):
        raise SceneError(f"{where}: expected a finite number, got {value!r}")
    return number


def _known(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SceneError(f"{where}.{key}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _selection(table, where: str) -> Selection:
    table = _expect(table, dict, where, "a table such as { method = \"random\" }")
    _known(table, {"method", "feature", "cluster", "clusters"}, where)
    method = _expect(table.get("method", "random"), str, f"{where}.method", "a string")
    if method not in METHODS:
        raise SceneError(f"{where}.method: {method!r} is unknown (allowed: {', '.join(METHODS)})")
    feature = _expect(table.get("feature", "loudness"), str, f"{where}.feature", "a string")
    if feature not in FEATURES:
        raise SceneError(f"{where}.feature: {feature!r} is unknown (allowed: {', '.join(FEATURES)})")
    clusters = _expect(table.get("clusters", 8), int, f"{where}.clusters", "an integer")
    if clusters not in CLUSTER_COUNTS:
        raise SceneError(f"{where}.clusters: {clusters} (allowed: {', '.join(map(str, CLUSTER_COUNTS))})")
    cluster = _expect(table.get("cluster", 0), int, f"{where}.cluster", "an integer")
    if not 0 <= cluster < clusters:
        raise SceneError(f"{where}.cluster: {cluster} is outside 0..{clusters - 1}")
    return Selection(method, feature, cluster, clusters)


def _bend(table, where: str) -> Bend:
    """Types and presence here; names and ranges by the same check the rig applies."""
    table = _expect(table, dict, where, "a [[bend]] table")
    _known(table, {"point", "transform", "proportion", "select", "seed", "params"}, where)
    for required in ("point", "transform"):
        if required not in table:
            raise SceneError(f"{where}.{required}: missing")
    params = _expect(table.get("params", {}), dict, f"{where}.params", "a table of numbers")
    bend = Bend(point=_expect(table["point"], str, f"{where}.point", "a string"),
                transform=_expect(table["transform"], str, f"{where}.transform", "a string"),
                proportion=_number(table.get("proportion", 0.5), f"{where}.proportion"),
                select=_selection(table.get("select", {}), f"{where}.select"),
                seed=_expect(table.get("seed", 0), int, f"{where}.seed", "an integer"),
                params={name: _number(value, f"{where}.params.{name}") for name, value in params.items()})
    try:
        check_bend(bend, None, where)
    except BendError as error:
        raise SceneError(str(error)) from None
    return bend


def _lane(table, where: str) -> Lane:
    table = _expect(table, dict, where, "a lane table")
    kind = table.get("type")
    try:
        if kind == "breakpoints":
            _known(table, {"type", "times", "values", "curve", "loop"}, where)
            times = [_number(t, f"{where}.times") for t in _expect(table.get("times"), list, f"{where}.times",
                                                                     "a list of seconds")]
            values = [_number(v, f"{where}.values") for v in _expect(table.get("values"), list, f"{where}.values",
                                                                      "a list of numbers")]
            curve = _expect(table.get("curve", "linear"), str, f"{where}.curve", f"one of {', '.join(CURVES)}")
            return Breakpoints(times, values, curve, _expect(table.get("loop", False), bool, f"{where}.loop",
                                                             "true or false"))
        if kind == "lfo":
            _known(table, {"type", "shape", "rate_hz", "beats", "bpm", "minimum", "maximum", "phase", "seed"}, where)
            shape = _expect(table.get("shape", "sine"), str, f"{where}.shape", f"one of {', '.join(SHAPES)}")
            beats = _number(table["beats"], f"{where}.beats") if "beats" in table else None
            rate = _number(table["rate_hz"], f"{where}.rate_hz") if "rate_hz" in table else (None if beats else 1.0)
            return Lfo(shape, rate, beats, _number(table.get("bpm", 120.0), f"{where}.bpm"),
                       _number(table.get("minimum", 0.0), f"{where}.minimum"),
                       _number(table.get("maximum", 1.0), f"{where}.maximum"),
                       _number(table.get("phase", 0.0), f"{where}.phase"),
                       _expect(table.get("seed", 0), int, f"{where}.seed", "an integer"))
    except AutomationError as error:
        raise SceneError(f"{where}: {error}") from None
    raise SceneError(f"{where}.type: {kind!r} is unknown (allowed: breakpoints, lfo)")


def scene_from_toml(text: str, where: str = "scene") -> Scene:
    """Parses and validates a scene's TOML text; ``where`` names it in errors."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SceneError(f"{where}: unreadable TOML ({error})") from None
    _known(table, {"name", "model", "morph_seconds", "bend", "automation", "midi", "gate", "drone", "keyboard"}, where)
    if "name" not in table:
        raise SceneError(f"{where}.name: missing")
    bends = [_bend(b, f"{where}: bend[{i}]") for i, b in
             enumerate(_expect(table.get("bend", []), list, f"{where}: bend", "[[bend]] tables"), start=1)]
    automation = {}
    for address, lane in _expect(table.get("automation", {}), dict, f"{where}: automation", "a table").items():
        lane_where = f"{where}: automation.{address}"
        number, _, parameter = address.partition(".")
        if not number.isdigit() or not 1 <= int(number) <= len(bends):
            raise SceneError(f"{lane_where}: address lanes as BEND.PARAMETER with BEND in 1..{len(bends)}")
        bend = bends[int(number) - 1]
        if parameter not in bend.parameter_names():
            raise SceneError(f"{lane_where}: bend {number} ({bend.transform}) has parameters "
                             f"{', '.join(bend.parameter_names())}")
        automation[(int(number) - 1, parameter)] = _within(_lane(lane, lane_where), bend, parameter, lane_where)
    morph = _number(table.get("morph_seconds", 0.0), f"{where}: morph_seconds")
    if morph < 0:
        raise SceneError(f"{where}: morph_seconds: {morph} is negative")
    model = table.get("model")
    gate = table.get("gate")
    if gate is not None:
        gate = str(_expect(gate, (str, int, float), f"{where}: gate", "'auto', 'off' or a threshold in dB"))
        try:
            parse_gate(gate)
        except ValueError as error:
            raise SceneError(f"{where}: {error}") from None
    keyboard = None
    if "keyboard" in table:
        try:
            keyboard = settings_from_table(_expect(table["keyboard"], dict, f"{where}: keyboard", "a table"),
                                           f"{where}: keyboard")
        except InputError as error:
            raise SceneError(str(error)) from None
    return Scene(_expect(table["name"], str, f"{where}: name", "a string"), bends, automation, morph,
                 _expect(model, str, f"{where}: model", "a model name") if model is not None else None,
                 _midi(table.get("midi", {}), f"{where}: midi"), gate,
                 _expect(table.get("drone", False), bool, f"{where}: drone", "true or false"), keyboard)


def scene_gate(scene: Scene | None, default: GateSettings | None) -> GateSettings | None:
    """The gate a scene asks for, else ``default``."""
    if scene is None or scene.gate is None:
        return default
    return parse_gate(scene.gate)


def _within(lane: Lane, bend: Bend, parameter: str, where: str) -> Lane:
    """A lane whose values lie in its parameter's range (a gain lane of 1e30 once blasted into the limiter)."""
    low, high = parameter_range(bend.transform, parameter)
    values = lane.values if isinstance(lane, Breakpoints) else [lane.minimum, lane.maximum]
    for value in values:
        if not low <= value <= high:
            raise SceneError(f"{where}: {value} is outside {parameter}'s range [{low}, {high}]")
    return lane


def _midi(table, where: str) -> list[dict]:
    """A scene's ``[[midi.map]]`` tables, kept as they are: the MIDI side reads and checks their fields
    (``tuibend.midi.mapfile``), so a scene loads without MIDI's machinery."""
    table = _expect(table, dict, where, "a table with a map list")
    _known(table, {"map"}, where)
    entries = _expect(table.get("map", []), list, f"{where}.map", "a list of [[midi.map]] tables")
    for index, entry in enumerate(entries, start=1):
        _expect(entry, dict, f"{where}.map[{index}]", "a table")
    return entries


def _selection_table(selection: Selection) -> dict:
    """Only the options the method reads."""
    table = {"method": selection.method}
    if selection.method == "correlation":
        table["feature"] = selection.feature
    if selection.method == "cluster":
        table.update(cluster=selection.cluster, clusters=selection.clusters)
    return table


def scene_to_toml(scene: Scene) -> str:
    """The scene as TOML (defaults written out, so the file says everything)."""
    body: dict = {"name": scene.name}
    if scene.model is not None:
        body["model"] = scene.model
    body["morph_seconds"] = scene.morph_seconds
    if scene.gate is not None:
        body["gate"] = scene.gate
    if scene.drone:
        body["drone"] = True
    if scene.keyboard is not None:
        body["keyboard"] = settings_table(scene.keyboard)
    body["bend"] = [{"point": b.point, "transform": b.transform, "proportion": b.proportion, "seed": b.seed,
                     "select": _selection_table(b.select), "params": dict(b.params)} for b in scene.bends]
    lanes = {}
    for (index, parameter), lane in scene.automation.items():
        if isinstance(lane, Breakpoints):
            lanes[f"{index + 1}.{parameter}"] = {"type": "breakpoints", "times": lane.times, "values": lane.values,
                                                 "curve": lane.curve, "loop": lane.loop}
        else:
            entry = {"type": "lfo", "shape": lane.shape, "bpm": lane.bpm, "minimum": lane.minimum,
                     "maximum": lane.maximum, "phase": lane.phase, "seed": lane.seed}
            entry.update({"beats": lane.beats} if lane.beats else {"rate_hz": lane.rate_hz})
            lanes[f"{index + 1}.{parameter}"] = entry
    if lanes:
        body["automation"] = lanes
    if scene.midi:
        body["midi"] = {"map": scene.midi}
    return tomli_w.dumps(body)


def load_scene(path: str | os.PathLike) -> Scene:
    return scene_from_toml(read_user_text(path, SceneError, "scene file"), str(path))


def save_scene(path: str | os.PathLike, scene: Scene) -> Path:
    """Writes atomically: the old file stays whole until the new one is complete."""
    text = scene_to_toml(scene)
    scene_from_toml(text, str(path))  # never write what could not be read back
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
