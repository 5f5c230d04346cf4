"""Pre-analysed files (any rate and channels, cached, clear errors) and the offline render."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import soxr
import tensorflow as tf
from conftest import relative_error

from tuibend.adjust import Adjustment, adjust, detect_notes
from tuibend.audiofile import AudioFileError, read_audio
from tuibend.pitch import files
from tuibend.pitch.analysis import Features
from tuibend.render import render_features


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def flute(crepe_reference):
    return crepe_reference["flute_audio"][:48000]


@pytest.fixture
def flute_44k_stereo(flute, tmp_path):
    audio = soxr.resample(flute, 16000, 44100)
    path = tmp_path / "flute44.wav"
    soundfile.write(path, np.stack([audio, 0.5 * audio], axis=1), 44100, subtype="PCM_24")
    return path


def test_any_rate_and_channel_count_is_analysed_like_the_original(flute, flute_44k_stereo):
    from_file = files.analyze(flute_44k_stereo, tracker="yin")
    direct = files.analyze(0.75 * flute, sample_rate=16000, tracker="yin", use_cache=False)
    assert abs(len(from_file) - len(direct)) <= 1
    n = min(len(from_file), len(direct))
    voiced = direct.confidence[:n] > 0.9
    cents = np.abs(1200 * np.log2(from_file.f0_hz[:n][voiced] / direct.f0_hz[:n][voiced]))
    assert np.median(cents) < 2.0
    loud = direct.loudness_db[:n] > -50
    assert np.median(np.abs(from_file.loudness_db[:n][loud] - direct.loudness_db[:n][loud])) < 0.5


def test_features_are_cached_by_content_and_settings(flute_44k_stereo, tmp_path, monkeypatch):
    first = files.analyze(flute_44k_stereo, tracker="yin")
    entries = list((tmp_path / "xdg-cache" / "tuibend" / "analysis").glob("*.npz"))
    assert len(entries) == 1

    def no_analysis(*args, **kwargs):
        raise AssertionError("analysed again although the cache holds the answer")

    monkeypatch.setattr(files, "analyze_audio", no_analysis)
    again = files.analyze(flute_44k_stereo, tracker="yin")
    np.testing.assert_array_equal(again.f0_hz, first.f0_hz)
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    files.analyze(flute_44k_stereo, tracker="yin", loudness="v1")  # another setting: another entry
    audio, rate = soundfile.read(flute_44k_stereo)
    soundfile.write(flute_44k_stereo, audio * 0.5, rate, subtype="PCM_24")  # another content: another entry
    changed = files.analyze(flute_44k_stereo, tracker="yin")
    assert len(list((tmp_path / "xdg-cache" / "tuibend" / "analysis").glob("*.npz"))) == 3
    assert np.median(first.loudness_db - changed.loudness_db) == pytest.approx(20 * np.log10(2), abs=0.3)


def test_damaged_cache_entry_is_recomputed(flute_44k_stereo, tmp_path):
    first = files.analyze(flute_44k_stereo, tracker="yin")
    (entry,) = (tmp_path / "xdg-cache" / "tuibend" / "analysis").glob("*.npz")
    entry.write_bytes(b"garbage")
    np.testing.assert_array_equal(files.analyze(flute_44k_stereo, tracker="yin").f0_hz, first.f0_hz)


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "notes.wav").write_text("these are not samples")
    soundfile.write(tmp_path / "silent.wav", np.zeros(16000), 16000)
    nan = np.sin(np.arange(16000) / 10.0).astype(np.float32)
    nan[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    cases = {"absent.wav": "no such file", "notes.wav": "not a readable audio file", "silent.wav": "is silent",
             "nan.wav": "holds 1 NaN or infinite samples", "empty.wav": "holds no samples"}
    for name, message in cases.items():
        with pytest.raises(AudioFileError, match=message) as caught:
            read_audio(tmp_path / name, 16000)
        assert name in str(caught.value)
    with pytest.raises(ValueError, match="sample_rate"):
        files.analyze(np.ones(100))


def test_auto_adjust_moves_register_and_maps_loudness(solo_model, flute):
    features = files.analyze(flute, sample_rate=16000, use_cache=False)
    lowered = Features(features.f0_hz / 4.0, features.confidence, features.loudness_db - 12.0)
    adjusted, report = adjust(lowered, solo_model.statistics, Adjustment())
    assert report["notes_detected"] and report["loudness_mapped"]
    mask_on, _ = detect_notes(lowered.loudness_db, lowered.confidence)
    midi = lambda f0: 12 * np.log2(f0[mask_on] / 440.0) + 69  # noqa: E731
    target = solo_model.statistics.mean_pitch
    assert report["octaves"] >= 1  # two octaves below the flute's register: lifted
    np.testing.assert_allclose(adjusted.f0_hz, lowered.f0_hz * 2.0 ** report["octaves"], rtol=1e-6)
    assert abs(np.mean(midi(adjusted.f0_hz)) - target) <= 6.0  # the nearest octave to the model's mean
    quantiles = solo_model.statistics.loudness_quantiles
    assert np.median(adjusted.loudness_db[mask_on]) == pytest.approx(np.median(quantiles), abs=1.0)
    manual, _ = adjust(lowered, solo_model.statistics,
                       Adjustment(octave_shift=False, loudness_quantiles=False, pitch_shift_semitones=12,
                                  loudness_shift_db=-6))
    np.testing.assert_allclose(manual.f0_hz, lowered.f0_hz * 2.0, rtol=1e-6)
    np.testing.assert_allclose(manual.loudness_db, lowered.loudness_db - 6.0, atol=1e-4)


def _silence_noise(point, activations):
    """Noise to its floor and the harmonics loud: the render is then deterministic."""
    if point == "noise":
        return tf.fill(tf.shape(activations), -100.0)
    return activations + 5.0 if point == "amps" else activations


def test_block_render_equals_whole_signal_render(solo_model, golden):
    features = Features(golden["f0_hz"][:700], np.ones(700, np.float32), golden["loudness_db"][:700])
    blocks = render_features(solo_model, features, hook=_silence_noise, block_seconds=0.5)
    whole = solo_model.render(features.f0_hz, features.loudness_db, hook=_silence_noise)
    assert blocks.shape == whole.shape == (700 * 64,)
    assert relative_error(blocks, whole) < 1e-4


def test_one_stream_renders_many_times_as_fresh_ones(solo_model, golden):
    """A compiled stream and its bend controller, reused with a new proportion, render what a fresh
    scene render does (reset state, restarted oscillator and lanes): the bench reuses them."""
    from dataclasses import replace

    from tuibend.bend.registry import Bend
    from tuibend.bend.rig import control_scene
    from tuibend.bend.scene import Scene
    from tuibend.model.layout import point_widths
    from tuibend.render import stream_features

    features = Features(golden["f0_hz"][:300], np.ones(300, np.float32), golden["loudness_db"][:300])
    bend = Bend("fc1", "oscillate", 0.2, seed=1, params={"freq": 3.0, "depth": 1.0})
    controller = control_scene([bend], {}, point_widths(solo_model.config.decoder), 250, 250.0)
    stream = solo_model.stream(250, hook=controller.rig.hook)
    first = stream_features(stream, features, controller)
    for proportion in (0.7, 0.2):
        controller.jump({(0, "proportion"): proportion})
        again = stream_features(stream, features, controller)
        fresh = render_features(solo_model, features, scene=Scene("s", [replace(bend, proportion=proportion)]))
        np.testing.assert_allclose(again, fresh, atol=1e-5)
    np.testing.assert_allclose(again, first, atol=1e-5)
    assert relative_error(render_features(solo_model, features, scene=Scene("s", [replace(bend, proportion=0.7)])),
                          first) > 0.01  # the proportion matters


@pytest.mark.parametrize("block_frames", [4, 64])
def test_a_render_gates_and_levels_each_block_against_its_own_input(choir_model, block_frames):
    """A render's blocks, short (the engine's 256 samples) or long (the kernel's 4096, shaped in 1024-sample
    pieces), are gated and levelled as the engine does it: each piece against the dry input of the same
    samples, never of the samples after it."""
    from tuibend.bend.rig import BendRig
    from tuibend.dynamics import Dynamics
    from tuibend.model.layout import point_widths
    from tuibend.native.stream import NativeStream
    from tuibend.render import SHAPE_SAMPLES, stream_features

    hop, frames = choir_model.config.hop, 512
    t = np.arange(frames * hop) / choir_model.config.sample_rate
    swell = (0.02 + 0.3 * t / t[-1]) * (t % 0.5 < 0.3)  # notes and rests, louder as they go
    dry = (swell * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    loudness = np.array([20 * np.log10(np.sqrt(np.mean(dry[i * hop:(i + 1) * hop] ** 2)) + 1e-6)
                         for i in range(frames)], np.float32)
    features = Features(np.full(frames, 220.0, np.float32), np.ones(frames, np.float32), loudness)

    def stream() -> NativeStream:
        return NativeStream(choir_model, BendRig([], point_widths(choir_model.config.decoder), block_frames,
                                                 graph=False), block_frames, bfloat16=False)

    rendered = stream_features(stream(), features, dynamics=Dynamics.for_model(choir_model.config), dry=dry)
    dynamics, native, expected = Dynamics.for_model(choir_model.config), stream(), []
    f0 = np.concatenate([features.f0_hz, np.full(block_frames, 220.0, np.float32)])
    levels = np.concatenate([loudness, np.full(block_frames, loudness[-1], np.float32)])
    padded = np.concatenate([dry, np.zeros(block_frames * hop, np.float32)])
    for first in range(0, frames + 1, block_frames):  # as the engine: hear, step, shape each piece
        block = slice(first, first + block_frames)
        audio = native.step(f0[block], dynamics.hear(levels[block], levels[block]))
        for start in range(0, len(audio), SHAPE_SAMPLES):
            at = first * hop + start
            expected.append(dynamics.shape(audio[start:start + SHAPE_SAMPLES], padded[at:at + min(
                SHAPE_SAMPLES, len(audio) - start)]))
    np.testing.assert_array_equal(rendered, np.concatenate(expected)[hop:hop + frames * hop])


def test_render_command_end_to_end(solo_model_dir, flute_44k_stereo, tmp_path):
    output, picture = tmp_path / "out" / "take.wav", tmp_path / "spectrogram.png"
    result = subprocess.run([sys.executable, "-m", "tuibend.cli", "render", str(flute_44k_stereo), "-o", str(output),
                             "--model", str(solo_model_dir), "--spectrogram", str(picture), "--tracker", "yin",
                             "--threads", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(output)
    assert rate == 16000 and audio.ndim == 1
    assert abs(len(audio) - 3.0 * 16000) <= 64
    assert np.sqrt(np.mean(audio ** 2)) > 1e-4 and np.all(np.isfinite(audio))
    # the line says how long the render took after start-up, and its real-time factor for this file
    timing = re.search(r"(\d+\.\d+) s, peak .*rendered in (\d+\.\d+) s \((\d+(?:\.\d)?)x real time, after start-up\)",
                       result.stdout)
    assert timing, result.stdout
    assert "layers, 2 threads); rendered" in result.stdout  # the kernel's blocks shared, as asked
    duration, elapsed, factor = (float(value) for value in timing.groups())
    assert duration == pytest.approx(3.0, abs=0.01) and 0 < elapsed < 60
    assert abs(factor - duration / elapsed) <= (0.5 if factor >= 10 else 0.05) + 0.02 * factor  # as printed
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in output.parent.iterdir()) == ["take.wav"]  # no temporary left behind


def test_a_file_renders_through_the_kernel_without_tensorflow(solo_model_dir, flute_44k_stereo, tmp_path):
    """TensorFlow (3 s of start-up) loads only to render where the kernel cannot: through the kernel a new file is
    analysed (by the kernel's CREPE) and rendered without it, again from the cache with the same take, through a
    scene too; TensorFlow's stream renders from the same model file."""
    command = ("import sys; from tuibend.cli import main; status = main(sys.argv[1:]); "
               "print('tensorflow loaded:', 'tensorflow' in sys.modules); sys.exit(status)")

    def render(name: str, *options: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", command, "render", str(flute_44k_stereo), "-o",
                               str(tmp_path / name), "--model", str(solo_model_dir), *options],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})  # analysed here first

    def loaded_tensorflow(result: subprocess.CompletedProcess) -> bool:
        return "tensorflow loaded: True" in result.stdout

    runs = {name: render(f"{name}.wav", *options) for name, options in
            (("analysing", ()), ("analysed", ()), ("scene", ("--scene", "breath")),
             ("tensorflow", ("--kernel", "tensorflow")))}
    assert all(result.returncode == 0 for result in runs.values()), [r.stderr[-500:] for r in runs.values()]
    assert loaded_tensorflow(runs["tensorflow"])
    assert not any(loaded_tensorflow(runs[name]) for name in ("analysing", "analysed", "scene"))
    takes = {name: soundfile.read(tmp_path / f"{name}.wav")[0] for name in runs}
    np.testing.assert_array_equal(takes["analysed"], takes["analysing"])
    assert "native kernel" in runs["analysed"].stdout and "tensorflow kernel" in runs["tensorflow"].stdout
    levels = [20 * np.log10(np.sqrt(np.mean(takes[name] ** 2))) for name in ("tensorflow", "analysed")]
    assert levels[1] > -40 and abs(levels[0] - levels[1]) < 1.0  # its own noise and phases: the same level


