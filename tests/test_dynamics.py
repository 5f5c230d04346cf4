"""The noise gate, the level match, the loudness map and the octave rule."""

from __future__ import annotations

import numpy as np
import pytest

from tuibend.adjust import Adjustment, adjust, place_loudness, shift_octaves
from tuibend.dsp.spectral import loudness
from tuibend.dynamics import (
    MAX_FLOOR_DB,
    Dynamics,
    GateSettings,
    LevelMatch,
    NoiseGate,
    frame_gains_to_samples,
    parse_gate,
    rms_db,
)
from tuibend.model.statistics import DatasetStatistics
from tuibend.pitch.analysis import Features

RATE, FRAME_RATE, HOP = 16000, 250, 64
SILENCE = -80.0


def noise_loudness(dbfs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """The analysis' loudness of white noise at ``dbfs`` RMS (the real loudness function)."""
    noise = np.random.default_rng(seed).standard_normal(int(seconds * RATE)).astype(np.float32)
    return np.asarray(loudness(noise * np.float32(10 ** (dbfs / 20)), RATE, FRAME_RATE))


def in_blocks(gate: NoiseGate, levels: np.ndarray, block: int = 16) -> tuple[np.ndarray, np.ndarray]:
    parts = [gate.process(levels[i:i + block]) for i in range(0, len(levels), block)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("floor_dbfs", [-70.0, -60.0, -50.0])
def test_the_threshold_follows_the_measured_floor(floor_dbfs):
    levels = noise_loudness(floor_dbfs, 4.0)
    gate = NoiseGate(GateSettings(), FRAME_RATE, SILENCE)
    model_db, gains = in_blocks(gate, levels)
    floor = float(np.median(levels))
    assert abs(gate.floor_db - floor) < 3.0  # learned within the four seconds
    assert gate.threshold_db == pytest.approx(gate.floor_db + 10.0)
    # after the first second the floor itself never opens the gate: the model hears its silence
    assert np.all(gains[FRAME_RATE:] == 0.0) and np.all(model_db[FRAME_RATE:] == SILENCE)


def test_a_note_in_the_floor_opens_at_once_and_its_end_closes_after_hold_and_release():
    floor = noise_loudness(-60.0, 6.0)
    note = floor.copy()
    note[3 * FRAME_RATE:4 * FRAME_RATE] = -5.0  # a sung note (a sine at about -24 dBFS)
    gate = NoiseGate(GateSettings(hold_ms=20.0, release_ms=80.0), FRAME_RATE, SILENCE)
    model_db, gains = in_blocks(gate, note)
    start, stop = 3 * FRAME_RATE, 4 * FRAME_RATE
    assert gains[start] == 1.0 and model_db[start] == -5.0  # within the frame the note starts, not a block later
    assert np.all(gains[start:stop] == 1.0)
    hold = round(0.020 * FRAME_RATE)
    assert np.all(gains[stop:stop + hold] == 1.0)  # held a moment (no chatter at a note's end)
    assert np.all(model_db[stop + hold + 1:] == SILENCE)  # then the model hears its own silence
    release_end = stop + hold + 1 + round(0.080 * FRAME_RATE)
    fade = gains[stop + hold:release_end]
    assert np.all(np.diff(fade) <= 0) and np.sum((fade > 0) & (fade < 1)) >= 15  # a fade, not a cut
    assert np.all(gains[release_end:] == 0.0)


def test_hysteresis_keeps_a_wavering_note_open_and_a_near_miss_closed():
    gate = NoiseGate(GateSettings(threshold_db=-30.0, hysteresis_db=6.0, hold_ms=0.0), FRAME_RATE, SILENCE)
    wavering = np.concatenate([np.full(10, -20.0), np.tile([-34.0, -29.0], 50)])  # dips below -30, above -36
    _, gains = gate.process(wavering)
    assert np.all(gains[:] == 1.0)
    _, gains = gate.process(np.full(20, -37.0))  # below the closing threshold: closes
    assert gains[-1] < 0.1
    _, gains = gate.process(np.tile([-34.0, -31.0], 50))  # between the two: stays closed
    assert np.all(gains == 0.0)


def test_a_block_gated_stream_equals_the_whole_signal_gated():
    levels = np.concatenate([noise_loudness(-55.0, 2.0), np.full(100, -8.0), noise_loudness(-55.0, 1.0, 1)])
    whole = NoiseGate(GateSettings(), FRAME_RATE, SILENCE).process(levels)
    blocks = in_blocks(NoiseGate(GateSettings(), FRAME_RATE, SILENCE), levels, block=4)
    np.testing.assert_array_equal(whole[0], blocks[0])
    np.testing.assert_array_equal(whole[1], blocks[1])


def test_a_long_held_note_is_not_taken_for_the_floor():
    floor = noise_loudness(-60.0, 1.0)
    levels = np.concatenate([floor, np.full(30 * FRAME_RATE, -12.0)])
    gate = NoiseGate(GateSettings(), FRAME_RATE, SILENCE)
    _, gains = in_blocks(gate, levels)
    assert np.all(gains[len(floor):] == 1.0)
    assert gate.floor_db <= MAX_FLOOR_DB


def test_gate_settings_are_checked():
    assert parse_gate("off").enabled is False
    assert parse_gate("auto") == GateSettings()
    assert parse_gate("-35").threshold_db == -35.0
    for bad in ("loud", "nan", "inf", "-500"):
        with pytest.raises(ValueError, match="gate"):
            parse_gate(bad)


def test_frame_gains_ramp_without_steps():
    samples = frame_gains_to_samples(np.array([1.0, 0.5, 0.0], np.float32), 0.0, HOP)
    assert len(samples) == 3 * HOP
    assert np.max(np.abs(np.diff(samples))) <= 1.0 / HOP + 1e-6
    assert samples[HOP - 1] == 1.0 and samples[-1] == 0.0


def test_level_match_brings_a_quiet_model_to_the_players_level_and_holds_in_rests():
    rng = np.random.default_rng(0)
    match = LevelMatch(RATE, time_constant_s=1.0)
    dry = (0.1 * rng.standard_normal(256)).astype(np.float32)
    for _ in range(int(8 * RATE / 256)):  # eight seconds of a model answering 12 dB low
        out = match.process(dry, dry * np.float32(10 ** (-12 / 20)), playing=True)
    assert abs(rms_db(out) - rms_db(dry)) < 0.5
    gain = match.gain_db
    match.process(dry * 0, np.zeros(256, np.float32), playing=False)  # a rest changes nothing
    assert match.gain_db == gain
    bounded = LevelMatch(RATE, time_constant_s=0.1, limit_db=20.0)
    for _ in range(200):
        bounded.process(dry, dry * np.float32(1e-3), playing=True)  # 60 dB low: a bend that silences the model
    assert bounded.gain_db == pytest.approx(20.0)


def test_dynamics_fade_unless_the_scene_is_a_drone():
    class Config:
        loudness, frame_rate, sample_rate, hop = "v3", FRAME_RATE, RATE, HOP

    for drone in (False, True):
        dynamics = Dynamics.for_model(Config, GateSettings(threshold_db=-30.0), level_match=False)
        dynamics.hear(np.full(16, -70.0, np.float32))
        out = dynamics.shape(np.ones(16 * HOP, np.float32), np.zeros(16 * HOP, np.float32), drone=drone)
        assert (np.max(out) == 0.0) != drone


def test_a_long_block_shaped_in_shorter_ones_sounds_as_if_heard_in_them():
    """A render steps its model in 64-frame blocks and shapes them in the engine's 16: the gate's gains,
    the level match and the ceiling come out as if each 16-frame piece had been heard on its own."""
    class Config:
        loudness, frame_rate, sample_rate, hop = "v3", FRAME_RATE, RATE, HOP

    levels = np.concatenate([np.full(40, -70.0), np.full(100, -20.0), np.full(52, -75.0)]).astype(np.float32)
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(len(levels) * HOP) * 0.3).astype(np.float32)
    dry = (rng.standard_normal(len(levels) * HOP) * 0.05).astype(np.float32)
    takes = []
    for long_block in (16, 64):
        dynamics = Dynamics.for_model(Config, GateSettings(threshold_db=-40.0))
        take = []
        for start in range(0, len(levels), long_block):
            dynamics.hear(levels[start:start + long_block])
            for piece in range(start, start + long_block, 16):
                samples = slice(piece * HOP, (piece + 16) * HOP)
                take.append(dynamics.shape(audio[samples], dry[samples]))
        takes.append(np.concatenate(take))
    assert np.max(np.abs(takes[0][:40 * HOP])) < 1e-3 < np.max(np.abs(takes[0][60 * HOP:140 * HOP]))  # gated, then open
    np.testing.assert_array_equal(takes[1], takes[0])


def test_a_note_after_a_rest_is_not_held_down_by_the_release_before_it():
    """The player stops (10 ms release) while the model's sound dies away over 100 ms: in that block the output
    stands far over the player's and the ceiling takes it down (16 dB here, 24 dB on the bundled choir). The next
    note, 300 ms later, starts at its level, not down by what 40 dB/s has not yet recovered of that."""
    class Config:
        loudness, frame_rate, sample_rate, hop = "v3", FRAME_RATE, RATE, HOP

    t = np.arange(int(2.5 * RATE)) / RATE
    note = (t < 1.0) | ((t >= 1.3) & (t < 2.3))  # two notes and a 300 ms rest between them
    envelope = np.convolve(note.astype(float), np.ones(160) / 160)[:len(t)]  # 10 ms attacks and releases
    tail = np.zeros(len(t))  # the model's sound: the player's, dying away over 100 ms after each note
    for i in range(1, len(t)):
        tail[i] = envelope[i] if envelope[i] >= tail[i - 1] else tail[i - 1] * np.exp(-1 / (0.1 * RATE / 6.9))
    tone = np.sin(2 * np.pi * 220 * t)
    dry, model = (0.1 * envelope * tone).astype(np.float32), (0.1 * tail * tone).astype(np.float32)
    levels = np.array([rms_db(dry[i * HOP:(i + 1) * HOP]) + 20 for i in range(len(t) // HOP)], np.float32)
    dynamics = Dynamics.for_model(Config, GateSettings(threshold_db=-30.0), level_match=True)
    out, lowest = [], 0.0
    for start in range(0, len(levels), 4):
        dynamics.hear(levels[start:start + 4])
        out.append(dynamics.shape(model[start * HOP:(start + 4) * HOP], dry[start * HOP:(start + 4) * HOP]))
        lowest = min(lowest, dynamics.ceiling.reduction_db)
    out = np.concatenate(out)
    second = int(1.3 * RATE)
    start_db, held_db = rms_db(out[second + 320:second + 1600]), rms_db(out[second + 8000:second + 12000])
    print(f"\nceiling at the release {lowest:.1f} dB; second note at 20-100 ms: {start_db - held_db:+.1f} dB")
    assert lowest < -10.0 and abs(start_db - held_db) < 1.0


def test_with_the_gate_off_the_level_match_learns_only_from_what_is_played():
    """A gate turned off mutes nothing (the model's drone sounds through a rest at its own level), yet the level
    match and the ceiling still follow only what is played: a note after 1.5 s of a -60 dBFS room starts at the
    player's level, not 24 dB under it while they climb back from the room's."""
    class Config:
        loudness, frame_rate, sample_rate, hop = "v3", FRAME_RATE, RATE, HOP

    t = np.arange(3 * RATE) / RATE
    note = t >= 1.5
    dry = (np.random.default_rng(0).standard_normal(len(t)) * 1e-3).astype(np.float32)  # the room: -60 dBFS
    dry[note] = 0.1 * np.sin(2 * np.pi * 220 * t[note])  # -23 dBFS
    model = (np.where(note, 0.1, 0.03) * np.sin(2 * np.pi * 330 * t)).astype(np.float32)  # a drone in the rest
    levels = np.array([rms_db(dry[i * HOP:(i + 1) * HOP]) + 20 for i in range(len(t) // HOP)], np.float32)
    dynamics = Dynamics.for_model(Config, GateSettings(enabled=False))
    out = []
    for start in range(0, len(levels), 4):
        np.testing.assert_array_equal(dynamics.hear(levels[start:start + 4]), levels[start:start + 4])
        out.append(dynamics.shape(model[start * HOP:(start + 4) * HOP], dry[start * HOP:(start + 4) * HOP]))
    out = np.concatenate(out)
    rest, onset = slice(int(1.0 * RATE), int(1.5 * RATE)), int(1.5 * RATE)
    assert abs(rms_db(out[rest]) - rms_db(model[rest])) < 0.5  # the drone, untouched
    assert abs(rms_db(out[onset + 320:onset + 1600]) - rms_db(dry[onset:onset + RATE])) < 1.0


def statistics(low_db: float, high_db: float, mean_pitch: float = 60.0, register=None) -> DatasetStatistics:
    references = np.linspace(0, 1, 101)
    scalars = {"mean_pitch": mean_pitch}
    if register:
        scalars.update(pitch_low=register[0], pitch_high=register[1])
    return DatasetStatistics(scalars, np.linspace(low_db, high_db, 101), references)


def test_the_loudness_map_is_monotone_and_keeps_the_players_range():
    rng = np.random.default_rng(1)
    player = np.sort(rng.uniform(-40.0, -10.0, 2000))  # 30 dB of playing
    on = np.ones_like(player, bool)
    for model_range in ((-60.0, -50.0), (-70.0, -10.0)):  # a narrower model, a wider one
        mapped, shift = place_loudness(player, on, statistics(*model_range))
        assert np.all(np.diff(mapped) >= 0)
        kept = np.percentile(mapped, 95) - np.percentile(mapped, 5)
        assert kept >= 0.75 * (np.percentile(player, 95) - np.percentile(player, 5)) - 1e-6
        assert np.median(mapped) == pytest.approx(np.median(np.linspace(*model_range, 101)), abs=0.5)
        assert shift == pytest.approx(np.median(mapped) - np.median(player), abs=1e-6)
    # the soft end moves as the loud end: the 10th percentile is not crushed
    mapped, shift = place_loudness(player, on, statistics(-70.0, -10.0))
    assert np.percentile(mapped, 10) - np.percentile(player, 10) == pytest.approx(shift, abs=1e-6)


def melody(low_midi: float, high_midi: float, frames: int = 2000) -> Features:
    midi = np.linspace(low_midi, high_midi, frames)
    f0 = (440.0 * 2 ** ((midi - 69) / 12)).astype(np.float32)
    return Features(f0, np.ones(frames, np.float32), np.full(frames, -20.0, np.float32), FRAME_RATE)


def test_the_octave_rule_moves_only_what_lies_outside_the_register():
    stats = statistics(-60, -10, mean_pitch=66.0, register=(55.0, 79.0))
    for low, high in ((56, 64), (60, 78), (70, 79)):  # inside the model's register: never moved
        adjusted, report = adjust(melody(low, high), stats, Adjustment())
        assert report["octaves"] == 0
        np.testing.assert_allclose(adjusted.f0_hz, melody(low, high).f0_hz)
    _, report = adjust(melody(36, 44), stats, Adjustment())  # two octaves down: brought in
    assert report["octaves"] == 2
    _, report = adjust(melody(84, 92), stats, Adjustment())
    assert report["octaves"] == -1
    f0, octaves = shift_octaves(melody(44, 50).f0_hz, np.ones(2000, bool), (55.0, 79.0))
    assert octaves == 1
    np.testing.assert_allclose(f0, melody(44, 50).f0_hz * 2)


def test_the_ceiling_holds_a_burst_near_the_players_level_and_recovers():
    from tuibend.dynamics import Ceiling

    ceiling = Ceiling(RATE, headroom_db=3.0, recovery_db_per_s=40.0)
    dry = (0.1 * np.random.default_rng(2).standard_normal(256)).astype(np.float32)
    burst = ceiling.process(dry, dry * np.float32(10 ** (10 / 20)), playing=True)  # 10 dB over the player
    assert rms_db(burst[-64:]) - rms_db(dry[-64:]) == pytest.approx(3.0, abs=0.1)
    for _ in range(int(0.5 * RATE / 256)):  # the burst is over: the gain comes back
        held = ceiling.process(dry, dry.copy(), playing=True)
    assert ceiling.reduction_db == 0.0 and rms_db(held) == pytest.approx(rms_db(dry), abs=0.01)
    quiet = ceiling.process(dry * 0, dry * np.float32(10.0), playing=False)  # in a rest it never acts
    assert rms_db(quiet) == pytest.approx(rms_db(dry) + 20, abs=0.01)


def test_the_first_seconds_learn_the_floor_even_after_digital_silence_or_from_a_player_who_starts_at_once():
    floor = noise_loudness(-60.0, 3.0)
    gate = NoiseGate(GateSettings(), FRAME_RATE, SILENCE)
    _, gains = in_blocks(gate, np.concatenate([np.full(3, SILENCE), floor]))  # a live stream's first frames
    assert np.all(gains[FRAME_RATE // 4:] == 0.0) and abs(gate.floor_db - np.median(floor)) < 1.5
    gate = NoiseGate(GateSettings(), FRAME_RATE, SILENCE)
    _, gains = in_blocks(gate, np.concatenate([np.full(3 * FRAME_RATE, -5.0), floor]))
    assert np.all(gains[:3 * FRAME_RATE] == 1.0)  # singing from the first frame: every frame of it heard
    assert np.all(gains[3 * FRAME_RATE + FRAME_RATE // 2:] == 0.0)  # and the floor after it silent


def test_a_floor_that_arrives_after_digital_silence_is_learned_within_the_window():
    floor = noise_loudness(-60.0, 4.0)
    gate = NoiseGate(GateSettings(), FRAME_RATE, SILENCE)
    _, gains = in_blocks(gate, np.concatenate([np.full(5 * FRAME_RATE, SILENCE), floor]))
    assert np.all(gains[5 * FRAME_RATE + round(2.2 * FRAME_RATE):] == 0.0)  # the window's two seconds, then silent
    assert abs(gate.floor_db - np.median(floor)) < 1.5


def test_an_attack_rises_at_most_3_db_over_its_held_note_on_the_bundled_model(choir_model):
    """Four notes with 10 ms attacks after rests, from the model's mean pitch up, played through the bundled choir
    as a file plays on the kernel (analysed by its CREPE tiny, fitted, then the kernel, the gate, the level match
    and its ceiling): the loudest 10 ms of an attack stays within 3 dB of the held note (the model's own burst is
    about 5 dB; a ceiling 3 dB over the player let 3.1 through)."""
    from tuibend.bend.rig import BendRig
    from tuibend.model.layout import point_widths
    from tuibend.native.crepe import NativeCrepe
    from tuibend.native.stream import NativeStream
    from tuibend.pitch.analysis import analyze_audio
    from tuibend.pitch.trackers import make_tracker
    from tuibend.render import stream_features

    config, frame = choir_model.config, RATE // 100
    pieces, attacks = [np.zeros(RATE // 2, np.float32)], []
    for semitones in range(0, 8, 2):
        f0 = 440 * 2 ** ((choir_model.statistics.mean_pitch + semitones - 69) / 12)
        t = np.arange(RATE) / RATE
        saw = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 30) if k * f0 < RATE / 2 - 500)
        ramp = np.minimum(1, np.minimum(np.arange(RATE), np.arange(RATE)[::-1]) / (0.01 * RATE))
        attacks.append(sum(len(piece) for piece in pieces))
        pieces += [(0.1 * saw / np.sqrt(np.mean(saw ** 2)) * ramp).astype(np.float32), np.zeros(RATE // 3, np.float32)]
    dry = np.concatenate(pieces)
    features = analyze_audio(dry, make_tracker("crepe-tiny", network=NativeCrepe("tiny")), config.loudness)
    adjusted, report = adjust(features, choir_model.statistics, Adjustment())
    stream = NativeStream(choir_model, BendRig([], point_widths(config.decoder), 4, graph=False), 4, bfloat16=True)
    out = stream_features(stream, adjusted, dynamics=Dynamics.for_model(config, makeup_db=-report["loudness_shift_db"]),
                          dry=dry, levels_db=features.loudness_db)
    levels = np.array([rms_db(out[i:i + frame]) for i in range(0, len(out) - frame + 1, frame)])
    overshoots = [levels[a // frame:a // frame + 15].max() - np.median(levels[a // frame + 30:a // frame + 90])
                  for a in attacks]
    print(f"\nattack overshoot over the held note, dB: {np.round(overshoots, 2)}, median {np.median(overshoots):.2f}")
    assert np.median(overshoots) <= 3.0
