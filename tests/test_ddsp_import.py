"""Importing a genuine magenta-ddsp checkpoint: parity with ddsp's own outputs, and clear refusals."""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import relative_error

import tuibend
from tuibend.model.config import ModelFormatError
from tuibend.model.ddsp_import import import_ddsp, parse_gin, read_checkpoint
from tuibend.model.safe_pickle import UnsafePickleError, restricted_loads


def test_preprocessor_outputs_equal_golden(solo_model, golden):
    loudness = solo_model.loudness(golden["audio"])
    assert loudness.shape == golden["loudness_db"].shape
    np.testing.assert_allclose(loudness, golden["loudness_db"], atol=0.01)
    scaled = solo_model.scale_inputs(golden["f0_hz"][None, :, None], golden["loudness_db"][None, :, None])
    np.testing.assert_allclose(scaled["f0_scaled"][0, :, 0], golden["f0_scaled"], atol=1e-6)
    np.testing.assert_allclose(scaled["ld_scaled"][0, :, 0], golden["ld_scaled"], atol=1e-6)


def test_decoder_outputs_equal_golden(solo_model, golden):
    raw, _ = solo_model.raw_controls(tf.constant(golden["f0_hz"][None, :, None]),
                                     tf.constant(golden["loudness_db"][None, :, None]))
    np.testing.assert_allclose(raw["amps"][0], golden["raw_amps"], atol=1e-4)
    np.testing.assert_allclose(raw["harmonics"][0], golden["raw_harmonic_distribution"], atol=1e-4)
    np.testing.assert_allclose(raw["noise"][0], golden["raw_noise_magnitudes"], atol=1e-4)
    controls = solo_model.controls(golden["f0_hz"], golden["loudness_db"])
    for name in ("amplitudes", "harmonic_distribution", "noise_magnitudes"):
        np.testing.assert_allclose(controls[name], golden[name], rtol=1e-4, atol=1e-6)


def test_harmonic_audio_equals_golden(solo_model, golden):
    controls = {name: golden[name] for name in ("amplitudes", "harmonic_distribution", "noise_magnitudes")}
    out = solo_model.synthesize(controls, golden["f0_hz"], precise_phase=False)
    assert relative_error(out["harmonic"], golden["harmonic_audio"]) < 1e-3
    # From the audio alone, through our loudness and decoder, to ddsp's harmonic audio.
    ours = solo_model.controls(golden["f0_hz"], solo_model.loudness(golden["audio"]))
    audio = solo_model.synthesize(ours, golden["f0_hz"], precise_phase=False)["harmonic"]
    assert relative_error(audio, golden["harmonic_audio"]) < 1e-3


def test_reverb_and_statistics_are_imported(solo_model, golden):
    np.testing.assert_array_equal(solo_model.reverb_ir.numpy(), golden["reverb_ir"])
    stats = solo_model.statistics
    assert stats.mean_pitch == pytest.approx(60.5119, abs=1e-3)
    assert stats.loudness_quantiles.shape == (1000,)
    assert np.all(np.diff(stats.loudness_quantiles) >= 0)
    assert stats.quantile_references[0] == 0.0 and stats.quantile_references[-1] == pytest.approx(1.0)
    config = solo_model.config
    assert (config.decoder.ch, config.decoder.layers_per_stack, config.decoder.rnn_channels) == (512, 3, 512)
    assert config.loudness == "v3" and config.reverb and config.reverb_length == 48000


def _copy_ddsp_folder(source: Path, destination: Path, skip: tuple[str, ...] = ()) -> Path:
    destination.mkdir()
    for path in source.iterdir():
        if path.name not in skip:
            os.symlink(path, destination / path.name)
    return destination


def _write_checkpoint(variables: dict[str, np.ndarray], prefix: Path) -> None:
    """Saves variables under their checkpoint names through a tree of trackable objects."""
    root = tf.Module()
    for name, value in variables.items():
        parts = name.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE").split("/")
        node = root
        for part in parts[:-1]:
            if not hasattr(node, part):
                setattr(node, part, tf.Module())
            node = getattr(node, part)
        setattr(node, parts[-1], tf.Variable(value))
    tf.train.Checkpoint(model=root.model).write(str(prefix))


