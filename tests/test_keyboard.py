"""The model played from a MIDI keyboard, and the player's pitch sent out as MIDI notes: the voice's
curves, the scene's settings, and the whole program through JACK MIDI and audio."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import soundfile
from conftest import DEMO_INPUT, wait_for

from tuibend.bend.scene import Scene, SceneError, save_scene, scene_from_toml, scene_to_toml
from tuibend.errors import InputError
from tuibend.keyboard import KeyboardVoice, VoiceSettings, parse_settings

FRAME_RATE = 250
FLOOR = -80.0


def voice(**settings) -> KeyboardVoice:
    return KeyboardVoice(FRAME_RATE, FLOOR, -60.0, -5.0, VoiceSettings(**settings), resting_f0_hz=330.0)


def cents(f0: np.ndarray, reference: float) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(f0) / reference)


def frames(ms: float) -> int:
    return round(ms * FRAME_RATE / 1000)


@pytest.mark.quick
def test_a_note_sounds_its_pitch_and_a_bend_moves_it():
    keys = voice()
    f0, loudness, confidence = keys.render(10)
    assert np.all(loudness == FLOOR) and np.all(confidence == 0) and np.allclose(f0, 330.0)  # resting: silent
    keys.receive("note_on", 69, 100)
    f0, loudness, confidence = keys.render(frames(500))
    assert np.allclose(f0, 440.0) and np.all(confidence == 1) and loudness.max() > -11
    keys.receive("pitchbend", 0, 8192 + 4096)  # half the default range of 2: one semitone up
    f0, _, _ = keys.render(5)
    assert np.allclose(cents(f0, 440.0), 100.0, atol=0.1)
    keys.receive("pitchbend", 0, 0)  # the bottom: two semitones down
    assert np.allclose(cents(keys.render(5)[0], 440.0), -200.0, atol=0.1)


@pytest.mark.quick
def test_velocity_places_the_level_in_the_models_range_and_release_falls_sixty_db():
    keys = voice(release_ms=200.0)
    levels = {}
    for velocity in (100, 30):
        keys.receive("note_on", 60, velocity)
        levels[velocity] = float(np.median(keys.render(frames(600))[1][-frames(200):]))
        keys.receive("note_off", 60, 0)
        _, released, confidence = keys.render(frames(400))
        assert released[frames(200) - 1] <= max(FLOOR, levels[velocity] - 59.0)  # 60 dB down in the release
        assert np.all(released[frames(250):] == FLOOR) and confidence[-1] == 0
    assert levels[100] - levels[30] >= 25.0  # the model's output moves about a third of that
    assert -16.0 < levels[100] < -8.0  # a full note of the model, its sustain 3 dB under the peak


@pytest.mark.quick
def test_last_note_priority_and_legato_glide():
    keys = voice(glide_ms=100.0)
    keys.receive("note_on", 60, 100)
    keys.render(frames(200))
    keys.receive("note_on", 64, 100)  # legato: glides, no new attack
    f0, loudness, _ = keys.render(frames(150))
    assert 0 < cents(f0[0], 261.63) < 400 and abs(cents(f0[-1], 329.63)) < 2
    assert loudness.min() > -15  # no dip: the envelope carried on
    keys.receive("note_off", 64, 0)  # back to the key still held
    f0, _, confidence = keys.render(frames(150))
    assert abs(cents(f0[-1], 261.63)) < 2 and confidence[-1] == 1


@pytest.mark.quick
def test_the_mod_wheel_sets_the_vibrato_and_a_breath_controller_the_level():
    keys = voice(vibrato_delay_ms=0.0, vibrato_rate_hz=5.0, vibrato_depth_cents=50.0, pressure_cc=2)
    keys.receive("note_on", 69, 100)
    assert np.ptp(cents(keys.render(frames(400))[0], 440.0)) < 0.01  # the wheel at 0: none
    keys.receive("cc", 1, 127)
    swing = cents(keys.render(frames(400))[0], 440.0)
    assert 95.0 < np.ptp(swing) <= 100.0  # +-50 cents at the wheel's top
    keys.receive("cc", 2, 20)  # breath: soft now, whatever the velocity
    soft = keys.render(frames(100))[1][-1]
    keys.receive("cc", 2, 127)
    assert keys.render(frames(100))[1][-1] - soft > 10.0
    assert not keys.receive("cc", 7, 100)  # not the voice's: left for a fader mapping


@pytest.mark.quick
def test_settings_from_the_command_line_and_a_scene(tmp_path):
    assert parse_settings("attack=5, release=300,cc=2") == VoiceSettings(attack_ms=5.0, release_ms=300.0,
                                                                         pressure_cc=2)
    for bad, fault in (("attack", "NAME=NUMBER"), ("attack=fast", "NAME=NUMBER"), ("loud=3", "unknown setting"),
                       ("release=-1", "at least 0"), ("sustain=6", "at most 0"), ("cc=200", "controller")):
        with pytest.raises(InputError, match=fault):
            parse_settings(bad)
    scene = Scene("keys", keyboard=VoiceSettings(attack_ms=2.0, glide_ms=80.0))
    path = save_scene(tmp_path / "keys.toml", scene)
    assert "[keyboard]" in path.read_text() and scene_from_toml(path.read_text()).keyboard == scene.keyboard
    assert scene_from_toml(scene_to_toml(Scene("plain"))).keyboard is None
    with pytest.raises(SceneError, match=r"keyboard: unknown setting 'atack'"):
        scene_from_toml('name = "x"\n[keyboard]\natack = 3\n')


# ----- through JACK -------------------------------------------------------------------------------------


def _open_controller(name: str, port: str):
    import rtmidi

    controller = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)
    wait_for(lambda: port in controller.get_ports(), 30)
    controller.open_port(controller.get_ports().index(port))
    return controller


def _pitch(audio: np.ndarray, rate: int) -> float:
    """The median pitch of a steady stretch (YIN), Hz."""
    from tuibend.pitch.analysis import analyze_audio
    from tuibend.pitch.trackers import make_tracker

    features = analyze_audio(audio, make_tracker("yin"), sample_rate=rate)
    voiced = features.f0_hz[features.confidence > 0.5]
    return float(np.median(voiced))


def _level_db(audio: np.ndarray) -> float:
    return 10.0 * math.log10(float(np.mean(audio ** 2)) + 1e-20)


def test_a_keyboard_plays_the_model_through_jack(jack_server, tmp_path):
    """--input midi: A4 at velocity 100 sounds 440 Hz; a bend of one semitone moves it; velocity 30 is at
    least 6 dB softer; note off falls 40 dB within the release; 1000 MIDI messages a second: no underrun."""
    from test_engine import start_play

    take, stats = tmp_path / "take.wav", tmp_path / "stats.json"
    (tmp_path / "unbent").mkdir()
    save_scene(tmp_path / "unbent" / "unbent.toml", Scene("unbent"))
    process = start_play("--input", "midi", "--midi", "virtual", "--midi-api", "jack", "--scenes",
                         str(tmp_path / "unbent"), "--record", str(take), "--stats", str(stats),
                         "--keyboard", "attack=10,decay=100,sustain=-3,release=150", "--midi-map",
                         str(tmp_path / "midi.toml"))
    controller = _open_controller("test-keyboard", "tuibend-midi:tuibend")
    try:
        time.sleep(0.5)
        marks = {}
        start = time.monotonic()

        def mark(name: str) -> None:
            marks[name] = time.monotonic() - start

        mark("loud on")
        controller.send_message([0x90, 69, 100])
        time.sleep(1.2)
        mark("bend")
        controller.send_message([0xE0, 0, 96])  # 8192 + 4096: one semitone up (range 2)
        time.sleep(0.8)
        controller.send_message([0xE0, 0, 64])
        mark("loud off")
        controller.send_message([0x80, 69, 0])
        time.sleep(1.0)
        mark("soft on")
        controller.send_message([0x90, 69, 30])
        time.sleep(1.2)
        controller.send_message([0x80, 69, 0])
        time.sleep(0.6)
        controller.send_message([0x90, 64, 90])  # a storm: 1000 messages a second for 3 s, while a note holds
        storm = time.monotonic()
        for index in range(3000):
            controller.send_message([0xD0, 60 + index % 40] if index % 2 else [0xB0, 1, index % 128])
            time.sleep(max(0.0, storm + (index + 1) / 1000 - time.monotonic()))
        controller.send_message([0x80, 64, 0])
        time.sleep(0.5)
    finally:
        controller.delete()
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    played = json.loads(stats.read_text())
    assert played["underruns"] == 0, played
    audio, rate = soundfile.read(take, dtype="float32")
    # Find the first note's onset in the take; the rest lies where the marks put it (within a block or two).
    envelope = np.array([_level_db(audio[i:i + 160]) for i in range(0, len(audio) - 160, 160)])  # 10 ms
    onset = int(np.argmax(envelope > envelope.max() - 40)) * 160

    def at(seconds: float, length: float) -> np.ndarray:
        begin = onset + round((seconds - marks["loud on"]) * rate)
        return audio[begin:begin + round(length * rate)]

    loud, soft = at(marks["loud on"] + 0.4, 0.7), at(marks["soft on"] + 0.4, 0.7)
    after_release = at(marks["loud off"] + 0.150 + 0.016, 0.02)  # the release (150 ms), a block's slack
    pitch = 1200 * math.log2(_pitch(loud, rate) / 440.0)
    bent = 1200 * math.log2(_pitch(at(marks["bend"] + 0.2, 0.5), rate) / 440.0)
    print(f"\nkeyboard through JACK: A4 {pitch:+.1f} cents, bent {bent:+.1f} cents, velocity 100 "
          f"{_level_db(loud):.1f} dB, velocity 30 {_level_db(soft):.1f} dB, 166 ms after note off "
          f"{_level_db(after_release):.1f} dB; {played['underruns']} underruns")
    assert abs(pitch) < 30 and abs(bent - 100) < 60
    assert _level_db(loud) - _level_db(soft) >= 6.0
    assert _level_db(after_release) <= _level_db(loud) - 40.0


def _melody(path, notes: list[int], rate: int = 16000) -> None:
    """A sawtooth melody after 1.5 s of silence: 0.4 s a note, 0.15 s between."""
    parts = [np.zeros(int(1.5 * rate), np.float32)]
    for note in notes:
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        t = np.arange(int(0.4 * rate)) / rate
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8) if k * f0 < rate / 2)
        parts += [(0.3 * tone * np.hanning(len(t)) ** 0.1).astype(np.float32), np.zeros(int(0.15 * rate), np.float32)]
    parts.append(np.zeros(rate, np.float32))
    soundfile.write(path, np.concatenate(parts), rate)


class Listener:
    """A JACK MIDI input that the test polls: no callback, so the MIDI system's thread never calls into Python
    here and closing it waits for nothing of ours."""

    def __init__(self, name: str):
        import rtmidi

        self.client = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name)
        self._heard: list[list[int]] = []

    def connect(self, port: str) -> None:
        wait_for(lambda: port in self.client.get_ports(), 10)
        self.client.open_port(self.client.get_ports().index(port))

    def heard(self) -> list[list[int]]:
        """Every message so far (all it heard, once closed)."""
        while self.client is not None and (event := self.client.get_message()) is not None:
            self._heard.append(event[0])
        return self._heard

    def close(self) -> None:
        self.heard()
        client, self.client = self.client, None
        client.close_port()
        client.delete()


def test_the_pitch_played_goes_out_as_midi_notes_through_jack(jack_server, tmp_path):
    """--midi-out: a melody in a file comes out as its notes, each on and off, to a JACK MIDI client."""
    from test_engine import start_play

    notes = [57, 60, 64, 67, 65, 62, 59]
    _melody(tmp_path / "melody.wav", notes)
    listener = Listener("test-notes")
    process = start_play("--input", str(tmp_path / "melody.wav"), "--once", "--midi-out", "virtual",
                         "--midi-api", "jack", "--scenes", str(tmp_path))
    try:
        listener.connect("tuibend-midi-out:tuibend-out")
        _, stderr = process.communicate(timeout=120)
    finally:
        listener.close()
    heard = listener.heard()
    assert process.returncode == 0, stderr
    ons = [message[1] for message in heard if message[0] & 0xF0 == 0x90 and message[2] > 0]
    offs = [message[1] for message in heard if message[0] & 0xF0 == 0x80]
    assert ons == notes, heard
    assert offs == notes  # each note ended, in turn
    bends = [(message[2] << 7 | message[1]) - 8192 for message in heard if message[0] & 0xF0 == 0xE0]
    assert bends and max(abs(bend) for bend in bends) < 8192 * 0.5 / 2  # a pure tone: within half a semitone


def test_keyboard_input_needs_no_sound_card(jack_server, tmp_path):
    """--input midi with --device none plays paced by the clock (a keyboard needs no microphone): silent
    until a key is pressed."""
    from test_engine import run_play

    result = run_play("--input", "midi", "--midi", "virtual", "--midi-api", "jack", "--device", "none",
                      "--duration", "1", "--record", str(tmp_path / "take.wav"), "--scenes", str(tmp_path))
    assert result.returncode == 0, result.stderr
    audio, _ = soundfile.read(tmp_path / "take.wav")
    assert len(audio) > 0 and np.max(np.abs(audio)) < 1e-3


@pytest.mark.quick
def test_mixed_input_flags_are_checked_before_anything_loads(capsys):
    from tuibend.cli import main

    assert main(["play", "--headless", "--loudness", "mic"]) == 2
    assert "--loudness mic goes with --input midi" in capsys.readouterr().err
    assert main(["play", "--headless", "--pitch", "midi"]) == 2
    assert "--pitch midi goes with --input mic" in capsys.readouterr().err


def test_faders_go_out_as_the_controls_that_move_them_through_jack(jack_server, choir_model, tmp_path):
    """--midi-out-faders: a fader moved (from the interface, OSC, a lane) is sent as the CC of the map that
    moves it, once per change: CC 20 for bend 1 in the default map."""
    import rtmidi

    from tuibend.bend.registry import Bend
    from tuibend.engine import Engine, EngineSettings
    from tuibend.engine.session import file_player
    from tuibend.midi import PitchOut, Router, default_map

    engine = Engine(choir_model, file_player(choir_model, DEMO_INPUT),
                    [Scene("two", [Bend("fc1", "ablate", 0.5), Bend("fc2", "ablate", 0.25)])],
                    EngineSettings(device="none", check_speed=False))
    engine.prepare()
    engine.start()
    listener = Listener("test-faders-in")
    sender = PitchOut(engine, None, rtmidi.API_UNIX_JACK, client_name="test-faders-out",
                      faders=Router(engine, default_map(), source="midi-out"))
    try:
        listener.connect("test-faders-out:tuibend-out")
        time.sleep(0.3)
        sender._sent_controls.clear()  # what went before the port was connected, again
        wait_for(lambda: [0xB0, 20, 64] in listener.heard() and [0xB0, 21, 32] in listener.heard(), 5)
        engine.set(0, "proportion", 1.0)
        wait_for(lambda: [0xB0, 20, 127] in listener.heard(), 5)
        time.sleep(0.3)
    finally:
        sender.close()
        listener.close()
        engine.stop()
    controls = [message for message in listener.heard() if message[0] == 0xB0]
    assert controls.count([0xB0, 20, 127]) == 1  # once per change, not twenty times a second
    assert all(message[1] in (20, 21) for message in controls)


def test_the_keyboard_gives_the_pitch_and_the_voice_the_loudness_through_jack(jack_server, tmp_path):
    """--input mic --pitch midi: the demo voice sings into tuibend through JACK while A4 is held: the output
    sounds 440 Hz whatever the voice sings; when the voice rests, the output is silent though the key is held."""
    from jack_harness import RATE, Harness
    from test_engine import start_play

    from tuibend.audiofile import read_audio

    (tmp_path / "unbent").mkdir()
    save_scene(tmp_path / "unbent" / "unbent.toml", Scene("unbent"))
    process = start_play("--input", "mic", "--pitch", "midi", "--midi", "virtual", "--midi-api", "jack",
                         "--scenes", str(tmp_path / "unbent"), "--midi-map", str(tmp_path / "midi.toml"))
    harness = Harness("mixed-voice", seconds=20)
    controller = _open_controller("test-mixed-keys", "tuibend-midi:tuibend")
    try:
        harness.wire("tuibend")
        voice = read_audio(DEMO_INPUT, RATE)[:RATE * 4]
        controller.send_message([0x90, 69, 100])
        start, _ = harness.play(np.concatenate([voice, np.zeros(RATE * 2, np.float32)]))
        time.sleep(6.5)
        recorded = harness.recording[start:harness.recorded].copy()
        controller.send_message([0x80, 69, 0])
    finally:
        controller.delete()
        harness.close()
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    sung, rest = recorded[RATE // 2:RATE * 4], recorded[RATE * 5:RATE * 6]
    pitch = 1200 * math.log2(_pitch(sung, RATE) / 440.0)
    print(f"\nkeyboard pitch, voice loudness: {pitch:+.1f} cents from A4 while the voice sings; "
          f"{_level_db(sung):.1f} dB singing, {_level_db(rest):.1f} dB resting with the key held")
    assert abs(pitch) < 30
    assert _level_db(rest) <= _level_db(sung) - 40.0
