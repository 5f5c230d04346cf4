"""Pitch tracking: CREPE against torchcrepe's numbers, YIN, and streaming equal to offline."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import DEMO_INPUT

from tuibend.audiofile import read_audio
from tuibend.pitch.analysis import (
    Features,
    Gate,
    StreamingAnalyzer,
    analyze_audio,
    centred_frames,
    interpolate_estimates,
)
from tuibend.pitch.crepe import Crepe, CrepeWeightsError, decode, load_npz_weights, normalise_frames
from tuibend.pitch.trackers import make_tracker
from tuibend.places import crepe_weights


@pytest.fixture(scope="module")
def crepe_full(crepe_full_path):
    return Crepe.from_file(crepe_full_path)


@pytest.mark.parametrize("name", ["flute", "choir"])
def test_shipped_tiny_activations_match_torchcrepe(crepe_reference, name):
    crepe = Crepe("tiny")
    activation = crepe.activation(crepe_reference[f"{name}_frames"])
    np.testing.assert_allclose(activation, crepe_reference[f"{name}_tiny_activation"], atol=1e-4)
    # One frame at a time (as a live block brings them) takes another first-layer path: same numbers.
    single = np.concatenate([crepe.activation(frame[None]) for frame in crepe_reference[f"{name}_frames"][:8]])
    np.testing.assert_allclose(single, crepe_reference[f"{name}_tiny_activation"][:8], atol=1e-4)


@pytest.mark.parametrize("name", ["flute", "choir"])
def test_converted_full_activations_match_torchcrepe(crepe_full, crepe_reference, name):
    activation = crepe_full.activation(crepe_reference[f"{name}_frames"])
    np.testing.assert_allclose(activation, crepe_reference[f"{name}_full_activation"], atol=1e-4)


def _cents_error(f0, reference):
    return np.abs(1200.0 * np.log2(f0 / reference))


@pytest.mark.parametrize("capacity", ["tiny", "full"])
@pytest.mark.parametrize("name", ["flute", "choir"])
def test_f0_matches_torchcrepe_weighted_argmax(crepe_full, crepe_reference, capacity, name):
    """torchcrepe.predict(hop 160, fmin 50, fmax 1000, weighted_argmax, pad=True) on the same audio."""
    crepe = crepe_full if capacity == "full" else Crepe("tiny")
    audio = crepe_reference[f"{name}_audio"]
    reference_f0 = crepe_reference[f"{name}_{capacity}_f0"].ravel()
    # Every frame for tiny; 128 frames spread over the file for full (1.5 G multiply-adds a frame).
    chosen = np.arange(len(reference_f0)) if capacity == "tiny" else np.linspace(0, len(reference_f0) - 1, 128)
    chosen = chosen.astype(int)
    frames = centred_frames(audio, 1024, 160, len(reference_f0))[chosen]
    f0, confidence = decode(crepe.activation(normalise_frames(frames)), fmin=50.0, fmax=1000.0)
    reference_f0 = reference_f0[chosen]
    periodicity = crepe_reference[f"{name}_{capacity}_periodicity"].ravel()[chosen]
    voiced = periodicity > 0.5
    assert voiced.sum() > 0.3 * len(chosen)
    assert np.median(_cents_error(f0[voiced], reference_f0[voiced])) < 5.0
    np.testing.assert_allclose(confidence, periodicity, atol=1e-4)


def test_original_crepe_keras_h5_loads(tmp_path, crepe_reference):
    """Builds CREPE as its authors wrote it in Keras, saves it in the Keras 2 .h5 layout, loads it back."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    weights = load_npz_weights(crepe_weights("tiny"), "tiny")
    inputs = keras.Input(shape=(1024,), name="input")
    x = keras.layers.Reshape(target_shape=(1024, 1, 1), name="input-reshape")(inputs)
    for layer, (filters, width, strides) in enumerate(
            zip((128, 16, 16, 16, 32, 64), (512, 64, 64, 64, 64, 64), ((4, 1),) + 5 * ((1, 1),), strict=True), 1):
        x = keras.layers.Conv2D(filters, (width, 1), strides=strides, padding="same", activation="relu",
                                name=f"conv{layer}")(x)
        x = keras.layers.BatchNormalization(name=f"conv{layer}-BN")(x)
        x = keras.layers.MaxPooling2D(pool_size=(2, 1), strides=None, padding="valid", name=f"conv{layer}-maxpool")(x)
        x = keras.layers.Dropout(0.25, name=f"conv{layer}-dropout")(x)
    x = keras.layers.Permute((2, 1, 3), name="transpose")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(360, activation="sigmoid", name="classifier")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    for layer in range(1, 7):
        model.get_layer(f"conv{layer}").set_weights([weights[f"conv{layer}/kernel"][:, None],
                                                     weights[f"conv{layer}/bias"]])
        model.get_layer(f"conv{layer}-BN").set_weights([weights[f"conv{layer}/{n}"]
                                                        for n in ("gamma", "beta", "mean", "variance")])
    model.get_layer("classifier").set_weights([weights["classifier/kernel"], weights["classifier/bias"]])
    path = tmp_path / "model-tiny.h5"
    with h5py.File(path, "w") as h5:
        legacy_h5_format.save_weights_to_hdf5_group(h5, model)
    frames = crepe_reference["flute_frames"][:16]
    loaded = Crepe.from_file(path)
    assert loaded.capacity == "tiny"
    np.testing.assert_allclose(loaded.activation(frames), model.predict(frames, verbose=0), atol=1e-4)
    np.testing.assert_allclose(loaded.activation(frames), crepe_reference["flute_tiny_activation"][:16], atol=1e-4)


