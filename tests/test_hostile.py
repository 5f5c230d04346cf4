"""Arbitrary values in the files a performer hands tuibend: accepted and played finite, or refused in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuibend.bend.rig import BendController, BendRig
from tuibend.bend.scene import SceneError, scene_from_toml
from tuibend.engine.errors import EngineError
from tuibend.engine.events import read_events
from tuibend.midi.errors import MidiError
from tuibend.midi.mapfile import load_mappings
from tuibend.model.layout import point_widths
from tuibend.native.stream import NativeStream

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**40, 2**40),
                    st.sampled_from([0, 1, -1, 0.5, 1e30, -1e30]))
VALUES = st.one_of(NUMBERS, st.text(max_size=8), st.booleans())


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


@st.composite
def scene_texts(draw) -> str:
    """A scene file whose fields take arbitrary values (and sometimes plausible ones)."""
    lines = [f"name = {toml_value(draw(st.text(max_size=6)))}"]
    if draw(st.booleans()):
        lines.append(f"morph_seconds = {toml_value(draw(NUMBERS))}")
    if draw(st.booleans()):
        lines.append(f"gate = {toml_value(draw(st.one_of(VALUES, st.sampled_from(['auto', 'off', '-35']))))}")
    transforms = st.sampled_from(["oscillate", "scale", "offset", "threshold", "noise", "quantise", "clamp", "boom"])
    points = st.sampled_from(["fc1", "gru", "fc2", "amps", "harmonics", "noise", "elsewhere"])
    for _ in range(draw(st.integers(0, 3))):
        lines += ["[[bend]]", f"point = {toml_value(draw(points))}", f"transform = {toml_value(draw(transforms))}",
                  f"proportion = {toml_value(draw(st.one_of(NUMBERS, st.floats(0, 1))))}",
                  f"seed = {toml_value(draw(st.one_of(NUMBERS, st.integers(0, 9))))}",
                  "[bend.params]"]
        for name in draw(st.lists(st.sampled_from(["freq", "depth", "gain", "amount", "thresh", "step", "x"]),
                                  max_size=2, unique=True)):
            lines.append(f"{name} = {toml_value(draw(st.one_of(NUMBERS, st.floats(-2, 2))))}")
    if draw(st.booleans()):
        lines += ['[automation."1.proportion"]', 'type = "breakpoints"',
                  f"times = [0.0, {toml_value(draw(NUMBERS))}]", f"values = [0.0, {toml_value(draw(NUMBERS))}]"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def widths(choir_model):
    return point_widths(choir_model.config.decoder)


def test_any_scene_file_is_refused_in_one_line_or_plays_finite(choir_model, widths):
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scene_texts())
    def check(text: str) -> None:
        try:
            scene = scene_from_toml(text, "drawn.toml").check(widths, "drawn.toml")
        except SceneError as error:
            assert str(error).startswith("drawn.toml") and "\n" not in str(error)
            return
        if any(bend.select.method != "random" for bend in scene.bends):
            return  # informed selections need the model's unit statistics: covered elsewhere
        rig = BendRig(scene.bends, widths, 4, graph=False)
        controller = BendController(rig, 250.0, scene.automation)
        stream = NativeStream(choir_model, rig, 4)
        for _ in range(8):  # every value the model is handed is finite (a blow-up inside it is the guard's)
            controller.advance()
            assert np.all(np.isfinite(rig.latest))
            stream.step(np.full(4, 220.0, np.float32), np.full(4, -20.0, np.float32))

    check()


def test_any_events_log_line_is_refused_with_its_line_or_replays(tmp_path):
    targets = st.sampled_from(["bend1.proportion", "bend2.gain", "gain", "bypass", "scene", "transport", "panic",
                               "bendx.y"])
    values = st.one_of(VALUES, st.none(), st.sampled_from(["seek nan", "seek 1.5", "seek -1", "play", "record lane"]))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.fixed_dictionaries({"t": st.one_of(NUMBERS, st.floats(0, 10)), "source": st.just("tui"),
                                           "target": targets, "value": values}), min_size=1, max_size=4))
    def check(records) -> None:
        path = tmp_path / "events.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        try:
            events = read_events(path)
        except EngineError as error:
            assert str(error).startswith(f"{path}:") and "\n" not in str(error)
            return
        for event in events:
            assert math.isfinite(event.t)
            if event.target in ("gain",):
                assert math.isfinite(event.value)

    check()


def test_a_binary_events_log_is_refused_with_its_name(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(EngineError, match=f"{path}: not an events log"):
        read_events(path)


def test_any_midi_map_entry_is_refused_in_one_line_or_loads_finite(tmp_path):
    fields = st.sampled_from(["amount", "attack", "release", "range", "channel", "number", "bend", "curve"])

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(fields, st.one_of(VALUES, st.lists(NUMBERS, max_size=3)), max_size=4))
    def check(entry) -> None:
        body = ['[[map]]', 'source = "note"', "number = 60"] if "number" not in entry else ['[[map]]', 'source = "cc"']
        body += [f"{key} = [{', '.join(toml_value(v) for v in value)}]" if isinstance(value, list)
                 else f"{key} = {toml_value(value)}" for key, value in entry.items()]
        path = tmp_path / "midi.toml"
        path.write_text("\n".join(body) + "\n")
        try:
            mappings = load_mappings(path)
        except MidiError as error:
            assert str(error).startswith(str(path)) and "\n" not in str(error)
            return
        for mapping in mappings:
            for value in vars(mapping).values():
                if isinstance(value, float):
                    assert math.isfinite(value)

    check()
