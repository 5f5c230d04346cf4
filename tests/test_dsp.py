"""tuibend.dsp against magenta-ddsp 3.7.0's own numbers (tolerances from the fixtures' README)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import relative_error

from tuibend import dsp
from tuibend.dsp.core import hold_last_frame, resample_frames, upsample_frames
from tuibend.dsp.plain import FrameLoudness, a_weighting_db, hz_to_midi, midi_to_hz
from tuibend.dsp.spectral import frame_loudness


def test_exp_sigmoid_matches_ddsp(dsp_reference):
    out = dsp.exp_sigmoid(dsp_reference["exp_sigmoid_in"]).numpy()
    np.testing.assert_allclose(out, dsp_reference["exp_sigmoid_out"], rtol=1e-6)


def test_harmonic_controls_match_ddsp(dsp_reference):
    controls = dsp.harmonic_controls(dsp_reference["harm_amps_raw"][None], dsp_reference["harm_hd_raw"][None],
                                     dsp_reference["harm_f0_hz"][None], 16000)
    np.testing.assert_allclose(controls["amplitudes"][0], dsp_reference["harm_amplitudes_scaled"], rtol=1e-6)
    np.testing.assert_allclose(controls["harmonic_distribution"][0], dsp_reference["harm_hd_scaled"],
                               rtol=1e-5, atol=1e-9)


def _harmonic_reference_inputs(ref):
    return ref["harm_amplitudes_scaled"][None], ref["harm_hd_scaled"][None], ref["harm_f0_hz"][None]


def test_harmonic_synth_with_ddsp_phase_matches_ddsp(dsp_reference):
    audio = dsp.harmonic_synth(*_harmonic_reference_inputs(dsp_reference), 16000, 16000, precise_phase=False)
    assert relative_error(audio[0], dsp_reference["harm_audio"]) < 1e-3


def _float64_oscillator_bank(amplitudes, distribution, f0, hop, sample_rate):
    """Independent float64 numpy reference: np.interp envelopes, per-harmonic running phase."""
    n_frames = len(f0)
    t = np.arange(n_frames * hop) / hop
    frames = np.arange(n_frames + 1)
    ratios = np.arange(1, distribution.shape[1] + 1)
    f0_env = np.interp(t, frames, np.append(f0, f0[-1]))
    harmonic_amps = np.vstack([amplitudes * distribution, (amplitudes * distribution)[-1:]])
    position = t - np.floor(t)
    weight = 0.5 - 0.5 * np.cos(np.pi * position)
    lower = np.floor(t).astype(int)
    amp_env = harmonic_amps[lower] + (harmonic_amps[lower + 1] - harmonic_amps[lower]) * weight[:, None]
    freq_env = f0_env[:, None] * ratios
    amp_env = np.where(freq_env >= sample_rate / 2, 0.0, amp_env)
    phase = np.cumsum(2 * np.pi * freq_env / sample_rate, axis=0)
    return np.sum(amp_env * np.sin(phase), axis=1)


def test_precise_phase_is_closer_to_exact_maths_than_ddsp(dsp_reference):
    amps, distribution, f0 = (x.astype(np.float64)[0] for x in _harmonic_reference_inputs(dsp_reference))
    exact = _float64_oscillator_bank(amps, distribution, f0[:, 0], 64, 16000)
    precise = dsp.harmonic_synth(*_harmonic_reference_inputs(dsp_reference), 16000, 16000).numpy()[0]
    assert relative_error(precise, exact) < 2e-4
    # ddsp's float32 running phase drifts far more over the same second.
    assert relative_error(dsp_reference["harm_audio"], exact) > 20 * relative_error(precise, exact)


def test_notes_and_hertz_without_tensorflow_are_tensorflows_and_each_others_inverse():
    notes = np.array([0.0, 21.0, 57.5, 69.0, 69.25, 108.0, 127.0])
    np.testing.assert_allclose(midi_to_hz(notes), dsp.core.midi_to_hz(notes).numpy(), rtol=1e-6)
    assert midi_to_hz(69.0) == 440.0 and midi_to_hz(81.0) == 880.0 and hz_to_midi(220.0) == 57.0
    np.testing.assert_allclose(hz_to_midi(midi_to_hz(notes)), notes, atol=1e-9)


def test_window_upsampling_is_ddsp_overlap_add():
    """ddsp's 'window' resampling (Hann overlap-add, hop 64) rebuilt literally, against ours."""
    frames = np.random.default_rng(1).normal(size=(1, 10, 3)).astype(np.float32)
    padded = np.concatenate([frames, frames[:, -1:]], axis=1)
    window = tf.signal.hann_window(128).numpy()
    ola = np.zeros((1, 64 * 10 + 128, 3), np.float32)
    for k in range(11):
        ola[:, 64 * k:64 * k + 128] += padded[:, k:k + 1] * window[None, :, None]
    expected = ola[:, 64:-64]
    ours = upsample_frames(hold_last_frame(tf.constant(frames)), 64, "window").numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_linear_resampling_matches_compat_v1_image_resize():
    frames = np.random.default_rng(2).normal(size=(2, 1001, 1)).astype(np.float32)
    expected = tf.compat.v1.image.resize(frames[:, :, None, :], [1000, 1], method="bilinear",
                                         align_corners=False)[:, :, 0, :]
    np.testing.assert_allclose(resample_frames(frames, 1000), expected, atol=1e-6)
    up = tf.compat.v1.image.resize(frames[:, :50, None, :], [50 * 64, 1], method="bilinear")[:, :, 0, :]
    np.testing.assert_allclose(upsample_frames(hold_last_frame(frames[:, :50]), 64, "linear"), up, atol=1e-5)