def test_checkpoint_without_optimizer_slots_imports_the_same(ddsp_checkpoint, golden, tmp_path):
    variables = read_checkpoint(ddsp_checkpoint / "ckpt-3")
    source = _copy_ddsp_folder(ddsp_checkpoint, tmp_path / "no_slots", skip=("ckpt-3.index",
                                                                             "ckpt-3.data-00000-of-00001"))
    _write_checkpoint(variables, source / "ckpt-12")
    assert not any("OPTIMIZER_SLOT" in name for name, _ in tf.train.list_variables(str(source / "ckpt-12")))
    model = tuibend.load_model(import_ddsp(source, tmp_path / "model"))
    raw, _ = model.raw_controls(tf.constant(golden["f0_hz"][None, :, None]),
                                tf.constant(golden["loudness_db"][None, :, None]))
    np.testing.assert_allclose(raw["harmonics"][0], golden["raw_harmonic_distribution"], atol=1e-4)


def test_newest_checkpoint_is_chosen_by_its_files(ddsp_checkpoint, tmp_path):
    variables = read_checkpoint(ddsp_checkpoint / "ckpt-3")
    source = _copy_ddsp_folder(ddsp_checkpoint, tmp_path / "two")
    changed = {**variables, "model/decoder/dense_out/bias/.ATTRIBUTES/VARIABLE_VALUE": np.full(126, 0.25, np.float32)}
    _write_checkpoint(changed, source / "ckpt-40")
    model = tuibend.load_model(import_ddsp(source, tmp_path / "model"))
    np.testing.assert_array_equal(model.decoder.variables_by_name["dense_out/bias"].numpy(), 0.25)


def test_gin_is_read_as_text(ddsp_checkpoint):
    bindings = parse_gin((ddsp_checkpoint / "operative_config-0.gin").read_text())
    assert bindings["RnnFcDecoder.ch"] == 512
    assert bindings["RnnFcDecoder.output_splits"] == (("amps", 1), ("harmonic_distribution", 60),
                                                      ("noise_magnitudes", 65))
    assert "Reverb" in bindings["ProcessorGroup.dag"]
    assert bindings["Autoencoder.decoder"] == "@decoders.RnnFcDecoder()"


@pytest.mark.parametrize(("missing", "message"), [
    ("operative_config-0.gin", "operative_config"),
    ("ckpt-3.index", "no checkpoint"),
    ("ckpt-3.data-00000-of-00001", "ckpt-3.data"),
])
def test_folder_lacking_a_file_is_refused_by_name(ddsp_checkpoint, tmp_path, missing, message):
    source = _copy_ddsp_folder(ddsp_checkpoint, tmp_path / "partial", skip=(missing,))
    with pytest.raises(ModelFormatError, match=message):
        import_ddsp(source, tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(("find", "replace", "message"), [
    ("RnnFcDecoder.rnn_type = 'gru'", "RnnFcDecoder.rnn_type = 'lstm'", "rnn_type is 'lstm'"),
    ("Autoencoder.encoder = None", "Autoencoder.encoder = @encoders.MfccTimeDistributedRnnEncoder()",
     "has an encoder"),
    ("RnnFcDecoder.ch = 512", "RnnFcDecoder.ch = 256", "should be"),
])
def test_other_architecture_is_refused_with_the_reason(ddsp_checkpoint, tmp_path, find, replace, message):
    source = _copy_ddsp_folder(ddsp_checkpoint, tmp_path / "other", skip=("operative_config-0.gin",))
    gin = (ddsp_checkpoint / "operative_config-0.gin").read_text()
    assert find in gin
    (source / "operative_config-0.gin").write_text(gin.replace(find, replace))
    with pytest.raises(ModelFormatError, match=message):
        import_ddsp(source, tmp_path / "model")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_statistics_pickle_that_runs_code_is_refused(ddsp_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = _copy_ddsp_folder(ddsp_checkpoint, tmp_path / "evil", skip=("dataset_statistics.pkl",))
    (source / "dataset_statistics.pkl").write_bytes(pickle.dumps({"mean_pitch": _Exploit()}))
    with pytest.raises(ModelFormatError, match=r"dataset_statistics.pkl: refused to load (posix|os)\.system"):
        import_ddsp(source, tmp_path / "model")
    assert not (tmp_path / "pwned-by-pickle").exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(shutil.rmtree),
    pickle.dumps({"a": np.array([1.0]), "b": Path("/")}),
    b"not a pickle",
])
def test_restricted_unpickler_admits_only_numpy_and_statistics(payload):
    with pytest.raises(UnsafePickleError):
        restricted_loads(payload)


