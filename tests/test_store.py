"""The model folder: exact round trip, atomic saves, and one clear message per fault."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import tuibend
from tuibend.model.config import ModelConfig, ModelFormatError
from tuibend.model.store import load_model, save_model, save_timbre_model


def test_round_trip_is_exact(solo_model, tmp_path):
    path = save_timbre_model(tmp_path / "copy", solo_model)
    again = load_model(path)
    assert again.config == solo_model.config
    for name, value in solo_model.weights().items():
        np.testing.assert_array_equal(again.weights()[name], value)
    np.testing.assert_array_equal(again.statistics.loudness_quantiles, solo_model.statistics.loudness_quantiles)
    assert again.statistics.scalars == solo_model.statistics.scalars
    body = json.loads((path / "config.json").read_text())
    assert body["format"] == "tuibend-model" and body["format_version"] == 1
    assert body["decoder"]["ch"] == 512


def test_saving_over_a_model_replaces_it_whole(solo_model, tmp_path):
    path = save_timbre_model(tmp_path / "m", solo_model)
    renamed = ModelConfig(**{**solo_model.config.__dict__, "name": "renamed"})
    save_model(path, renamed, solo_model.weights(), solo_model.statistics)
    assert load_model(path).config.name == "renamed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging or retired folders left


def test_failed_save_leaves_the_old_model(solo_model, tmp_path):
    path = save_timbre_model(tmp_path / "m", solo_model)
    broken = dict(solo_model.weights())
    broken["gru/kernel"] = object()  # cannot be written as an array
    with pytest.raises((TypeError, ValueError)):
        save_model(path, solo_model.config, broken)
    assert load_model(path).config == solo_model.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.fixture
def model_copy(solo_model_dir, tmp_path):
    return shutil.copytree(solo_model_dir, tmp_path / "model")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: "{ not json", "config.json: not valid JSON"),
    (lambda c: c.replace('"tuibend-model"', '"other"'), "field 'format' must be"),
    (lambda c: c.replace('"format_version": 1', '"format_version": 9'), "format_version 9 is not supported"),
    (lambda c: c.replace('"frame_rate": 250', '"frame_rate": "fast"'), "frame_rate: expected int"),
    (lambda c: c.replace('"frame_rate": 250', '"frame_rate": 250, "colour": 3'), "colour: unknown field"),
    (lambda c: c.replace('"loudness": "v3"', '"loudness": "v9"'), "loudness 'v9' is not one of"),
    (lambda c: c.replace('"ch": 512', '"ch": 256'), "weights.npz: decoder weight"),
    (lambda c: c.replace('"layers_per_stack": 3', '"layers_per_stack": 1000000000'),
     "decoder.layers_per_stack 1000000000 is outside 1..16"),
    (lambda c: c.replace('"frame_rate": 250', '"frame_rate": 0'), "frame_rate 0 is outside 10..1000"),
    (lambda c: c.replace('"sample_rate": 16000', '"sample_rate": 1000000000000'),
     "sample_rate 1000000000000 is outside"),
    (lambda c: c.replace('"f0_range": 127.0', '"f0_range": 0.0'), "f0_range 0.0 is outside"),
    (lambda c: json.dumps({**json.loads(c), "output_gain_db": 90.0}), r"output_gain_db 90.0 is outside -40\.\.40"),
])
def test_broken_config_names_file_and_field(model_copy, edit, message):
    config = model_copy / "config.json"
    config.write_text(edit(config.read_text()))
    with pytest.raises(ModelFormatError, match=message):
        load_model(model_copy)


def test_a_config_that_is_not_text_is_refused_by_name(model_copy):
    (model_copy / "config.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ModelFormatError, match=r"config\.json: not UTF-8 text"):
        load_model(model_copy)


def test_non_finite_weights_are_refused_by_name(model_copy):
    with np.load(model_copy / "weights.npz") as archive:
        weights = dict(archive)
    weights["reverb/ir"] = np.full_like(weights["reverb/ir"], np.inf)
    np.savez(model_copy / "weights.npz", **weights)
    with pytest.raises(ModelFormatError, match=r"weights\.npz: weight 'reverb/ir' holds NaN or infinite values"):
        load_model(model_copy)


def test_weights_holding_pickled_objects_are_refused(model_copy):
    np.savez(model_copy / "weights.npz", evil=np.array([object()], dtype=object))
    with pytest.raises(ModelFormatError, match=r"weights\.npz: not a readable numpy archive"):
        load_model(model_copy)


def test_missing_pieces_are_named(model_copy, tmp_path, ddsp_checkpoint):
    with pytest.raises(ModelFormatError, match="no such model folder"):
        load_model(tmp_path / "absent")
    with pytest.raises(ModelFormatError, match=r"magenta-ddsp checkpoint.*import-ddsp"):
        tuibend.load_model(ddsp_checkpoint)
    (model_copy / "weights.npz").unlink()
    with pytest.raises(ModelFormatError, match=r"weights\.npz: missing"):
        load_model(model_copy)


def test_saving_keeps_training_state_and_drops_stale_caches(solo_model, tmp_path):
    path = save_timbre_model(tmp_path / "m", solo_model)
    (path / "training").mkdir()
    (path / "training" / "checkpoint").write_text("state")
    (path / "units.npz").write_bytes(b"derived from the old weights")
    save_timbre_model(path, solo_model)
    assert (path / "training" / "checkpoint").read_text() == "state"
    assert not (path / "units.npz").exists()