def test_missing_or_broken_weights_are_named(tmp_path):
    with pytest.raises(CrepeWeightsError, match=r"crepe-full\.npz: no CREPE full weights.*convert_crepe"):
        load_npz_weights(tmp_path / "crepe-full.npz", "full")
    np.savez(tmp_path / "crepe-tiny.npz", classifier=np.zeros(3))
    with pytest.raises(CrepeWeightsError, match="missing conv1/kernel"):
        Crepe.from_file(tmp_path / "crepe-tiny.npz")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(CrepeWeightsError, match="not a CREPE Keras weights file"):
        Crepe.from_file(tmp_path / "bad.h5")
    with pytest.raises(ValueError, match="unknown pitch tracker"):
        make_tracker("pyin")


@pytest.mark.parametrize("frequency", [55.0, 110.0, 196.0, 440.0, 659.3, 990.0])
def test_yin_finds_the_pitch_of_harmonic_tones(frequency):
    tracker = make_tracker("yin")
    t = np.arange(tracker.window) / 16000
    tone = sum(a * np.sin(2 * np.pi * k * frequency * t + k) for k, a in ((1, 0.5), (2, 0.3), (3, 0.2)))
    f0, confidence = tracker.estimate(tone[None])
    assert _cents_error(f0, frequency)[0] < 5.0
    assert confidence[0] > 0.9
    _, noise_confidence = tracker.estimate(np.random.default_rng(0).normal(size=(4, tracker.window)))
    assert np.all(noise_confidence < 0.5)


def test_yin_agrees_with_crepe_full_on_real_audio(crepe_reference):
    audio = crepe_reference["flute_audio"]
    features = analyze_audio(audio, make_tracker("yin"))
    reference = crepe_reference["flute_full_f0"].ravel()
    periodicity = crepe_reference["flute_full_periodicity"].ravel()
    # torchcrepe's estimates every 160 samples, against ours at the model's frames (every 64).
    positions = np.arange(len(reference)) * 160
    ours = np.interp(positions, np.arange(len(features)) * 64, features.f0_hz)
    confident = (periodicity > 0.8) & (positions < len(features) * 64)
    assert np.median(_cents_error(ours[confident], reference[confident])) < 20.0


@pytest.mark.parametrize("tracker_name", ["yin", "crepe-tiny"])
@pytest.mark.parametrize("loudness", ["v3", "v1"])
def test_streaming_analysis_equals_offline_up_to_its_lags(crepe_reference, tracker_name, loudness):
    audio = crepe_reference["choir_audio"][:40000]
    tracker = make_tracker(tracker_name)
    offline = analyze_audio(audio, tracker, loudness)
    analyzer = StreamingAnalyzer(tracker, loudness)
    rng = np.random.default_rng(7)
    parts, position = [], 0
    while position < len(audio):
        size = int(rng.choice([1, 17, 64, 256, 700, 1024]))
        parts.append(analyzer.process(audio[position:position + size]))
        position += size
    streamed = Features.concatenate(parts)
    assert len(streamed) == len(offline) == len(audio) // 64
    loudness_lag, pitch_lag = analyzer.loudness_lag, analyzer.pitch_lag
    n = len(offline)
    difference = np.abs(streamed.loudness_db[loudness_lag:] - offline.loudness_db[:n - loudness_lag])
    if loudness == "v1":
        assert np.max(difference) < 1e-3
    else:  # live frames go without their window's newest 128 samples (3.8 % of its energy), level restored
        assert loudness_lag == 1
        assert np.median(difference) < 0.1 and np.percentile(difference, 95) < 0.4
    # The last frames of the offline analysis read the zero padding after the end: compare the interior.
    interior = n - pitch_lag - 20
    np.testing.assert_allclose(streamed.f0_hz[pitch_lag:pitch_lag + interior], offline.f0_hz[:interior], rtol=1e-4)
    np.testing.assert_allclose(streamed.confidence[pitch_lag:pitch_lag + interior], offline.confidence[:interior],
                               atol=1e-4)
    assert np.all(streamed.f0_hz[:pitch_lag] == 0.0)
    assert analyzer.latency_ms["pitch"] == pitch_lag * 4.0