def test_restricted_unpickler_reads_numpy_values():
    value = {"mean": np.float32(3.5), "table": np.arange(6, dtype=np.float64).reshape(3, 2)}
    loaded = restricted_loads(pickle.dumps(value))
    assert loaded["mean"] == np.float32(3.5)
    np.testing.assert_array_equal(loaded["table"], value["table"])


def test_ddsp_1x_checkpoint_layout_imports(ddsp_checkpoint, golden, tmp_path):
    """ddsp 1.x named its stacks f_stack / l_stack (flat Sequential layers) and joined f0 first.

    The fixture's weights are rewritten into that layout, with the rows of the layers that read
    the joined stacks swapped to match the other order: the model must sound the same.
    """
    variables = read_checkpoint(ddsp_checkpoint / "ckpt-3")
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    nested = re.compile(r"model/decoder/(input_stacks/\d|out_stack)/layer_with_weights-(\d)/layer_with_weights-(\d)/"
                        r"(\w+)/")
    legacy = {}
    for name, value in variables.items():
        match = nested.match(name)
        if match:  # nested Fc blocks -> one flat Sequential: Dense at 2i, LayerNormalization at 2i + 1
            stack, layer, part, leaf = match.groups()
            stack = {"input_stacks/0": "l_stack", "input_stacks/1": "f_stack"}.get(stack, stack)
            name = f"model/decoder/{stack}/layer_with_weights-{2 * int(layer) + int(part)}/{leaf}{suffix}"
        legacy[name.replace("/rnn/rnn/cell/", "/rnn/cell/")] = value

    def swap_stacks(kernel):  # rows [ld | f0 | ...] -> [f0 | ld | ...]
        return np.concatenate([kernel[512:1024], kernel[:512], kernel[1024:]])

    gru = f"model/decoder/rnn/cell/kernel{suffix}"
    legacy[gru] = swap_stacks(legacy[gru])
    first_out = f"model/decoder/out_stack/layer_with_weights-0/kernel{suffix}"
    legacy[first_out] = swap_stacks(legacy[first_out])
    source = _copy_ddsp_folder(ddsp_checkpoint, tmp_path / "v1", skip=("ckpt-3.index", "ckpt-3.data-00000-of-00001",
                                                                       "operative_config-0.gin"))
    _write_checkpoint(legacy, source / "ckpt-5")
    gin = (ddsp_checkpoint / "operative_config-0.gin").read_text()
    gin = gin.replace("RnnFcDecoder.input_keys = ('ld_scaled', 'f0_scaled')\n", "")
    (source / "operative_config-0.gin").write_text(gin)
    model = tuibend.load_model(import_ddsp(source, tmp_path / "model", loudness="v3"))
    assert model.config.decoder.input_keys == ("f0_scaled", "ld_scaled")
    raw, _ = model.raw_controls(tf.constant(golden["f0_hz"][None, :, None]),
                                tf.constant(golden["loudness_db"][None, :, None]))
    np.testing.assert_allclose(raw["harmonics"][0], golden["raw_harmonic_distribution"], atol=1e-4)
    np.testing.assert_allclose(raw["noise"][0], golden["raw_noise_magnitudes"], atol=1e-4)


def test_restricted_unpickler_refuses_object_arrays():
    with pytest.raises(UnsafePickleError, match="object-dtype"):
        restricted_loads(pickle.dumps({"a": np.array([1, "x", None], dtype=object)}))


class _HugeArray:
    """Pickles as numpy's own array reduction, claiming 10^13 doubles over no data."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (0,), b"b"), (1, (10**13,), np.dtype("float64"), False, b"")


def test_restricted_unpickler_bounds_array_sizes_before_allocating():
    payload = pickle.dumps({"quantiles": _HugeArray()})
    with pytest.raises(UnsafePickleError, match=r"shape \(10000000000000,\) .* is refused"):
        restricted_loads(payload)
    with pytest.raises(UnsafePickleError, match=r"shape \(5,\) holds 32 bytes of data"):  # data short of its shape
        restricted_loads(pickle.dumps(np.arange(4.0)).replace(b"K\x01K\x04\x85", b"K\x01K\x05\x85"))
    big = np.zeros(1000, np.float64)  # what ddsp writes passes, as an ordinary array
    loaded = restricted_loads(pickle.dumps({"quantiles": big}))["quantiles"]
    assert np.asarray(loaded).shape == (1000,) and type(np.asarray(loaded)) is np.ndarray