def test_frequency_filter_matches_ddsp(dsp_reference):
    magnitudes = dsp.noise_controls(dsp_reference["noise_mags_raw"][None])
    out = dsp.frequency_filter(dsp_reference["noise_in"][None], magnitudes)
    assert relative_error(out[0], dsp_reference["noise_out"]) < 1e-3


@pytest.mark.parametrize(("n_fft", "key"), [(512, "loud_v3"), (2048, "loud_v3_nfft2048")])
def test_loudness_matches_ddsp(dsp_reference, n_fft, key):
    out = dsp.loudness(dsp_reference["loud_audio"], 16000, 250, n_fft=n_fft).numpy()
    expected = dsp_reference[key]
    assert out.shape == expected.shape
    above_floor = expected > -70
    assert above_floor.sum() > 100
    assert np.max(np.abs(out - expected)[above_floor]) < 0.01


def test_loudness_v1_flavour_follows_ddsp_1x():
    """ddsp 1.x: mean over bins of per-bin A-weighted dB, each floored, end-padded frames."""
    rng = np.random.default_rng(3)
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000) + 0.01 * rng.normal(size=8000))
    audio = audio.astype(np.float32)
    out = dsp.loudness(audio, 16000, 250, n_fft=2048, ref_db=20.7, range_db=120.0, flavour="v1").numpy()
    assert out.shape == (125,)
    # Independent numpy reference of the same definition.
    n_frames = int(np.ceil(8000 / 64))
    padded = np.concatenate([audio, np.zeros(64 * n_frames + 2048 - 8000, np.float32)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    spectra = np.stack([np.fft.rfft(padded[i * 64:i * 64 + 2048] * window) for i in range(n_frames)])
    per_bin = 20 * np.log10(np.maximum(np.abs(spectra), 1e-20)) + a_weighting_db(2048, 16000)
    expected = np.mean(np.maximum(per_bin - 20.7, -120.0), axis=-1)[:125]
    np.testing.assert_allclose(out, expected, atol=0.02)
    silent = dsp.loudness(np.zeros(8000, np.float32), 16000, 250, n_fft=2048, ref_db=20.7, range_db=120.0,
                          flavour="v1")
    np.testing.assert_allclose(silent, -120.0)


@pytest.mark.parametrize(("n_fft", "key"), [(512, "loud_v3"), (2048, "loud_v3_nfft2048")])
def test_live_loudness_in_numpy_matches_ddsp(dsp_reference, n_fft, key):
    """The live path's numpy loudness (no TensorFlow call a block) meets ddsp's own figures as closely as
    the TensorFlow function does, and its 'v1' flavour equals TensorFlow's."""
    audio = dsp_reference["loud_audio"]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, n_fft // 2), n_fft)[::64]
    out = FrameLoudness(n_fft, 16000)(frames)
    expected = dsp_reference[key]
    assert out.shape == expected.shape and out.dtype == np.float32
    above_floor = expected > -70
    assert above_floor.sum() > 100
    assert np.max(np.abs(out - expected)[above_floor]) < 0.01
    v1 = FrameLoudness(n_fft, 16000, ref_db=20.7, range_db=120.0, flavour="v1")(frames)
    reference = frame_loudness(frames, 16000, 20.7, 120.0, "v1").numpy()
    np.testing.assert_allclose(v1, reference, atol=1e-3)
    with pytest.raises(ValueError, match="unknown loudness flavour 'v2'"):
        FrameLoudness(n_fft, 16000, flavour="v2")


def test_spectral_loss_matches_ddsp(dsp_reference):
    loss = dsp.spectral_loss(dsp_reference["loss_a"][None], dsp_reference["loss_b"][None]).numpy()
    assert abs(loss - dsp_reference["spectral_loss"]) / dsp_reference["spectral_loss"] < 1e-3
    assert dsp.spectral_loss(dsp_reference["loss_a"][None], dsp_reference["loss_a"][None]).numpy() == 0.0


def test_functions_are_batched_and_compile_under_xla(dsp_reference):
    """Each function takes a batch, and gives per-example results inside tf.function(jit_compile=True)."""
    amps, distribution, f0 = _harmonic_reference_inputs(dsp_reference)
    batch_f0 = np.concatenate([f0, f0 * 0.5])

    @tf.function(jit_compile=True)
    def render(amps, distribution, f0, noise, magnitudes):
        return (dsp.harmonic_synth(amps, distribution, f0, 16000, 16000),
                dsp.frequency_filter(noise, magnitudes),
                dsp.loudness(noise, 16000, 250))

    noise = np.stack([dsp_reference["noise_in"], dsp_reference["noise_in"][::-1]])
    magnitudes = dsp.noise_controls(np.repeat(dsp_reference["noise_mags_raw"][None], 2, axis=0))
    harmonic, filtered, loud = render(np.repeat(amps, 2, 0), np.repeat(distribution, 2, 0), batch_f0, noise,
                                      magnitudes)
    single = dsp.harmonic_synth(amps, distribution, f0 * 0.5, 16000, 16000)
    assert relative_error(harmonic[1], single[0]) < 1e-5
    assert relative_error(filtered[0], dsp_reference["noise_out"]) < 1e-3
    assert loud.shape == (2, 16000 // 64 + 1)