def test_render_errors_are_one_line_and_write_nothing(solo_model_dir, tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    result = subprocess.run([sys.executable, "-m", "tuibend.cli", "render", str(tmp_path / "broken.wav"),
                             "-o", str(tmp_path / "out.wav"), "--model", str(solo_model_dir)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.startswith("tuibend: error: ") and "broken.wav" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.wav").exists()


def test_public_analysis_api(flute, crepe_reference):
    import tuibend
    import tuibend.pitch

    features = tuibend.analyze(flute, sample_rate=16000, tracker="crepe-tiny")
    assert isinstance(features, tuibend.Features) and features.frame_rate == 250
    assert len(features.f0_hz) == len(features.confidence) == len(features.loudness_db) == len(flute) // 64
    reference = np.interp(np.arange(len(features)) * 64, np.arange(300) * 160,
                          crepe_reference["flute_tiny_f0"].ravel()[:300])
    voiced = features.confidence > 0.5
    assert voiced.mean() > 0.5
    assert np.median(np.abs(1200 * np.log2(features.f0_hz[voiced] / reference[voiced]))) < 10.0
    activation = tuibend.pitch.Crepe("tiny").activation(crepe_reference["flute_frames"][:3])
    assert activation.shape == (3, 360)


def test_truncated_cache_entry_is_recomputed(flute_44k_stereo, tmp_path):
    first = files.analyze(flute_44k_stereo, tracker="yin")
    (entry,) = (tmp_path / "xdg-cache" / "tuibend" / "analysis").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:200])  # a write cut short
    np.testing.assert_array_equal(files.analyze(flute_44k_stereo, tracker="yin").f0_hz, first.f0_hz)


def test_render_runs_on_the_native_kernel_and_follows_the_player_as_tensorflow_does(choir_model, tmp_path):
    """`render` by default runs the native kernel, its layers in bfloat16 where the build has them (as the
    engine plays): the same sound as TensorFlow's stream (the reference) and as the kernel in float32, each
    second's level within 3 dB of the player's; an explicit native kernel that cannot load says why."""
    from tuibend.native import available_cores, library
    from tuibend.places import demo_input
    from tuibend.render import render_file

    audio, rate = soundfile.read(demo_input())
    soundfile.write(tmp_path / "in.wav", audio[:4 * rate], rate)
    native = render_file(choir_model, tmp_path / "in.wav", tmp_path / "native.wav")
    exact = render_file(choir_model, tmp_path / "in.wav", tmp_path / "float32.wav", bfloat16=False)
    reference = render_file(choir_model, tmp_path / "in.wav", tmp_path / "tf.wav", kernel="tensorflow")
    assert native.report["kernel"] == "native" and reference.report["kernel"] == "tensorflow"
    assert native.report["layers"] == ("bfloat16" if library().build == "avx512bf16" else "float32")
    assert exact.report["layers"] == reference.report["layers"] == "float32"
    # every core this process may use shares the kernel's blocks, the same take as one thread's
    one = render_file(choir_model, tmp_path / "in.wav", tmp_path / "one.wav", threads=1)
    cores = available_cores()
    assert 1 <= native.report["threads"] <= cores and (native.report["threads"] > 1) == (cores > 1)
    assert one.report["threads"] == 1
    assert reference.report["threads"] is None
    np.testing.assert_array_equal(one.audio, native.audio)
    assert len(native.audio) == len(exact.audio) == len(reference.audio)
    assert np.corrcoef(native.audio, reference.audio)[0, 1] > 0.95
    assert np.corrcoef(exact.audio, reference.audio)[0, 1] > 0.95
    assert relative_error(native.audio, exact.audio) < 0.02
    played = read_audio(tmp_path / "in.wav", choir_model.config.sample_rate)

    def seconds_db(signal):
        return np.array([20 * np.log10(np.sqrt(np.mean(signal[i:i + 16000] ** 2)) + 1e-9)
                         for i in range(0, 4 * 16000, 16000)])

    assert np.all(np.abs(seconds_db(native.audio) - seconds_db(played)) < 3.0)


def test_an_explicit_native_render_that_cannot_load_says_why(monkeypatch):
    from tuibend.errors import InputError
    from tuibend.render import render_kernel

    monkeypatch.setattr("tuibend.native.available", lambda: "no build for this machine")
    assert render_kernel("auto") == "tensorflow"
    with pytest.raises(InputError, match="--kernel native: no build for this machine"):
        render_kernel("native")
