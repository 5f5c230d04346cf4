"""The live engine: rings, safety, takes, events, and real runs on the virtual clock and through JACK."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import BUNDLED_MODEL, DEMO_INPUT, REPO, wait_for
from jack_harness import RATE, Harness, Passthrough, onset

from tuibend.audiofile import read_audio
from tuibend.bend.registry import Bend
from tuibend.bend.rig import BendRig
from tuibend.bend.scene import Scene, save_scene
from tuibend.dynamics import Dynamics, GateSettings
from tuibend.engine import Engine, EngineError, EngineSettings
from tuibend.engine.devices import Bridge
from tuibend.engine.events import EventLog, read_events
from tuibend.engine.ring import RingBuffer
from tuibend.engine.session import file_player, live_input
from tuibend.engine.take import TakeWriter
from tuibend.model.layout import point_widths
from tuibend.native.stream import NativeStream
from tuibend.pitch.analysis import analyze_audio
from tuibend.pitch.trackers import make_tracker
from tuibend.render import render_features, stream_features
from tuibend.safety import DcBlocker, Limiter

FIVE_BENDS = [Bend("fc1", "oscillate", 0.3, params={"freq": 3.0, "depth": 0.5}),
              Bend("gru", "ablate", 0.2), Bend("fc2", "scale", 0.2, params={"gain": 1.5}),
              Bend("fc1", "noise", 0.1, params={"amount": 0.2}), Bend("harmonics", "smooth", 0.3)]


# ----- parts ------------------------------------------------------------------------------------


def test_ring_buffer_wraps_and_refuses_overflow():
    ring = RingBuffer(10)
    assert ring.write(np.arange(7, dtype=np.float32)) == 7
    out = np.zeros(5, np.float32)
    assert ring.read_into(out) == 5 and out.tolist() == [0, 1, 2, 3, 4]
    assert ring.write(np.arange(7, 15, dtype=np.float32)) == 8  # 2 left + 8 = 10: the rest is refused
    out = np.zeros(12, np.float32)
    assert ring.read_into(out) == 10
    assert out[:10].tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]


def test_dc_blocker_matches_its_recursion_across_blocks():
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 0.2, 2048).astype(np.float32)
    blocker = DcBlocker(RATE)
    streamed = np.concatenate([blocker.process(x[i:i + 256]) for i in range(0, 2048, 256)])
    expected, last_x, last_y = np.zeros(2048), 0.0, 0.0
    for n, value in enumerate(x.astype(np.float64)):
        last_y = value - last_x + blocker.r * last_y
        last_x = value
        expected[n] = last_y
    assert np.max(np.abs(streamed - expected)) < 1e-5
    assert abs(float(np.mean(DcBlocker(RATE).process(np.full(16000, 0.5, np.float32))[8000:]))) < 0.01


def test_limiter_holds_the_ceiling_and_recovers():
    limiter = Limiter(RATE, ceiling=0.9)
    loud = np.sin(np.linspace(0, 200, 4096)).astype(np.float32) * 50
    out = np.concatenate([limiter.process(loud[i:i + 256]) for i in range(0, 4096, 256)])
    assert np.max(np.abs(out)) <= 0.9
    quiet = np.full(256, 0.1, np.float32)
    for _ in range(100):  # 1.6 s of release (time constant 0.25 s)
        last = limiter.process(quiet)
    assert np.allclose(last, 0.1, atol=0.002)
    assert np.array_equal(Limiter(RATE).process(quiet), quiet)  # below the ceiling: untouched


def test_take_is_readable_while_recording_and_renamed_on_close(tmp_path):
    path = tmp_path / "take.wav"
    take = TakeWriter(path, RATE, sync_seconds=0.0)
    take.write(np.full(1600, 0.25, np.float32))
    take.write_pending()  # the engine's file writer, a tenth of a second later
    audio, rate = soundfile.read(take.partial)  # a killed process leaves this: readable, all samples so far
    assert rate == RATE and len(audio) == 1600 and not path.exists()
    take.write(np.full(400, -0.25, np.float32))
    take.close()
    audio, _ = soundfile.read(path)
    assert len(audio) == 2000 and audio[-1] == -0.25 and not take.partial.exists()


def test_events_log_round_trips(tmp_path):
    from tuibend.engine.events import Event

    log = EventLog(tmp_path / "events.jsonl")
    log.add(Event(0.5, "tui", "bend1.proportion", 0.25))
    log.add(Event(0.25, "midi", "scene", "breath"))
    log.close()
    log.add(Event(0.75, "tui", "bypass", True))  # a model thread that outlived the engine's stop
    log.write_pending(force_flush=True)  # writes nothing, raises nothing
    log.close()
    events = read_events(tmp_path / "events.jsonl")
    assert [(e.t, e.source, e.target, e.value) for e in events] == [(0.25, "midi", "scene", "breath"),
                                                                    (0.5, "tui", "bend1.proportion", 0.25)]
    (tmp_path / "bad.jsonl").write_text('{"t": 1}\n')
    with pytest.raises(EngineError, match=r"bad\.jsonl:1"):
        read_events(tmp_path / "bad.jsonl")


def test_bridge_mutes_queued_output_at_once():
    bridge = Bridge(None, RingBuffer(1024))
    bridge.output.write(np.ones(512, np.float32))
    bridge.producing = True
    out = np.zeros((256, 2), np.float32)
    bridge.output_callback(out, 256, None, None)
    assert np.all(out == 1.0)  # both channels
    bridge.mute_until = bridge.output.written  # what panic does
    bridge.output_callback(out, 256, None, None)
    assert np.all(out == 0.0) and bridge.underruns == 0
    bridge.output_callback(out, 256, None, None)
    assert bridge.underruns == 1


# ----- the engine on the virtual clock -------------------------------------------------------------


@pytest.fixture(scope="module")
def player(choir_model):
    return file_player(choir_model, DEMO_INPUT, loop=False)


@pytest.mark.parametrize("loop", [True, False])
def test_a_file_plays_block_by_block_across_its_end_and_its_loop_point(loop):
    """Blocks inside the file (slices of it) and across its end (gathered) join into the file itself: looped, it
    starts again; played once, the floor and silence follow it and it stops, back at its start."""
    from tuibend.engine.sources import FilePlayer
    from tuibend.pitch.analysis import Features

    frames, hop, floor = 23, 4, -80.0
    rng = np.random.default_rng(0)
    rows = rng.uniform(-60, 0, (5, frames)).astype(np.float32)
    audio = rng.standard_normal(frames * hop).astype(np.float32)
    player = FilePlayer("noise", audio, Features(rows[0], rows[2], rows[1]), hop, floor, loop=loop,
                        levels_db=rows[3], pitches_hz=rows[4])
    blocks = [player.next_block(5) for _ in range(5)]  # 25 frames: past the end once
    joined = {name: np.concatenate([getattr(block, name) for block in blocks])
              for name in ("f0_hz", "loudness_db", "confidence", "level_db", "pitch_hz", "dry")}
    order = np.arange(25) % frames if loop else np.minimum(np.arange(25), frames - 1)
    after = np.arange(25) >= frames
    for name, row in zip(("f0_hz", "loudness_db", "confidence", "level_db", "pitch_hz"), rows, strict=True):
        expected = row[order]
        if not loop and name in ("loudness_db", "level_db"):
            expected = np.where(after, floor, expected)
        np.testing.assert_array_equal(joined[name], expected, err_msg=name)
    dry = audio.reshape(frames, hop)[order].reshape(-1)
    np.testing.assert_array_equal(joined["dry"], dry if loop else np.where(np.repeat(after, hop), 0.0, dry))
    assert all(block.dry.dtype == np.float32 for block in blocks)
    assert player.playing == loop and player.position == (25 % frames if loop else 0)


def play_file(model, player, tmp_path, seconds: float, start: float = 0.0, **settings) -> tuple[Engine, np.ndarray]:
    """Plays the prepared file from ``start`` on the clock-paced device for ``seconds`` of engine time;
    returns the stopped engine and its take."""
    player.seek(start)
    player.play()
    engine = Engine(model, player, settings=EngineSettings(device="none", record=tmp_path / "take.wav",
                                                           check_speed=False, **settings))
    engine.start()
    wait_for(lambda: engine.telemetry.time_s >= seconds)
    engine.stop()
    take, _ = soundfile.read(tmp_path / "take.wav", dtype="float32")
    return engine, take


@pytest.mark.parametrize("kernel", ["native", "tensorflow"])
def test_non_finite_live_input_is_heard_as_silence(choir_model, kernel):
    """A burst of NaN and Inf from the input (another JACK client gone wrong) reaches neither the model's features
    nor the dry signal: every frame is what the same burst of silence gives, with the kernel's analysis and with
    the numpy one."""
    voice = read_audio(DEMO_INPUT, RATE)[:2 * RATE]
    broken, silent = voice.copy(), voice.copy()
    broken[8000:8100], broken[9000], broken[9001] = np.nan, np.inf, -np.inf
    silent[8000:8100], silent[9000:9002] = 0.0, 0.0
    live = live_input(choir_model, "crepe-tiny", kernel=kernel)
    runs = []
    for audio in (broken, silent):
        live.reset()
        blocks = [live.process(audio[start:start + 256]) for start in range(0, len(audio), 256)]
        runs.append({name: np.concatenate([getattr(block, name) for block in blocks])
                     for name in ("f0_hz", "loudness_db", "confidence", "dry")})
    for name, values in runs[0].items():
        assert np.isfinite(values).all(), name
        np.testing.assert_array_equal(values, runs[1][name], err_msg=name)


def test_live_input_rests_on_the_models_mean_pitch_until_a_voice_is_heard(choir_model):

    resting = 440.0 * 2 ** ((choir_model.statistics.mean_pitch - 69) / 12)
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    for shift in (0.0, 12.0):
        live = live_input(choir_model, "yin", pitch_shift_semitones=shift)
        silence = [live.process(np.zeros(256, np.float32)) for _ in range(8)]
        # the model's own resting pitch whatever the shift, not the tracker's guess on silence
        np.testing.assert_allclose(np.concatenate([block.f0_hz for block in silence]), resting, rtol=1e-5)
        voiced = np.concatenate([live.process(tone[i:i + 256]).f0_hz for i in range(0, RATE, 256)])
        np.testing.assert_allclose(np.median(voiced[-20:]), 220.0 * 2 ** (shift / 12), rtol=0.01)
        after = np.concatenate([live.process(np.zeros(256, np.float32)).f0_hz for _ in range(12)])
        np.testing.assert_allclose(after[-8:], voiced[-1], rtol=0.01)  # then the last note is held
        live.reset()
        np.testing.assert_allclose(live.process(np.zeros(256, np.float32)).f0_hz, resting, rtol=1e-5)


def test_a_note_after_silence_starts_on_its_own_pitch(choir_model):
    """Live with CREPE tiny, whose pitch comes 36 ms after the loudness: within 16 ms of the loudness
    rising, the model hears the sung pitch (the onset pitch from the newest samples), not the pitch
    held from before for the 24-56 ms CREPE takes; and never a wrong one."""

    t = np.arange(RATE) / RATE
    live = live_input(choir_model, "crepe-tiny")
    for frequency in (110.0, 220.0, 440.0, 660.0):
        envelope = np.clip((t - 0.3) / 0.005, 0, 1) * (t < 0.8)  # a 5 ms attack after silence
        note = (envelope * 0.3 * sum(np.sin(2 * np.pi * frequency * k * t) / k ** 1.5 for k in range(1, 8)))
        blocks = [live.process(note[i:i + 256].astype(np.float32)) for i in range(0, RATE, 256)]
        f0 = np.concatenate([block.f0_hz for block in blocks])
        loudness = np.concatenate([block.loudness_db for block in blocks])
        rise = np.flatnonzero(loudness > -60)[0]
        cents = 1200 * np.log2(f0[rise:rise + 50] / frequency)
        in_tune = np.abs(cents) < 50
        assert in_tune[:5].any(), (frequency, f0[rise:rise + 12])
        first = np.argmax(in_tune)
        assert in_tune[first:].all(), (frequency, f0[rise:rise + 50])  # once there, it stays
        assert np.all(f0[rise:rise + first] == f0[rise - 1])  # before it, the held pitch, nothing else
        live.reset()


def test_onset_pitch_on_a_real_voice_moves_only_note_starts_and_towards_the_sung_pitch(choir_model):
    """The demo voice live with CREPE tiny, with and without the onset pitch: they differ only in the
    first frames of notes, and there the onset pitch is nearer the pitch offline analysis finds for
    the same moment than the held pitch was, with no octave errors."""
    from tuibend.engine.sources import LiveAnalysis

    audio = read_audio(DEMO_INPUT, RATE)
    plain = live_input(choir_model, "crepe-tiny")
    plain = LiveAnalysis(plain.analyzer, resting_f0_hz=plain.resting_f0_hz, onset_pitch=False)
    with_onset = live_input(choir_model, "crepe-tiny")
    blocks = range(0, len(audio) - 255, 256)
    held = np.concatenate([plain.process(audio[i:i + 256]).f0_hz for i in blocks])
    moved = np.concatenate([with_onset.process(audio[i:i + 256]).f0_hz for i in blocks])
    offline = analyze_audio(audio, make_tracker("crepe-tiny"))
    changed = np.flatnonzero(np.abs(1200 * np.log2(moved / held)) > 1)
    assert len(changed) >= 5
    truth = offline.f0_hz[changed]
    voiced = offline.confidence[changed] >= 0.5
    error_moved = np.abs(1200 * np.log2(moved[changed] / truth))[voiced]
    error_held = np.abs(1200 * np.log2(held[changed] / truth))[voiced]
    print(f"onset pitch: {len(changed)} frames moved, median error {np.median(error_moved):.0f} cents "
          f"(held: {np.median(error_held):.0f}), worst {error_moved.max():.0f}")
    assert np.median(error_moved) < 50 < np.median(error_held)
    assert error_moved.max() < 600
    # nowhere but within a CREPE lag (plus two frames) of the loudness coming up from quiet
    quiet = np.concatenate([[-80.0], offline.loudness_db[:-1]])[:len(held)] < -60
    last_quiet = np.maximum.accumulate(np.where(quiet, np.arange(len(quiet)), -1000))
    assert np.all(changed - last_quiet[changed] <= with_onset.analyzer.pitch_lag + 2)


@pytest.mark.parametrize(("kernel", "gain_db"), [("tensorflow", 0.0), ("native", 0.0), ("native", 6.0)])
def test_engine_output_equals_the_offline_render(choir_model, player, tmp_path, kernel, gain_db):
    """Block edges are seamless: a take of the engine equals the offline render of the same input
    through the same gate and level match (times the output gain). The native kernel draws its own
    white noise, so its take is compared with an offline render through the kernel (which equals
    TensorFlow's given the same noise: test_native)."""
    _, take = play_file(choir_model, player, tmp_path, 3.0, gain_db=gain_db, kernel=kernel)
    hop = choir_model.config.hop
    features = player.features[:len(take) // hop]
    dynamics = Dynamics.for_model(choir_model.config, GateSettings(), True, player.makeup_db)
    if kernel == "native":
        rig = BendRig([], point_widths(choir_model.config.decoder), 4, graph=False)  # 256 samples, as the engine
        reference = stream_features(NativeStream(choir_model, rig, 4, bfloat16=True), features,
                                    dynamics=dynamics, dry=player.audio, levels_db=player.levels_db)
    else:
        reference = render_features(choir_model, features, block_seconds=256 / RATE, dynamics=dynamics,
                                    dry=player.audio, levels_db=player.levels_db)
    reference = np.concatenate([np.zeros(hop, np.float32), reference]) * np.float32(10 ** (gain_db / 20))
    dc, limiter = DcBlocker(RATE), Limiter(RATE)  # block by block, as the engine runs them
    reference = np.concatenate([limiter.process(dc.process(reference[i:i + 256]))
                                for i in range(0, len(reference), 256)])
    n = min(len(take), len(reference))
    assert n >= 3 * RATE
    assert np.max(np.abs(take[:n] - reference[:n])) < 1e-4
    assert np.max(np.abs(take)) > 0.02 * 10 ** (gain_db / 20)


def test_a_full_disk_ends_the_take_and_the_log_never_the_performance(choir_model, player, tmp_path):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    (tmp_path / "take.wav.part").symlink_to("/dev/full")
    (tmp_path / "events.jsonl").symlink_to("/dev/full")
    player.seek(0.0)
    player.play()
    settings = EngineSettings(device="none", record=tmp_path / "take.wav", log=tmp_path / "events.jsonl",
                              check_speed=False)
    engine = Engine(choir_model, player, settings=settings)
    engine.start()
    try:
        wait_for(lambda: engine.telemetry.time_s >= 2.5)
        assert engine.error is None and not engine.recording_take
        log = tmp_path / "events.jsonl"
        assert engine.events.failure == f"events log {log}: No space left on device; no longer written"
        took = [e.value for e in engine.events.recent if e.target == "take"]
        assert took == [f"take {tmp_path / 'take.wav'} stopped: No space left on device"]
        before = engine.telemetry.time_s
        wait_for(lambda: engine.telemetry.time_s > before + 0.5)  # the music goes on
        assert engine.telemetry.output_db > -60
    finally:
        engine.stop()


def test_a_disk_that_stops_answering_delays_the_take_never_the_music(choir_model, player, tmp_path):
    """The take goes to a pipe whose reader does not read: its writes block, as a hung network disk's or a stalled
    USB stick's do. The music goes on meanwhile, stopping the engine does not hang on the disk, and once the disk
    answers everything queued reaches the file in order."""
    import fcntl
    import os

    partial = tmp_path / "take.wav.part"
    os.mkfifo(partial)
    reader = os.open(partial, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, 4096)  # full after 64 ms of audio
    player.seek(0.0)
    player.play()
    settings = EngineSettings(device="none", record=tmp_path / "take.wav", check_speed=False)
    engine = Engine(choir_model, player, settings=settings)
    engine.start()
    try:
        wait_for(lambda: engine.telemetry.time_s >= 2.0)  # the disk has taken nothing for two seconds
        assert engine.recording_take and engine.error is None and engine.telemetry.underruns == 0
    finally:
        asked = time.monotonic()
        engine.stop()
        stopping = time.monotonic() - asked
    assert stopping < 8.0
    assert engine.notice == "the disk has not answered for 5 s: the take and the log are left as far as written"
    received = bytearray()
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:  # the disk answers again: read until the file writer lets the file go
        try:
            chunk = os.read(reader, 65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not chunk:
            break
        received += chunk
    os.close(reader)
    assert received[:4] == b"RIFF" and (len(received) - 44) % 4 == 0
    samples = np.frombuffer(bytes(received[44:]), "<f4")
    assert len(samples) >= 2.0 * RATE  # all that played while the disk was stuck
    assert np.all(np.isfinite(samples)) and np.max(np.abs(samples)) > 0.02


def test_the_file_writer_rewrites_the_stats_each_second_and_logs_as_it_plays(choir_model, player, tmp_path):
    settings = EngineSettings(device="none", stats=tmp_path / "stats.json", log=tmp_path / "events.jsonl",
                              check_speed=False)
    engine = Engine(choir_model, player, settings=settings)
    engine.start()
    try:
        wait_for(lambda: (tmp_path / "stats.json").exists())
        first = json.loads((tmp_path / "stats.json").read_text())["blocks"]
        engine.set_gain(-3.0, "test")
        wait_for(lambda: json.loads((tmp_path / "stats.json").read_text())["blocks"] > first, 3.0)
        wait_for(lambda: any(e.target == "gain" for e in read_events(tmp_path / "events.jsonl")), 3.0)
    finally:
        engine.stop()


def test_a_take_the_disk_falls_a_backlog_behind_ends_and_keeps_what_reached_it(tmp_path):
    take = TakeWriter(tmp_path / "take.wav", RATE, backlog_seconds=0.1)
    block = np.full(RATE // 20, 0.5, np.float32)  # 50 ms
    take.write(block)
    take.write_pending()  # on disk
    for _ in range(4):  # the disk takes nothing more: 100 ms queued, then refused
        take.write(block)
    assert take.failure == f"take {tmp_path / 'take.wav'} stopped: the disk fell 0.1 s behind"
    assert take.samples == 3 * len(block)
    take.write_pending()  # an ended take writes nothing more as it plays
    take.close()  # its end writes what was queued before the failure
    audio, _ = soundfile.read(take.path, dtype="float32")
    assert len(audio) == 3 * len(block) and np.all(audio == 0.5) and not take.partial.exists()


def test_guard_mutes_a_blown_up_bend_and_the_engine_recovers(choir_model, player, tmp_path):
    scene = Scene("blow-up", [Bend("gru", "scale", 1.0, params={"gain": 1.0})])
    settings = EngineSettings(device="none", record=tmp_path / "take.wav", log=tmp_path / "events.jsonl",
                              check_speed=False)
    player.seek(0.0)
    player.play()
    engine = Engine(choir_model, player, [scene], settings)
    engine.start()
    wait_for(lambda: engine.telemetry.time_s >= 0.5)
    engine.set(0, "gain", 1e38)  # far outside the fader's range: the decoder overflows
    wait_for(lambda: engine.telemetry.guard_mutes > 0)
    engine.set(0, "gain", 1.0)
    wait_for(lambda: engine.telemetry.output_db > -60, seconds=5)
    mutes = engine.telemetry.guard_mutes
    engine.stop()
    take, _ = soundfile.read(tmp_path / "take.wav", dtype="float32")
    assert np.all(np.isfinite(take)) and np.max(np.abs(take)) <= 0.89
    assert np.max(np.abs(take[-RATE // 4:])) > 0.01  # sound again after the fader came back
    guards = [e for e in read_events(tmp_path / "events.jsonl") if e.target == "guard"]
    assert len(guards) == mutes > 0


def test_panic_resets_and_play_goes_on(choir_model, player, tmp_path):
    settings = EngineSettings(device="none", log=tmp_path / "events.jsonl", check_speed=False)
    player.seek(2.0)
    player.play()
    engine = Engine(choir_model, player, [Scene("held", [Bend("harmonics", "freeze", 1.0,
                                                              params={"rate": 0.0})])], settings)
    engine.start()
    wait_for(lambda: engine.telemetry.time_s >= 0.5)
    queued = engine.bridge.output.written
    engine.panic("test")
    assert engine.bridge.mute_until == queued  # the callback silences what was queued from now on
    wait_for(lambda: engine.telemetry.time_s >= 1.0)
    engine.stop()
    assert engine.telemetry.output_db > -60 and engine.error is None
    assert any(e.target == "panic" and e.source == "test" for e in read_events(tmp_path / "events.jsonl"))


def test_scene_recall_morphs_and_is_logged(choir_model, player, tmp_path):
    a = Scene("a", [Bend("fc1", "ablate", 0.0)], morph_seconds=0.2)
    b = Scene("b", [Bend("fc1", "ablate", 0.8)], morph_seconds=0.2)
    c = Scene("c", [Bend("gru", "invert", 0.5)], morph_seconds=0.2)
    settings = EngineSettings(device="none", log=tmp_path / "events.jsonl", check_speed=False)
    engine = Engine(choir_model, player, [a, b, c], settings)
    engine.start()
    engine.recall(1, "test")
    wait_for(lambda: engine.controller.value(0, "proportion") > 0.79)  # same chain: a morph
    assert engine.scene.name == "b"
    engine.recall(2, "test")  # another chain: fade out, swap, fade in
    wait_for(lambda: engine.scene.name == "c" and engine.controller.value(0, "proportion") > 0.49)
    assert not engine.recall(7)
    engine.stop()
    assert [e.value for e in read_events(tmp_path / "events.jsonl") if e.target == "scene"] == ["a", "b", "c"]


def test_the_clock_paced_device_plays_a_microphone_through_the_live_path(choir_model, tmp_path):
    """The virtual device hears a voice (looped) as a sound card's input would give it: the live analysis follows
    its pitch, and the output sounds while it sings and falls silent with a silent microphone."""
    voice = read_audio(DEMO_INPUT, RATE)[:3 * RATE]
    offline = analyze_audio(voice, make_tracker("crepe-tiny"))
    sung = np.median(offline.f0_hz[offline.confidence > 0.8])

    def perform(microphone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heard = []
        engine = Engine(choir_model, live_input(choir_model, "crepe-tiny"), settings=EngineSettings(
            device="none", record=tmp_path / "take.wav", check_speed=False, virtual_microphone=microphone))
        engine.observers.append(lambda block, gate_open: heard.append(block.f0_hz[block.confidence > 0.8]))
        engine.start()
        wait_for(lambda: engine.telemetry.time_s >= 2.5, 30)
        engine.stop()
        assert engine.live and engine.error is None
        take, _ = soundfile.read(tmp_path / "take.wav", dtype="float32")
        return np.concatenate(heard), take

    pitch, take = perform(voice)
    assert len(pitch) > 50 and abs(1200 * np.log2(np.median(pitch) / sung)) < 50
    assert np.sqrt(np.mean(take[RATE // 2:] ** 2)) > 0.01
    _, silent = perform(np.zeros(RATE, np.float32))
    assert np.max(np.abs(silent[RATE // 2:])) < 1e-3


def busy_for(seconds: float) -> None:
    """Keeps the calling thread busy (as a block's work would), not asleep."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def test_the_load_meter_counts_all_the_model_thread_does_for_a_block(choir_model, player):
    """What runs after a block is played (observers, the report, the log) is the model thread's time too: an
    observer that takes 6 ms of each 16 ms block shows in the load. The telemetry, built when read, shows the
    block's levels and pitch as they were played."""
    engine = Engine(choir_model, player, settings=EngineSettings(device="none", check_speed=False))
    assert engine.telemetry.blocks == 0 and engine.telemetry.load == 0.0  # nothing played yet
    played: list[tuple[float, float]] = []

    def slow_observer(block, gate_open) -> None:
        played.append((float(block.f0_hz[-1]), float(np.max(np.abs(block.dry)))))
        busy_for(0.006)

    engine.observers.append(slow_observer)
    engine.start()
    try:
        wait_for(lambda: engine.telemetry.time_s >= 2.0, 30)
    finally:
        engine.stop()
    telemetry, (f0_hz, peak) = engine.telemetry, played[-1]  # the last block, played and observed
    assert engine.error is None
    print(f"load {telemetry.load:.3f} (peak {telemetry.load_peak:.3f}) with a 6 ms observer a 16 ms block")
    assert 6.0 / 16.0 <= telemetry.load <= telemetry.load_peak < 1.0
    assert telemetry.blocks == len(played)
    assert telemetry.time_s == pytest.approx(len(played) * engine.block_frames / choir_model.config.frame_rate)
    assert telemetry.f0_hz == f0_hz and telemetry.input_db == pytest.approx(20 * np.log10(peak), abs=1e-4)


@pytest.mark.parametrize("live", [False, True], ids=["file", "live"])
def test_the_model_thread_sleeps_until_its_next_block_can_be_due(choir_model, player, live):
    """Between blocks the model thread sleeps until the device can have brought the next block's input (live)
    or drained a period of a file's queue, rather than looking every millisecond: about four looks a block
    (one after the block, one a millisecond or two before the next, then every millisecond), not fifteen (how late
    it may take a block: the next test, and the latency test through JACK)."""
    voice = read_audio(DEMO_INPUT, RATE)[:3 * RATE]
    source = live_input(choir_model, "crepe-tiny") if live else player
    engine = Engine(choir_model, source, settings=EngineSettings(device="none", check_speed=False,
                                                                virtual_microphone=voice if live else None))
    looks = []
    next_input = engine._next_input
    engine._next_input = lambda: looks.append(1) or next_input()
    engine.start()
    try:
        wait_for(lambda: engine.telemetry.blocks >= 40, 30)
        first, blocks = len(looks), engine.telemetry.blocks
        wait_for(lambda: engine.telemetry.blocks >= blocks + 100, 30)
        per_block = (len(looks) - first) / (engine.telemetry.blocks - blocks)
    finally:
        engine.stop()
    print(f"{per_block:.1f} looks a block ({'live' if live else 'file'})")
    assert engine.error is None and engine.telemetry.underruns == 0
    assert 1.0 <= per_block <= 5.0


def test_a_sleeping_model_thread_takes_a_live_block_as_soon_as_its_input_is_in(choir_model):
    """1024-sample blocks from 256-sample periods, and 20 ms of each block's work after the block (an observer):
    a period comes while the thread is busy, and the thread must not count the next block from when it saw that
    period, or it would wake after the block was in. Each block is taken within a few milliseconds of the period
    that completed it."""
    voice = read_audio(DEMO_INPUT, RATE)[:3 * RATE]
    engine = Engine(choir_model, live_input(choir_model, "crepe-tiny"), settings=EngineSettings(
        device="none", block=1024, check_speed=False, virtual_microphone=voice))
    periods, lateness = [], []
    next_input = engine._next_input

    def timed_next_input():
        looked = time.perf_counter()
        block = next_input()
        if block is not None and periods:
            lateness.append(looked - periods[-1])
        return block

    engine.observers.append(lambda block, gate_open: busy_for(0.020))
    engine._next_input = timed_next_input
    engine.start()
    callback = engine.bridge.callback

    def timed_callback(*args) -> None:
        callback(*args)
        periods.append(time.perf_counter())

    engine.bridge.callback = timed_callback
    try:
        wait_for(lambda: len(lateness) >= 40, 30)
    finally:
        engine.stop()
    late_ms = 1000 * np.percentile(lateness[5:], [50, 90])
    print(f"a block taken {late_ms[0]:.2f} ms (median), {late_ms[1]:.2f} ms (90th percentile) after its input")
    assert engine.error is None and late_ms[1] < 2.5


def test_starting_twice_runs_one_model_thread(choir_model, player):
    import threading

    def model_threads() -> int:
        return sum(thread.name == "tuibend-model" for thread in threading.enumerate())

    before = model_threads()
    engine = Engine(choir_model, player, settings=EngineSettings(device="none", check_speed=False))
    engine.start()
    engine.start()  # a second interface over the same engine
    try:
        assert model_threads() == before + 1
    finally:
        engine.stop()
    assert model_threads() == before


def test_a_chain_that_cannot_be_compiled_is_refused_and_the_scene_plays_on(choir_model, player, monkeypatch):
    """Every chain TensorFlow compiles keeps its memory maps for the life of the process: when too few
    are left, a new structure is refused with a message, and the chain playing goes on (no crash, no stop)."""
    from tuibend.engine import chains

    player.seek(0.0)
    player.play()
    playing = Scene("playing", [Bend("fc1", "ablate", 0.3)], morph_seconds=0.1)
    engine = Engine(choir_model, player, [playing], EngineSettings(device="none", check_speed=False,
                                                                    kernel="tensorflow"))
    engine.start()
    monkeypatch.setattr(chains, "map_headroom", lambda: chains.MAPS_RESERVE - 1)
    engine.load(Scene("new", [Bend("fc2", "invert", 0.5)]), "test")  # a structure never compiled
    wait_for(lambda: engine.telemetry.notice is not None, 30)
    blocks = engine.telemetry.blocks
    wait_for(lambda: engine.telemetry.blocks > blocks + 20)
    notice, scene_after_refusal = engine.telemetry.notice, engine.scene.name
    # Room again (another process ended, say): the same structure recalled is compiled afresh, not
    # refused from memory of the first attempt.
    monkeypatch.setattr(chains, "map_headroom", lambda: 10 * chains.MAPS_RESERVE)
    engine.load(Scene("new", [Bend("fc2", "invert", 0.5)], morph_seconds=0.1), "test")
    wait_for(lambda: engine.scene.name == "new", 60)
    engine.stop()
    assert "no room to compile another chain structure" in notice
    assert "'playing' plays on" in notice
    assert engine.error is None and scene_after_refusal == "playing"


def test_the_kernel_falls_back_to_tensorflow_only_when_allowed_and_says_why(choir_model, player, monkeypatch):
    import tuibend.native

    assert Engine(choir_model, player, settings=EngineSettings(device="none")).kernel == "native"
    monkeypatch.setattr(tuibend.native, "available", lambda: "no C compiler (cc) to build the native kernel")
    engine = Engine(choir_model, player, settings=EngineSettings(device="none"))
    assert engine.kernel == "tensorflow" and "no C compiler" in engine.notice
    with pytest.raises(EngineError, match="--kernel native: no C compiler"):
        Engine(choir_model, player, settings=EngineSettings(device="none", kernel="native"))
    with pytest.raises(EngineError, match="kernel 'fast'"):
        Engine(choir_model, player, settings=EngineSettings(device="none", kernel="fast"))


def test_native_chains_need_no_memory_maps(choir_model, player, monkeypatch):
    """The native kernel keeps no compiled executables: a new structure plays however few maps are left."""
    from tuibend.engine import chains

    player.seek(0.0)
    player.play()
    engine = Engine(choir_model, player, [Scene("playing", [Bend("fc1", "ablate", 0.3)])],
                    EngineSettings(device="none", check_speed=False, kernel="native"))
    engine.start()
    monkeypatch.setattr(chains, "map_headroom", lambda: 0)
    engine.load(Scene("new", [Bend("fc2", "invert", 0.5)], morph_seconds=0.1), "test")
    wait_for(lambda: engine.scene.name == "new", 30)
    engine.stop()
    assert engine.kernel == "native" and engine.error is None and engine.telemetry.notice is None


def test_a_failed_chain_is_compiled_again_only_when_the_failure_may_have_cleared():
    """A structure refused for want of memory maps is tried again at its next recall; one whose
    compiling failed otherwise is not traced again mid-performance (its failure stands)."""
    import threading

    from tuibend.engine.chains import ChainPreparer, NoRoomForChain

    attempts = []
    looked = threading.Event()  # the retry ends only once the test has seen it under way (no race with it)

    def build(bends):
        attempts.append(bends[0].transform)
        if bends[0].transform == "ablate":
            if attempts.count("ablate") > 1:
                looked.wait(10)
            raise NoRoomForChain("no room to compile another chain structure")
        raise ValueError("this transform cannot be compiled")

    preparer = ChainPreparer(build)
    try:
        short_of_room, broken = [Bend("fc1", "ablate", 0.3)], [Bend("fc1", "invert", 0.3)]
        for bends in (short_of_room, broken):
            key = preparer.request(bends)
            wait_for(lambda key=key: preparer.failure(key) is not None)
        recalled = preparer.request(broken)
        assert preparer.failure(recalled).startswith("ValueError")
        assert preparer.failure(preparer.request(short_of_room)) is None  # being tried again
        looked.set()
        wait_for(lambda: attempts.count("ablate") == 2)
        wait_for(lambda: not preparer.busy)
        assert attempts.count("invert") == 1
    finally:
        preparer.close()


def test_model_too_slow_is_refused_with_advice(choir_model, player, monkeypatch):
    import tuibend.engine.engine as engine_module

    monkeypatch.setattr(engine_module, "SLOW_LOAD", 0.0)
    engine = Engine(choir_model, player, settings=EngineSettings(device="none", block=64))
    with pytest.raises(EngineError, match=r"too slow for 64-sample blocks.*--block 256.*small model"):
        engine.prepare()


def test_block_sizes_are_checked(choir_model, player):
    with pytest.raises(EngineError, match="block size 100"):
        Engine(choir_model, player, settings=EngineSettings(block=100))


# ----- through JACK -------------------------------------------------------------------------------


def run_play(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(play_command(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def play_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuibend.cli", "play", "--headless", "--model", str(BUNDLED_MODEL), *args]


def start_play(*args: str) -> subprocess.Popen:
    """``tuibend play --headless`` in its own process (as on stage), once its JACK ports exist."""
    import jack

    probe = jack.Client("probe-ports", no_start_server=True)
    assert not probe.get_ports("tuibend:"), "another tuibend is playing on this JACK server"
    process = subprocess.Popen(play_command(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_for(lambda: probe.get_ports("tuibend:", is_audio=True) or process.poll() is not None, 120)
    finally:
        probe.close()
    if process.poll() is not None:
        raise AssertionError("tuibend play ended early: " + " | ".join(process.communicate()))
    return process


def test_duplex_run_through_jack_with_a_changing_chain(jack_server, tmp_path):
    """30 s of live input through JACK, the five-bend chain changing every 100 ms: no underrun."""
    save_scene(tmp_path / "five.toml", Scene("five", FIVE_BENDS))
    rng = np.random.default_rng(0)
    (tmp_path / "moves.jsonl").write_text("".join(
        json.dumps({"t": 0.1 * i, "source": "script", "target": f"bend{1 + i % 5}.proportion",
                    "value": float(rng.uniform())}) + "\n" for i in range(1, 300)))
    harness = Harness(seconds=40)
    voice, _ = soundfile.read(DEMO_INPUT, dtype="float32")
    process = start_play("--input", "mic", "--scene", str(tmp_path / "five.toml"), "--replay",
                         str(tmp_path / "moves.jsonl"), "--record", str(tmp_path / "take.wav"), "--stats",
                         str(tmp_path / "stats.json"), "--log", str(tmp_path / "events.jsonl"), "--duration", "30")
    try:
        harness.wire("tuibend")
        harness.play(np.concatenate([voice, voice]))
        _, stderr = process.communicate(timeout=120)
    finally:
        harness.close()
    assert process.returncode == 0, stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    take, _ = soundfile.read(tmp_path / "take.wav", dtype="float32")
    # tuibend's own rings never ran dry or full (periods JACK itself reported late are counted apart)
    assert (stats["underruns"], stats["overruns"]) == (0, 0), f"JACK xruns: {stats['xruns']}"
    # the program's default: the native kernel, its layers in bfloat16 where the CPU has AVX512-BF16
    assert stats["kernel"] == "native"
    assert stats["bfloat16"] == ("avx512_bf16" in Path("/proc/cpuinfo").read_text())
    assert abs(len(take) / RATE - 30.0) < 1.0
    assert np.sqrt(np.mean(take ** 2)) > 0.01
    moves = [e for e in read_events(tmp_path / "events.jsonl") if e.source == "replay"]
    assert len(moves) >= 280  # every change was applied (and logged) within the 30 s


def test_added_latency_through_jack(choir_model, jack_server, tmp_path):
    """Onset to onset through tuibend, minus a plain passthrough client's round trip, at 256 samples.

    The total is the engine's own delay (queued output, one hop, the loudness window's lag) plus
    the model's attack: how long the trained instrument takes to speak, measured offline here."""
    from tuibend.pitch.analysis import StreamingAnalyzer, analyze_audio
    from tuibend.pitch.trackers import make_tracker

    t = np.arange(RATE // 2) / RATE
    burst = np.concatenate([np.zeros(RATE, np.float32), (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
                            np.zeros(RATE // 2, np.float32)])
    offline = render_features(choir_model, analyze_audio(burst, make_tracker("crepe-tiny")))
    attack = (onset(offline, RATE // 2) - RATE) / RATE * 1000

    def round_trip(client: str) -> float:
        harness = Harness(f"harness-{client.lower()}", seconds=4)
        try:
            harness.wire(client)
            start, _ = harness.play(burst)
            wait_for(lambda: harness.recorded > start + 2 * RATE)
        finally:
            harness.close()
        return (onset(harness.recording, start + RATE // 2) - (start + RATE)) / RATE * 1000

    passthrough = Passthrough()
    try:
        baseline = round_trip("passthrough")
    finally:
        passthrough.close()
    results, loads = {}, {}
    (tmp_path / "unbent").mkdir()  # a scenes folder with no scene: the model unbent
    for margin, bypass in (("0", False), ("0", True), ("1", False)):
        totals = []
        for _ in range(2):  # the better of two starts: at margin 0 one that begins late plays a period later
            # the level match off: its gain, rising over the burst's first notes, would move the -20 dB onset
            process = start_play("--input", "mic", "--margin", margin, "--no-level-match",
                                 "--stats", str(tmp_path / "stats.json"),
                                 "--scenes", str(tmp_path / "unbent"), *(["--bypass"] if bypass else []))
            try:
                totals.append(round_trip("tuibend"))
            finally:
                process.terminate()
                process.communicate(timeout=60)
        total = min(totals)
        stats = json.loads((tmp_path / "stats.json").read_text())
        estimate, loads[margin, bypass] = stats["latency_ms"], stats["load"]
        results[margin, bypass] = added = total - baseline
        label = f"margin {margin}" + (", bypass" if bypass else "")
        print(f"\nlatency at 256 samples, {label}: passthrough {baseline:.1f} ms, "
              f"tuibend {total:.1f} ms, added {added:.1f} ms; engine's estimate {estimate:.1f} ms, "
              f"model attack offline {attack:.1f} ms (crepe-tiny pitch lag 36 ms)")
    assert 0 <= baseline < 80
    # The bypass path is the buffering alone; the model path adds one hop, the loudness lag and the attack.
    hop_and_lag = 4.0 + StreamingAnalyzer(make_tracker("crepe-tiny")).latency_ms["loudness"]
    assert abs(results["0", False] - results["0", True] - hop_and_lag - attack) < 12
    assert 12 < results["1", False] - results["0", False] < 22  # the margin costs one 16 ms period
    # The load meter counts the live analysis (CREPE tiny and loudness, as the engine runs it): bypassed, the
    # model idle, it is still at least half of what the analysis alone costs a block here.
    analysis = live_input(choir_model, "crepe-tiny")
    blocks = [burst[i:i + 256] for i in range(0, len(burst) - 256, 256)]
    started = time.perf_counter()
    for block in blocks:
        analysis.process(block)
    analysis_load = (time.perf_counter() - started) / len(blocks) / (256 / RATE)
    print(f"load with the model bypassed {loads['0', True]:.3f}, the analysis alone {analysis_load:.3f}")
    assert loads["0", True] >= 0.5 * analysis_load


def test_live_voice_falls_silent_in_the_microphones_noise_floor_through_jack(jack_server, tmp_path):
    """A note sung into a -60 dBFS floor (under it too, as a real microphone's), through JACK with
    CREPE running: the bundled model's output falls 60 dB below its playing level within 150 ms of
    the note's end, and stays silent in the floor before it once the gate has learned the floor (two
    seconds of signal: the input is digital silence until the harness is wired)."""
    rng = np.random.default_rng(5)
    t = np.arange(int(1.5 * RATE)) / RATE
    note = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 12))
    note *= 0.1 / np.sqrt(np.mean(note ** 2)) * np.minimum(1, t / 0.01) * np.minimum(1, (t[-1] - t) / 0.01)
    lead, tail = 3 * RATE, int(1.5 * RATE)  # the floor alone: three seconds to learn it, then after the note
    audio = np.concatenate([np.zeros(lead), note, np.zeros(tail)])
    audio = (audio + 10 ** (-60 / 20) * rng.standard_normal(len(audio))).astype(np.float32)
    (tmp_path / "unbent").mkdir()  # a scenes folder with no scene: the model unbent
    process = start_play("--input", "mic", "--margin", "1", "--scenes", str(tmp_path / "unbent"))
    harness = Harness("harness-floor", seconds=12)
    try:
        harness.wire("tuibend")
        start, length = harness.play(audio)
        wait_for(lambda: harness.recorded > start + length + RATE // 2, seconds=20)
    finally:
        harness.close()
        process.terminate()
        process.communicate(timeout=60)
    out = harness.recording[start:start + length + RATE // 2]
    soundfile.write(tmp_path / "floor-take.wav", out, RATE)
    delay = onset(out, lead - RATE // 2, -40.0) - lead  # the instrument's latency, onset to onset
    assert 0 <= delay < 0.2 * RATE
    levels = 10 * np.log10(np.mean(out[:len(out) // 160 * 160].reshape(-1, 160).astype(np.float64) ** 2, 1) + 1e-14)
    stop = (lead + len(note) + delay) // 160  # the note's end as heard at the output, in 10 ms frames
    playing = np.median(levels[stop - 50:stop])
    loud_after = np.nonzero(levels[stop:] > playing - 60)[0]
    fall_ms = 10 * (loud_after[-1] + 1) if len(loud_after) else 0
    before = levels[(lead + delay) // 160 - 80:(lead + delay) // 160 - 2]  # the floor's last 0.8 s before the note
    print(f"\nlive, -60 dBFS floor: playing {playing:.1f} dBFS, falls 60 dB in {fall_ms} ms; "
          f"in the floor before the note {np.max(before) - playing:.0f} dB")
    assert abs(playing - 20 * np.log10(0.1)) < 3  # at the player's level (the note: -20 dBFS RMS)
    assert fall_ms <= 150
    assert np.max(before) < playing - 60  # no drone in the floor


# ----- the command ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["native", "tensorflow"])
def test_headless_play_with_no_audio_device_paces_into_the_take(tmp_path, kernel):
    """With no device the performance plays paced by the clock into a take. TensorFlow (seconds of start-up, half
    a gigabyte) loads only where it runs the chains: the kernel's performance, its file analysed by the kernel's
    CREPE in a fresh cache, runs without it."""
    import os

    save_scene(tmp_path / "scenes" / "scaled.toml", Scene("scaled", [Bend("fc1", "scale", 0.5, params={"gain": 2.0})]))
    env = {**os.environ, "JACK_DEFAULT_SERVER": "tuibend-no-such-server", "JACK_NO_START_SERVER": "1",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    probe = ("import sys; from tuibend.cli import main; status = main(sys.argv[1:]); "
             "print('tensorflow loaded:', 'tensorflow' in sys.modules); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", probe, *play_command(
        "--duration", "2", "--record", str(tmp_path / "take.wav"), "--log", str(tmp_path / "events.jsonl"),
        "--scenes", str(tmp_path / "scenes"), "--kernel", kernel)[3:]], cwd=REPO, capture_output=True, text=True,
        timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    assert "no audio device" in result.stderr
    take, rate = soundfile.read(tmp_path / "take.wav")
    assert 1.5 < len(take) / rate < 2.6 and np.max(np.abs(take)) > 0.01
    assert "Traceback" not in result.stderr
    assert f", {kernel}" in result.stdout  # the summary names the kernel that played
    assert f"tensorflow loaded: {kernel == 'tensorflow'}" in result.stdout


def test_a_bad_scene_among_good_ones_is_skipped_with_its_file_and_field(tmp_path):
    import os

    folder = tmp_path / "scenes"
    save_scene(folder / "good.toml", Scene("good", [Bend("fc1", "scale", 0.5, params={"gain": 2.0})]))
    good = (folder / "good.toml").read_text()
    (folder / "seed.toml").write_text(good.replace('name = "good"', 'name = "seed"').replace("seed = 0", "seed = -1"))
    (folder / "clusters.toml").write_text(good.replace('name = "good"', 'name = "clusters"').replace(
        'method = "random"', 'method = "cluster"\nclusters = 1000000'))
    (folder / "morph.toml").write_text(good.replace("morph_seconds = 0.0", "morph_seconds = inf"))
    lane = '\n[automation."1.gain"]\ntype = "breakpoints"\ntimes = [0.0, 1.0]\nvalues = [1.0, 1e30]\n'
    (folder / "lane.toml").write_text(good.replace('name = "good"', 'name = "lane"') + lane)
    env = {**os.environ, "JACK_DEFAULT_SERVER": "tuibend-no-such-server", "JACK_NO_START_SERVER": "1"}
    result = run_play("--duration", "1", "--block", "1024", "--scenes", str(folder),
                      "--record", str(tmp_path / "take.wav"), env=env)
    assert result.returncode == 0, result.stderr
    for fault in ("seed.toml: bend[1].seed: -1 is outside 0..4294967295",
                  "clusters.toml: bend[1].select.clusters: 1000000 (allowed: 4, 8)",
                  "morph.toml: morph_seconds: expected a finite number, got inf",
                  "lane.toml: automation.1.gain: 1e+30 is outside gain's range [-10.0, 10.0]"):
        assert f"scene skipped: {folder / fault}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("hang_up", [signal.SIGHUP, signal.SIGTERM])
def test_a_hang_up_finishes_the_take_and_the_log(tmp_path, hang_up):
    """A dropped SSH connection (SIGHUP) ends a performance as SIGTERM does: the take renamed and whole."""
    import os

    env = {**os.environ, "JACK_DEFAULT_SERVER": "tuibend-no-such-server", "JACK_NO_START_SERVER": "1"}
    process = subprocess.Popen(play_command("--record", str(tmp_path / "take.wav"), "--log",
                                            str(tmp_path / "events.jsonl")), cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (tmp_path / "take.wav.part").exists() and (tmp_path / "take.wav.part").stat().st_size > 64000,
             seconds=120)
    process.send_signal(hang_up)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in stderr
    assert not (tmp_path / "take.wav.part").exists()
    take, rate = soundfile.read(tmp_path / "take.wav")
    assert len(take) / rate > 0.9
    assert "scene" in [event.target for event in read_events(tmp_path / "events.jsonl")]  # flushed


@pytest.mark.parametrize(("args", "message"), [
    (["--kernel", "fast"], "--kernel: invalid choice"),
    (["--osc", "70000"], "give a UDP port (0 to 65535)"),
    (["--device", "no-such-card"], "audio device 'no-such-card'"),
    (["--block", "100"], "block size 100"),
    (["--input", "no-such.wav"], "no-such.wav: no such file"),
    (["--model", "no-such-model"], "no-such-model"),
])
def test_play_errors_are_one_clear_line(args, message, jack_server):
    result = run_play("--duration", "1", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_device_rate_other_than_the_models_is_resampled_as_it_streams(choir_model, player, tmp_path):
    """At 48 kHz the device gets three samples for each of the model's, and the same music."""
    engine, take = play_file(choir_model, player, tmp_path, 2.0, start=3.0, virtual_rate=48000,
                             keep_virtual_output=True, gate=GateSettings(enabled=False), level_match=False)
    played = np.concatenate(engine._stream.played)
    produced = played[np.argmax(np.abs(played) > 1e-4):]  # from the first sound, past the queued silence
    start = np.argmax(np.abs(take) > 1e-4)
    n = min(len(produced) // 3, len(take) - start) - 2000
    assert n > RATE
    import soxr

    expected = soxr.resample(take[start:start + n], RATE, 48000)
    window = expected[3000:3000 + 16384]
    lags = range(-600, 601)  # the two resamplers' delays differ by a few hundred samples at most
    lag = max(lags, key=lambda k: float(np.dot(produced[3000 + k:3000 + k + len(window)], window)))
    aligned = produced[3000 + lag:3000 + lag + len(window)]
    # MQ streaming against VHQ whole-signal resampling, a fractional delay apart: 8 % measured here
    assert np.linalg.norm(aligned - window) / np.linalg.norm(window) < 0.15
    # stopped, the engine lets its native resamplers go (else soxr reports them leaked at exit)
    assert engine._resample_out is None


def test_headless_play_follows_a_midi_fader_bank_through_jack(jack_server, tmp_path):
    """``tuibend play --headless --midi virtual``: a controller on JACK MIDI moves bend 1 with CC 20 (the
    default map) and recalls scene 2 with a program change; the events log has both from "midi"."""
    import rtmidi

    scenes = tmp_path / "scenes"
    for name, point in (("first", "fc1"), ("second", "gru")):
        save_scene(scenes / f"{name}.toml", Scene(name, [Bend(point, "ablate", 0.5)]))
    process = start_play("--input", str(DEMO_INPUT), "--scenes", str(scenes), "--midi", "virtual", "--midi-api",
                         "jack", "--midi-map", str(tmp_path / "midi.toml"), "--log", str(tmp_path / "events.jsonl"),
                         "--duration", "8")
    controller = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "test-fader-bank")
    try:
        wait_for(lambda: "tuibend-midi:tuibend" in controller.get_ports(), 30)
        controller.open_port(controller.get_ports().index("tuibend-midi:tuibend"))
        time.sleep(0.5)
        for value in (60, 64, 90, 100):  # soft takeover: from below the fader's 0.5, through it
            controller.send_message([0xB0, 20, value])
            time.sleep(0.1)
        controller.send_message([0xC0, 1])
        _, stderr = process.communicate(timeout=60)
    finally:
        controller.close_port()
        controller.delete()
    assert process.returncode == 0, stderr
    log = [e for e in read_events(tmp_path / "events.jsonl") if e.source == "midi"]
    moves = [e.value for e in log if e.target == "bend1.proportion"]
    assert moves and moves[-1] == pytest.approx(100 / 127, abs=1e-3)
    assert any(e.target == "scene" and e.value == "second" for e in log)


def test_a_take_a_crash_left_unfinished_is_recovered_whole(tmp_path):
    """A take cut off mid-block (the process killed between header syncs) keeps every sample on disk:
    recovery fixes the header, drops a torn last sample, renames it beside any take of that name, and
    leaves alone a .part still being written and a file that is not a take."""
    import os

    from tuibend.engine.take import recover_take, recover_takes
    from tuibend.errors import InputError

    rng = np.random.default_rng(3)
    blocks = [rng.uniform(-0.5, 0.5, 256).astype(np.float32) for _ in range(40)]
    writer = TakeWriter(tmp_path / "take-a.wav", 16000, sync_seconds=3600.0)
    for index, block in enumerate(blocks):
        writer.write(block)
        if index == 9:
            writer.sync()  # the header says ten blocks; thirty more follow unsynced
    writer.write_pending()  # the file writer's last pass
    writer._file.close()  # killed: no close(), no rename
    with open(writer.partial, "ab") as file:
        file.write(b"\x01\x02")  # half a sample, torn by the power cut
    (tmp_path / "take-a.wav").write_bytes(b"an earlier take of that name")
    fresh = TakeWriter(tmp_path / "take-b.wav", 16000)
    fresh.write(blocks[0])
    (tmp_path / "notes.wav.part").write_bytes(b"not a take at all, just bytes")
    old = time.time() - 60
    for path in (writer.partial, tmp_path / "notes.wav.part"):
        os.utime(path, (old, old))

    lines = recover_takes(tmp_path)
    assert lines == [f"take not recovered: {tmp_path / 'notes.wav.part'}: not a take tuibend recorded (no float "
                     "WAV header); left as it is",
                     f"recovered an unfinished take: {tmp_path / 'take-a-recovered-1.wav'} (0.6 s)"]
    audio, rate = soundfile.read(tmp_path / "take-a-recovered-1.wav", dtype="float32")
    assert rate == 16000 and np.array_equal(audio, np.concatenate(blocks))
    assert fresh.partial.exists() and (tmp_path / "notes.wav.part").exists()  # still recording; not a take
    fresh.close()
    with pytest.raises(InputError, match="not a take tuibend recorded"):
        recover_take(tmp_path / "notes.wav.part")


def test_a_killed_performance_leaves_a_take_that_takes_recover_finishes(tmp_path):
    """SIGKILL (no handler runs) mid-performance leaves take.wav.part; `tuibend takes --recover` makes it
    whole, says so, and lists it with its length; the next `tuibend play` would do the same."""
    import os

    record = tmp_path / "takes" / "killed.wav"
    process = subprocess.Popen(play_command("--device", "none", "--record", str(record), "--scenes",
                                            str(tmp_path)), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    partial = record.with_name("killed.wav.part")
    try:
        wait_for(lambda: partial.exists() and partial.stat().st_size > 44 + 4 * 16000 * 2, seconds=120)
    finally:
        process.kill()
        process.communicate()
    assert partial.exists() and not record.exists()
    old = time.time() - 60
    os.utime(partial, (old, old))
    result = subprocess.run([sys.executable, "-m", "tuibend.cli", "takes", str(record.parent), "--recover"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"recovered an unfinished take: {record}" in result.stdout and "killed.wav " in result.stdout
    audio, rate = soundfile.read(record)
    assert len(audio) / rate >= 2.0 and np.max(np.abs(audio)) > 0.01