def test_yin_hears_silence_as_unvoiced():
    yin = make_tracker("yin")
    frames = np.zeros((3, yin.window), np.float32)
    frames[2] = 1e-3 * np.sin(2 * np.pi * 200 * np.arange(yin.window) / 16000)  # quiet, but a voice
    _, confidence = yin.estimate(frames)
    assert confidence[0] == confidence[1] == 0.0 and confidence[2] > 0.9


def test_reported_lags():
    assert StreamingAnalyzer(make_tracker("yin")).latency_ms == {"loudness": 4.0, "pitch": 20.0}
    assert StreamingAnalyzer(make_tracker("crepe-tiny")).latency_ms == {"loudness": 4.0, "pitch": 36.0}
    assert StreamingAnalyzer(make_tracker("yin"), "v1").latency_ms == {"loudness": 124.0, "pitch": 20.0}


def test_live_loudness_reads_a_steady_sound_as_offline_and_an_onset_two_frames_sooner():
    t = np.arange(16000) / 16000
    tone = np.where(t >= 0.5, 0.3 * np.sin(2 * np.pi * 330 * t), 0.0).astype(np.float32)
    offline = analyze_audio(tone, make_tracker("yin"))
    analyzer = StreamingAnalyzer(make_tracker("yin"))
    streamed = Features.concatenate([analyzer.process(tone[i:i + 256]) for i in range(0, len(tone), 256)])
    steady = slice(150, 240)  # frames well inside the tone
    # within 0.15 dB: the shorter window leaks a little energy into bins the A-weighting favours
    np.testing.assert_allclose(streamed.loudness_db[steady], offline.loudness_db[steady.start - 1:steady.stop - 1],
                               atol=0.15)
    # Through the onset too, live frame j reads offline frame j - 1 (lag 1); waiting for whole windows
    # (lag 3) would give, at that moment, a frame 20 dB lower: the onset reaches the model 8 ms sooner.
    rises = np.flatnonzero(streamed.loudness_db > -40)[0]
    np.testing.assert_allclose(streamed.loudness_db[rises:rises + 3], offline.loudness_db[rises - 1:rises + 2],
                               atol=1.0)
    assert offline.loudness_db[rises - 3] < streamed.loudness_db[rises] - 15
    assert np.all(streamed.loudness_db[:rises] == -80.0)  # silence stays at the floor


def test_no_glide_between_a_voiced_estimate_and_an_unvoiced_one():
    # CREPE's guess on silence (1900 Hz, unvoiced), then a sung 440 Hz, then silence again
    f0 = np.array([1900.0, 440.0, 440.0, 1900.0], np.float32)
    confidence = np.array([0.1, 0.9, 0.9, 0.1], np.float32)
    positions = np.arange(0, 481, 32)
    glide, _ = interpolate_estimates(positions, 160, f0, confidence)
    held, held_confidence = interpolate_estimates(positions, 160, f0, confidence, voiced_threshold=0.5)
    np.testing.assert_allclose(held_confidence, np.interp(positions, [0, 160, 320, 480], confidence), rtol=1e-6)
    inside = (positions > 0) & (positions < 480)
    np.testing.assert_allclose(held[inside], 440.0, rtol=1e-5)  # only the voiced pitch between them
    assert held[0] == pytest.approx(1900.0) and held[-1] == pytest.approx(1900.0)  # the estimates themselves
    assert glide[1] > 1000  # without the threshold: a glide from the unvoiced guess


def test_voiced_frames_at_note_edges_carry_the_sung_pitch():
    """On the demo voice with CREPE tiny, each frame that counts as voiced between a voiced estimate and
    an unvoiced one has the voiced estimate's pitch: offline and streamed (interpolating towards the
    unvoiced guess put six frames up to 7 semitones off)."""
    audio = read_audio(DEMO_INPUT, 16000)
    tracker = make_tracker("crepe-tiny")
    f0, confidence = tracker.estimate(centred_frames(audio, tracker.window, tracker.hop, 1 + len(audio) // tracker.hop))
    voiced = confidence >= tracker.voiced_threshold
    positions = np.arange(len(audio) // 64) * 64
    right = np.minimum(positions // tracker.hop + 1, len(f0) - 1)
    left = right - 1
    edges = (voiced[left] != voiced[right]) & (positions % tracker.hop > 0)
    sung = np.where(voiced[left], f0[left], f0[right])
    offline = analyze_audio(audio, tracker)
    analyzer = StreamingAnalyzer(tracker)
    streamed = Features.concatenate([analyzer.process(audio[i:i + 256]) for i in range(0, len(audio), 256)])
    lag = analyzer.pitch_lag
    for features, shift in ((offline, 0), (streamed, lag)):
        frames = np.flatnonzero(edges[:len(features) - shift] & (features.confidence[shift:] >= 0.5))
        assert len(frames) > 20
        cents = 1200 * np.log2(features.f0_hz[frames + shift] / sung[frames])
        assert np.max(np.abs(cents)) < 1.0


def test_gate_holds_pitch_and_lowers_loudness_the_same_in_blocks():
    rng = np.random.default_rng(3)
    features = Features(rng.uniform(100, 400, 200).astype(np.float32), rng.uniform(0, 1, 200).astype(np.float32),
                        rng.uniform(-60, 0, 200).astype(np.float32))
    whole = Gate(0.5).apply(features)
    gate = Gate(0.5)
    blocks = Features.concatenate([gate.apply(features[i:i + 7]) for i in range(0, 200, 7)])
    np.testing.assert_array_equal(blocks.f0_hz, whole.f0_hz)
    np.testing.assert_array_equal(blocks.loudness_db, whole.loudness_db)
    unvoiced = np.flatnonzero(features.confidence < 0.5)
    unvoiced = unvoiced[unvoiced > np.argmax(features.confidence >= 0.5)]
    i = unvoiced[0]
    last_voiced = np.flatnonzero(features.confidence[:i] >= 0.5)[-1]
    assert whole.f0_hz[i] == features.f0_hz[last_voiced]
    assert whole.loudness_db[i] == pytest.approx(features.loudness_db[i] - 20.0)


def test_bfloat16_crepe_keeps_the_pitch(crepe_reference):
    """The fast live precision: activations near the reference, f0 within a few cents."""
    fast = Crepe("tiny", precision="bfloat16")
    frames = crepe_reference["choir_frames"]
    activation = fast.activation(frames)
    assert np.max(np.abs(activation - crepe_reference["choir_tiny_activation"])) < 0.03
    f0, _ = decode(activation, 50.0, 1000.0)
    reference, _ = decode(crepe_reference["choir_tiny_activation"], 50.0, 1000.0)
    assert np.median(_cents_error(f0, reference)) < 5.0


def test_streaming_with_crepe_full_equals_offline(crepe_full, crepe_reference):
    from tuibend.pitch.trackers import Tracker

    tracker = Tracker("crepe-full", 160, 1024, 0.5, crepe_full)
    audio = crepe_reference["flute_audio"][:9600]
    offline = analyze_audio(audio, tracker)
    analyzer = StreamingAnalyzer(tracker)
    streamed = Features.concatenate([analyzer.process(audio[i:i + 256]) for i in range(0, len(audio), 256)])
    lag, interior = analyzer.pitch_lag, len(offline) - analyzer.pitch_lag - 20
    np.testing.assert_allclose(streamed.f0_hz[lag:lag + interior], offline.f0_hz[:interior], rtol=1e-4)


def test_streaming_analyser_downmixes_multichannel_blocks(crepe_reference):
    audio = crepe_reference["flute_audio"][:8000]
    stereo = np.stack([audio, audio], axis=1)
    mono, two = StreamingAnalyzer(make_tracker("yin")), StreamingAnalyzer(make_tracker("yin"))
    a = Features.concatenate([mono.process(audio[i:i + 300]) for i in range(0, 8000, 300)])
    b = Features.concatenate([two.process(stereo[i:i + 300]) for i in range(0, 8000, 300)])
    assert len(a) == len(b) == 8000 // 64
    np.testing.assert_allclose(b.f0_hz, a.f0_hz, rtol=1e-5)


PEAK_MEMORY = """
import resource, sys
import numpy as np
from tuibend.pitch.analysis import analyze_audio
from tuibend.pitch.trackers import make_tracker
seconds = float(sys.argv[1])
t = np.arange(int(seconds * 16000)) / 16000
audio = (0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t)))).astype(np.float32)
features = analyze_audio(audio, make_tracker("crepe-tiny"))
assert len(features) == len(audio) // 64 and np.all(np.isfinite(features.loudness_db))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_a_song_length_file_is_analysed_in_flat_memory():
    """Three minutes take no more memory than twenty seconds (in one batch they took gigabytes and, at
    five minutes and more, crashed CREPE)."""
    import os
    import subprocess
    import sys

    def peak_mb(seconds: float) -> int:
        run = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(seconds)], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        return int(run.stdout.split()[-1])

    short, song = peak_mb(20.0), peak_mb(180.0)
    print(f"\npeak memory: 20 s {short} MB, 3 min {song} MB")
    assert song < short + 250
