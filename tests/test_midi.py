"""MIDI and OSC control: curves, mapping files, and the real engine driven through JACK MIDI and OSC."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rtmidi
import soundfile
from conftest import DEMO_INPUT, wait_for
from pythonosc.udp_client import SimpleUDPClient

from tuibend.bend.registry import Bend
from tuibend.bend.scene import Scene
from tuibend.engine import Engine, EngineSettings
from tuibend.engine.session import file_player
from tuibend.midi import (
    Mapping,
    MidiError,
    MidiInput,
    OscServer,
    Router,
    decode,
    default_map,
    load_mappings,
    mappings_from_toml,
    mappings_to_toml,
    merge,
    save_mappings,
    to_position,
    to_value,
)
from tuibend.midi.curves import shape

JACK = rtmidi.API_UNIX_JACK
_names = itertools.count()


def scenes() -> list[Scene]:
    """Three scenes of one chain structure (a recall morphs, nothing compiles). Bend 1 pulls the
    harmonic amplitude down: at proportion 1 the voice nearly vanishes."""
    def scene(name: str, amps: float, fc1: float) -> Scene:
        return Scene(name, [Bend("amps", "offset", amps, params={"amount": -10.0}),
                            Bend("fc1", "scale", fc1, params={"gain": 2.0})])

    return [scene("one", 0.0, 0.0), scene("two", 0.5, 0.25), scene("three", 1.0, 0.75)]


# ----- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", ["linear", "exp", "log", "power"])
def test_curves_span_the_range_and_invert(curve):
    positions = np.linspace(0, 1, 33)
    values = [to_value(x, -2.0, 6.0, curve) for x in positions]
    assert values[0] == pytest.approx(-2.0) and values[-1] == pytest.approx(6.0)
    assert np.all(np.diff(values) > 0)
    assert [to_position(v, -2.0, 6.0, curve) for v in values] == pytest.approx(list(positions), abs=1e-9)
    assert to_value(0.25, 1.0, 0.0, curve) == pytest.approx(1.0 - shape(0.25, curve))  # a reversed fader


def test_curve_shapes():
    assert shape(0.5, "power", 2.0) == 0.25 and shape(0.5, "power", 0.5) == pytest.approx(math.sqrt(0.5))
    assert shape(0.5, "exp") < 0.5 < shape(0.5, "log")  # exp gives fine control low down, log high up
    assert shape(shape(0.3, "exp", 3.0), "log", 3.0) == pytest.approx(0.3)  # log undoes exp
    assert to_value(2.0, 0.0, 1.0) == 1.0 and to_position(-5.0, 0.0, 1.0) == 0.0  # clamped to the travel


def test_decode_channel_messages():
    assert decode([0xB3, 20, 64]).__dict__ == {"kind": "cc", "channel": 4, "number": 20, "value": 64}
    assert decode([0x90, 60, 0]).kind == "note_off"  # velocity 0
    assert decode([0x91, 60, 100]).kind == "note_on"
    assert (decode([0xC0, 5]).kind, decode([0xC0, 5]).number) == ("program", 5)
    assert decode([0xE0, 0x7F, 0x7F]).value == 16383
    assert decode([0xF8]) is None and decode([0xB0, 20]) is None


MAP = [Mapping("cc", 7, 2, bend=1, param="gain", minimum=0.5, maximum=4.0, curve="exp", amount=3.0),
       Mapping("cc14", 1, bend=0, takeover=False),
       Mapping("note", 36, 10, bend=0, value=0.8, attack=0.02, release=0.5),
       Mapping("note", 38, scene=2),
       Mapping("program", channel=16),
       Mapping("cc", 64, scene=0, curve="power", amount=0.5)]


def test_mapping_file_round_trips_and_reads_like_the_screen(tmp_path):
    assert mappings_from_toml(mappings_to_toml(MAP)) == MAP
    path = save_mappings(MAP, tmp_path / "config" / "midi.toml")
    assert load_mappings(path) == MAP
    text = path.read_text()
    assert 'source = "cc"\nnumber = 7\nchannel = 2\nbend = 2\nparam = "gain"' in text  # bends count from 1
    assert "range = [\n    0.5,\n    4.0,\n]" in text or "range = [0.5, 4.0]" in text
    assert list(tmp_path.joinpath("config").iterdir()) == [path]  # no temporary left beside it


def test_missing_global_map_is_the_default_map(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_mappings() == default_map()
    save_mappings(MAP)
    assert load_mappings() == MAP and (tmp_path / "tuibend" / "midi.toml").exists()
    with pytest.raises(MidiError, match=r"elsewhere\.toml: no such mapping file"):
        load_mappings(tmp_path / "elsewhere.toml")


@pytest.mark.parametrize(("text", "message"), [
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 1\nchannel = 17', r"midi\.toml: map\[1\]\.channel: 17 is outside "
                                                                  r"1\.\.16$"),
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 1\n[[map]]\nsource = "cc14"\nnumber = 40\nbend = 1',
     r"map\[2\]\.number: 40 is outside 0\.\.31 \(a 14-bit pair is CC n with CC n\+32\)"),
    ('[[map]]\nsource = "knob"', r"map\[1\]\.source: 'knob' is unknown \(allowed: cc, cc14, note, program\)"),
    ('[[map]]\nsource = "cc"\nnumber = 7', r"map\[1\]\.bend: missing \(or give a scene to recall\)"),
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 0', r"map\[1\]\.bend: 0 is not a bend number \(they count from 1\)"),
    ('[[map]]\nsource = "cc"\nnumber = "7"\nbend = 1', r"map\[1\]\.number: expected an integer, got '7'"),
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 1\nrange = [0]', r"map\[1\]\.range: expected \[minimum, maximum\]"),
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 1\ncurve = "cubic"', r"map\[1\]\.curve: 'cubic' is unknown"),
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 1\ntakeover = 1', r"map\[1\]\.takeover: expected true or false"),
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 1\nspeed = 2', r"map\[1\]\.speed: unknown field \(allowed: amount,"),
    ('[[map]]\nsource = "program"\nbend = 1', r"map\[1\]\.bend: a program change recalls scenes"),
    ('[[map]]\nsource = "note"\nnumber = 1\nbend = 1\nrelease = -1', r"map\[1\]\.release: -1\.0 is negative"),
    ('[[map]]\nsource = "note"\nnumber = 1\nbend = 1\nattack = nan', r"map\[1\]\.attack: expected a finite number"),
    ('[[map]]\nsource = "cc"\nnumber = 7\nbend = 1\nrange = [0, inf]', r"map\[1\]\.range: expected a finite num"),
    ('[map]\nsource = "cc"', r"midi\.toml: map: expected a list of \[\[map\]\] tables"),
    ("[[map]\n", r"midi\.toml: unreadable TOML"),
])
def test_broken_mapping_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "midi.toml"
    path.write_text(text)
    with pytest.raises(MidiError, match=message) as caught:
        load_mappings(path)
    assert str(caught.value).startswith(str(path))


def test_scene_mappings_override_the_global_ones_on_the_same_control():
    scene_map = [Mapping("cc", 20, 2, bend=3, param="gain"), Mapping("cc14", 2, bend=0)]
    merged = merge(default_map(), scene_map)
    assert Mapping("cc", 20, bend=0) not in merged  # CC 20 on any channel shares channel 2
    assert Mapping("cc", 21, bend=1) in merged and Mapping("program") in merged  # the pair reads CC 2 and 34
    assert merged[-2:] == scene_map
    assert merge(default_map(), []) == default_map()


# ----- the real engine, driven through JACK MIDI and OSC ---------------------------------------------


class Controller:
    """A second JACK client playing a hardware controller: a MIDI output port tuibend can listen to."""

    def __init__(self, client: str | None = None, port: str = "faders"):
        self.client = client or f"controller-{next(_names)}"
        self.out = rtmidi.MidiOut(JACK, self.client)
        self.out.open_virtual_port(port)
        self.name = f"{self.client}:{port}"

    def cc(self, number: int, value: int, channel: int = 1) -> None:
        self.out.send_message([0xB0 | channel - 1, number, value])

    def send(self, *data: int) -> None:
        self.out.send_message(list(data))

    def close(self) -> None:
        self.out.close_port()
        self.out.delete()


@pytest.fixture(scope="module")
def rig(choir_model, jack_server):
    """One engine, one controller and one MIDI input for the module. The MIDI clients are made before
    the engine starts, as the CLI should: making a JACK client holds the interpreter for ~30 ms."""
    controller = Controller("test-controller")
    engine = Engine(choir_model, file_player(choir_model, DEMO_INPUT, loop=True), scenes(),
                    EngineSettings(device="none", check_speed=False))
    midi = MidiInput(engine, controller.name, JACK, poll_seconds=0.2)
    engine.start()
    yield engine, controller, midi
    midi.close()
    controller.close()
    engine.stop()
    assert engine.error is None


@pytest.fixture
def fresh(rig):
    """The engine back on scene one, its faders where the scene has them; the default map."""
    engine, _, midi = rig
    midi.cancel_learn()
    midi.router.set_mappings(default_map())
    engine.set_bypass(False, "test")
    engine.recall(0, "test", seconds=0.0)
    blocks = engine.telemetry.blocks
    wait_for(lambda: engine.telemetry.blocks >= blocks + 2)  # requests are taken at the start of a block
    assert engine.scene.name == "one" and engine.target(1, "proportion") == 0.0
    return engine


@pytest.fixture
def controller(rig, fresh):
    return rig[1]


@pytest.fixture
def midi(rig, fresh):
    return rig[2]


def take_rms(engine: Engine, path) -> float:
    """RMS of half a second of the engine's output over the same loud passage of the input."""
    engine.transport("seek", "test", 2.0)
    time.sleep(0.1)  # the fader's glide and the seek land first
    engine.start_take(path)
    time.sleep(0.5)
    engine.stop_take()
    wait_for(path.exists)
    take, _ = soundfile.read(path, dtype="float32")
    assert len(take) > 4000
    return float(np.sqrt(np.mean(take ** 2)))


@pytest.mark.live
def test_a_burst_of_1000_cc_causes_no_underrun_and_the_last_value_wins(midi, controller, fresh):
    """First of the engine's tests: no MIDI client has been made while it played (see ``rig``)."""
    before, underruns = fresh.telemetry.blocks, fresh.telemetry.underruns
    started = time.perf_counter()
    for i in range(1000):
        controller.cc(20, i % 128)
        if i % 10 == 9:  # ten every 10 ms
            time.sleep(max(0.0, started + (i + 1) / 1000 - time.perf_counter()))
    controller.cc(20, 77)
    sent = time.perf_counter() - started
    wait_for(lambda: fresh.target(0, "proportion") == 77 / 127 and midi.monitor[-1].value == 77)
    wait_for(lambda: fresh.telemetry.blocks > before + 20)
    print(f"\n1001 CC in {sent:.2f} s; {fresh.telemetry.blocks - before} blocks; "
          f"underruns {underruns} before, {fresh.telemetry.underruns} after")
    assert sent < 1.5
    assert fresh.telemetry.underruns == underruns == 0 and fresh.error is None
    moves = [e for e in fresh.events.recent if e.source == "midi" and e.target == "bend1.proportion"]
    assert len(moves) >= 900 and moves[-1].value == round(77 / 127, 6)


def test_learned_cc_moves_the_fader_and_the_sound(midi, controller, fresh, tmp_path):
    midi.learn(0, "proportion")
    assert midi.learning == (0, "proportion")
    controller.cc(70, 10)  # teaches, moves nothing
    wait_for(lambda: midi.learning is None)
    assert Mapping("cc", 70, 1, bend=0) in midi.mappings and Mapping("cc", 20, bend=0) not in midi.mappings
    assert fresh.target(0, "proportion") == 0.0 and "MIDI learned: CC 70 ch 1 -> bend 1 proportion" in midi.notices
    controller.cc(70, 0)
    open_rms = take_rms(fresh, tmp_path / "open.wav")
    for value in range(0, 128, 8):
        controller.cc(70, value)
    controller.cc(70, 127)
    wait_for(lambda: fresh.target(0, "proportion") == 1.0)
    assert fresh.events.recent[-1].source == "midi" and fresh.events.recent[-1].target == "bend1.proportion"
    assert fresh.events.recent[-1].value == 1.0
    bent_rms = take_rms(fresh, tmp_path / "bent.wav")
    print(f"\nRMS over the same passage: proportion 0 {open_rms:.4f}, proportion 1 {bent_rms:.4f}")
    assert open_rms > 0.01 and bent_rms < open_rms / 3
    assert midi.monitor[-1].kind == "cc" and midi.monitor[-1].number == 70 and midi.monitor[-1].port == controller.name


def test_default_map_faders_and_program_change(midi, controller, fresh):
    controller.cc(21, 0, channel=5)  # bend 2 stands at 0: taken over at once, on any channel
    controller.cc(21, 64, channel=5)
    wait_for(lambda: fresh.target(1, "proportion") == pytest.approx(64 / 127))
    controller.send(0xC0, 2)  # program change 2: the third scene
    wait_for(lambda: fresh.scene.name == "three")
    assert [e.value for e in fresh.events.recent if e.target == "scene"][-1] == "three"
    assert [e.source for e in fresh.events.recent if e.target == "scene"][-1] == "midi"
    controller.send(0xC0, 9)
    controller.cc(27, 64)  # bend 8: the scene has two
    wait_for(lambda: "MIDI program 9: no scene 10 (the set has 3)" in midi.notices)
    wait_for(lambda: any("CC 27 -> bend 8 proportion: scene 'three' has no such bend" in n for n in midi.notices))
    assert fresh.scene.name == "three"


def test_soft_takeover_waits_for_the_control_to_reach_the_fader(midi, controller, fresh):
    fresh.set(1, "proportion", 0.5, "tui")
    for value in (127, 110, 90, 70):  # above 0.5, coming down: ignored
        controller.cc(21, value)
    wait_for(lambda: len(midi.monitor) >= 4 and midi.monitor[-1].value == 70)
    assert fresh.target(1, "proportion") == 0.5
    controller.cc(21, 60)  # crossed 63.5: picked up
    wait_for(lambda: fresh.target(1, "proportion") == pytest.approx(60 / 127))
    controller.cc(21, 90)
    wait_for(lambda: fresh.target(1, "proportion") == pytest.approx(90 / 127))
    fresh.set(1, "proportion", 0.1, "tui")  # moved elsewhere: the control lets go until it reaches 0.1 again
    controller.cc(21, 91)
    wait_for(lambda: midi.monitor[-1].value == 91)
    time.sleep(0.05)
    assert fresh.target(1, "proportion") == 0.1
    controller.cc(21, 13)  # within one step of 0.1 * 127 = 12.7
    wait_for(lambda: fresh.target(1, "proportion") == pytest.approx(13 / 127))


def test_fourteen_bit_pair_resolves_finer_than_seven_bits(midi, controller, fresh):
    midi.router.set_mappings([Mapping("cc14", 1, bend=0, takeover=False)])
    controller.cc(1, 64)
    controller.cc(33, 1)
    wait_for(lambda: fresh.target(0, "proportion") == (64 * 128 + 1) / 16383)
    controller.cc(33, 2)  # the LSB alone: one step of 1/16383
    wait_for(lambda: fresh.target(0, "proportion") == (64 * 128 + 2) / 16383)
    assert min(abs(fresh.target(0, "proportion") - k / 127) for k in range(128)) > 1e-4
    midi.learn(1, "gain")  # a pair arriving while learning makes a 14-bit mapping
    controller.cc(3, 100, channel=2)
    controller.cc(35, 0, channel=2)
    wait_for(lambda: Mapping("cc14", 3, 2, bend=1, param="gain") in midi.mappings)
    assert Mapping("cc", 3, 2, bend=1, param="gain") not in midi.mappings
    controller.cc(3, 64, channel=2)  # gain spans -10..10: this is 0, and the scene's 2 is at MSB 76.8
    controller.cc(35, 0, channel=2)
    wait_for(lambda: midi.monitor[-1].number == 35)
    time.sleep(0.05)
    assert fresh.target(1, "gain") == 2.0  # soft takeover: not reached yet
    controller.cc(3, 90, channel=2)
    wait_for(lambda: fresh.target(1, "gain") == pytest.approx(-10 + 20 * (90 << 7) / 16383))


def test_held_note_glides_the_fader_and_back(midi, controller, fresh):
    midi.router.set_mappings([Mapping("note", 60, bend=1, value=0.9, attack=0.1, release=0.1)])
    fresh.set(1, "proportion", 0.2, "tui")
    since = fresh.seconds
    controller.send(0x90, 60, 100)
    wait_for(lambda: fresh.target(1, "proportion") == 0.9)
    steps = [e.value for e in fresh.events.recent
             if e.source == "midi" and e.target == "bend2.proportion" and e.t >= since]
    assert len(steps) >= 4 and steps == sorted(steps) and 0.2 < steps[0] < 0.9
    controller.send(0x90, 60, 0)  # note off as a note on at velocity 0
    wait_for(lambda: fresh.target(1, "proportion") == 0.2)
    assert not midi.router.ramps.active


def test_unplugged_controller_is_noticed_and_reconnected(fresh):
    controller = Controller("stage-faders")
    midi = MidiInput(fresh, controller.name, JACK, poll_seconds=0.2)
    try:
        assert midi.ports == ["stage-faders:faders"]
        controller.close()  # the cable is pulled
        wait_for(lambda: "'stage-faders:faders' is not there" in midi.status)
        assert any("'stage-faders:faders' is gone; playing on" in n for n in midi.notices)
        blocks = fresh.telemetry.blocks
        wait_for(lambda: fresh.telemetry.blocks > blocks + 10)  # the performance goes on
        controller = Controller("stage-faders")  # plugged back in
        wait_for(lambda: midi.ports == ["stage-faders:faders"])
        assert midi.notices[-1] == "MIDI port 'stage-faders:faders' connected"
        assert midi.status == "MIDI: listening to 'stage-faders:faders'"
        controller.cc(20, 0)
        controller.cc(20, 100)
        wait_for(lambda: fresh.target(0, "proportion") == pytest.approx(100 / 127))
    finally:
        midi.close()
        controller.close()


def test_missing_port_names_the_ports_there_are(fresh, controller):
    with pytest.raises(MidiError, match=r"MIDI port 'no-such-box' not found through JACK \(ports: .*"
                                        + controller.name):
        MidiInput(fresh, "no-such-box", JACK)


def test_virtual_port_takes_a_connection_from_a_daw(fresh):
    midi = MidiInput(fresh, None, JACK, client_name="tuibend-second")  # "tuibend-midi" is the rig's
    daw = rtmidi.MidiOut(JACK, "test-daw")
    try:
        assert midi.status == "MIDI: virtual port tuibend-second:tuibend open (JACK)"
        daw.open_port(daw.get_ports().index("tuibend-second:tuibend"))
        daw.send_message([0xC0, 1])
        wait_for(lambda: fresh.scene.name == "two")
        assert midi.monitor[-1].port == "tuibend-second:tuibend" and midi.ports == ["tuibend-second:tuibend"]
    finally:
        daw.close_port()
        daw.delete()
        midi.close()


def test_every_port_and_learned_map_saved(fresh, tmp_path):
    first, second = Controller(), Controller()
    midi = MidiInput(fresh, "all", JACK, save_to=tmp_path / "midi.toml", poll_seconds=0.2)
    try:
        assert {first.name, second.name} <= set(midi.ports)
        midi.learn(1, "gain")
        second.cc(9, 5, channel=3)
        wait_for(lambda: (tmp_path / "midi.toml").exists())
        assert Mapping("cc", 9, 3, bend=1, param="gain") in load_mappings(tmp_path / "midi.toml")
        first.send(0xC0, 2)
        wait_for(lambda: fresh.scene.name == "three")
    finally:
        midi.close()
        first.close()
        second.close()


def test_scene_overrides_apply_while_their_scene_plays(fresh):
    router = Router(fresh, default_map(), {"two": [Mapping("cc", 20, bend=1, takeover=False)]})
    try:
        router.handle(decode([0xB0, 20, 0]))  # the global map's soft takeover: at 0, where bend 1 stands
        router.handle(decode([0xB0, 20, 127]))
        assert fresh.target(0, "proportion") == 1.0 and fresh.target(1, "proportion") == 0.0
        fresh.recall(1, "test", seconds=0.0)
        wait_for(lambda: fresh.scene.name == "two")
        router.handle(decode([0xB0, 20, 127]))
        assert fresh.target(1, "proportion") == 1.0 and fresh.target(0, "proportion") == 0.5
    finally:
        router.close()


def test_osc_over_loopback(fresh):
    server = OscServer(fresh, port=0)
    client = SimpleUDPClient("127.0.0.1", server.address[1])
    try:
        assert server.address[0] == "127.0.0.1"
        client.send_message("/tuibend/scene", 2)  # scenes count from 1 over OSC
        wait_for(lambda: fresh.scene.name == "two")
        client.send_message("/tuibend/scene/name", "three")
        wait_for(lambda: fresh.scene.name == "three")
        client.send_message("/tuibend/bend/2/proportion", 0.3)
        wait_for(lambda: fresh.target(1, "proportion") == pytest.approx(0.3))
        client.send_message("/tuibend/bend/2/gain", 99.0)  # clamped to the parameter's range
        wait_for(lambda: fresh.target(1, "gain") == 10.0)
        client.send_message("/tuibend/bypass", 1)
        wait_for(lambda: fresh.bypass)
        client.send_message("/tuibend/bypass", 0)
        wait_for(lambda: not fresh.bypass)
        client.send_message("/tuibend/panic", [])
        wait_for(lambda: any(e.target == "panic" and e.source == "osc" for e in fresh.events.recent))
        client.send_message("/tuibend/gain", 30.0)  # clamped to +24 dB
        wait_for(lambda: fresh.gain_db == 24.0)
        client.send_message("/tuibend/gain", 0.0)
        client.send_message("/tuibend/gate/offset", -4.5)
        wait_for(lambda: fresh.dynamics.gate.offset_db == -4.5 and fresh.gain_db == 0.0)
        client.send_message("/tuibend/gate/offset", 0.0)
        client.send_message("/tuibend/transport/pause", [])
        wait_for(lambda: not fresh.source.playing)
        client.send_message("/tuibend/transport/seek", 3.0)
        client.send_message("/tuibend/transport/toggle", [])
        wait_for(lambda: fresh.source.playing and fresh.source.position_seconds >= 3.0)
        for address, value in (("/tuibend/bend/9/proportion", 0.5), ("/tuibend/scene", 7), ("/tuibend/nothing", 1),
                               ("/tuibend/scene/name", "none")):
            client.send_message(address, value)
        wait_for(lambda: len(server.notices) == 4)
        assert list(server.notices) == [
            "OSC /tuibend/bend/9/proportion: scene 'three' has no bend 9 with a parameter 'proportion'",
            "OSC /tuibend/scene: no scene 7 (scenes 1..3)", "OSC /tuibend/nothing: unknown address",
            "OSC /tuibend/scene/name: no scene named 'none'"]
        logged = [(e.source, e.target, e.value) for e in fresh.events.recent if e.source == "osc"]
        assert logged == [("osc", "scene", "two"), ("osc", "scene", "three"), ("osc", "bend2.proportion", 0.3),
                          ("osc", "bend2.gain", 10.0), ("osc", "bypass", True), ("osc", "bypass", False),
                          ("osc", "panic", True), ("osc", "gain", 24.0), ("osc", "gain", 0.0), ("osc", "gate", -4.5),
                          ("osc", "gate", 0.0), ("osc", "transport", "pause"), ("osc", "transport", "seek 3.000"),
                          ("osc", "transport", "play")]
    finally:
        server.close()


def test_a_hostile_osc_bundle_is_refused_and_the_listener_goes_on(fresh):
    """A bundle whose element claims -4 bytes sent python-osc's parser into an endless loop."""
    import socket
    import struct

    server = OscServer(fresh, port=0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        bundle = b"#bundle\0" + bytes(8)
        for hostile in (bundle + struct.pack(">i", -4), bundle + struct.pack(">i", 4000), b"/tuibend/scene\0\0,i\0\0",
                        b"\xff" * 7, b"/a\0\0,s\0\0abcd", bytes(10000)):
            sender.sendto(hostile, server.address)
        wait_for(lambda: len(server.notices) == 6)
        assert all("refused a datagram" in notice for notice in server.notices)
        SimpleUDPClient("127.0.0.1", server.address[1]).send_message("/tuibend/scene", 2)
        wait_for(lambda: fresh.scene.name == "two")  # still listening
    finally:
        sender.close()
        server.close()
    assert not server._thread.is_alive()  # and it ends with the performance


def test_any_bytes_are_a_well_formed_datagram_or_refused_before_parsing():
    """Whatever the bytes, the check answers at once; what it passes, python-osc parses without fault."""
    import struct

    from hypothesis import example, given, settings
    from hypothesis import strategies as st
    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_message import OscMessage

    from tuibend.midi.osc import datagram_fault

    def parses(data: bytes) -> None:
        if data.startswith(b"#bundle\0"):
            OscBundle(data)
        else:
            OscMessage(data)

    words = st.binary(max_size=64).map(lambda b: b + bytes(-len(b) % 4))
    element = st.one_of(words, st.builds(lambda a, t: a + t, st.sampled_from([b"/tuibend/x\0\0", b"/a\0\0"]), words))
    bundle = st.builds(lambda parts, sizes: b"#bundle\0" + bytes(8) + b"".join(
        struct.pack(">i", size if size is not None else len(p)) + p for p, size in zip(parts, sizes, strict=False)),
        st.lists(element, max_size=4), st.lists(st.one_of(st.none(), st.integers(-2**31, 2**31 - 1)), max_size=4))

    @settings(max_examples=400, deadline=None)
    @given(st.one_of(st.binary(max_size=200), words, element, bundle))
    @example(b"/\x80\0\0")  # python-osc decodes an address, and a string argument, as UTF-8
    @example(b"/a\0\0,s\0\0\xff\0\0\0")
    def check(data: bytes) -> None:
        if datagram_fault(data) is None:
            parses(data)

    check()
    assert datagram_fault(b"/\x80\0\0") == "an address that is not UTF-8"
    assert datagram_fault(b"/a\0\0,s\0\0\xff\0\0\0") == "a string argument that is not UTF-8"
    assert datagram_fault("/tuibend/scène\0".encode()) is None  # 16 bytes


def test_the_engine_imports_nothing_of_midi():
    """Dependencies point one way: MIDI pushes into the engine through the control protocol, and no module
    of the engine (its status view with the MIDI monitor's entries included) imports tuibend.midi or rtmidi."""
    import pkgutil

    import tuibend.engine

    modules = [f"tuibend.engine.{module.name}" for module in pkgutil.iter_modules(tuibend.engine.__path__)]
    assert {"tuibend.engine.engine", "tuibend.engine.remote", "tuibend.engine.server"} <= set(modules)
    probe = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
             "print(sorted(m for m in sys.modules if m.startswith(('tuibend.midi', 'rtmidi', 'tuibend.tui'))))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_a_scene_carries_its_own_midi_map(tmp_path):
    """``[[midi.map]]`` in a scene file: kept raw by the scene (which imports nothing of MIDI), read and
    checked by tuibend.midi with the file and field named, by `tuibend check` too; saved back as it was."""
    from tuibend.bend.registry import Bend
    from tuibend.bend.scene import Scene, load_scene, save_scene
    from tuibend.midi.errors import MidiError
    from tuibend.midi.mapfile import mapping_table, mappings_from_tables

    mapping = Mapping("cc", 74, 3, bend=0, param="gain")
    scene = Scene("mapped", [Bend("fc1", "scale", 0.5)], midi=[mapping_table(mapping)])
    save_scene(tmp_path / "mapped.toml", scene)
    loaded = load_scene(tmp_path / "mapped.toml")
    assert loaded.midi == scene.midi and mappings_from_tables(loaded.midi, "m") == [mapping]
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[bend]]\npoint = "fc1"\ntransform = "scale"\nproportion = 0.5\n'
                   '[[midi.map]]\nsource = "cc"\nnumber = 7\nchannel = 17\n')
    with pytest.raises(MidiError, match=r"bad\.toml: midi\.map\[1\]\.channel"):
        mappings_from_tables(load_scene(bad).midi, f"{bad}: midi.map")
    probe = ("import sys; from tuibend.bend.scene import load_scene; load_scene(sys.argv[1]); "
             "print(sorted(m for m in sys.modules if m.startswith(('tuibend.midi', 'rtmidi'))))")
    assert subprocess.run([sys.executable, "-c", probe, str(bad)], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
    checked = subprocess.run([sys.executable, "-m", "tuibend", "check", str(bad), str(tmp_path / "mapped.toml")],
                             capture_output=True, text=True)
    assert checked.returncode != 0 and "bad.toml: midi.map[1].channel" in checked.stdout
    assert "mapped.toml: ok" in checked.stdout


def test_every_midi_system_rtmidi_offers_by_name_the_native_one_first():
    """``--midi-api auto`` tries every system this python-rtmidi was built with, the platform's own first
    (CoreMIDI, Windows MM, ALSA) and JACK last; a named one it lacks is one line naming what it offers."""
    from tuibend.cli import MIDI_APIS
    from tuibend.midi.errors import MidiError
    from tuibend.midi.ports import API_BY_NAME, apis_to_try

    assert tuple(API_BY_NAME) == MIDI_APIS
    compiled = set(rtmidi.get_compiled_api())
    auto = apis_to_try("auto")
    assert set(auto) == compiled & set(API_BY_NAME.values()) and auto[-1] == rtmidi.API_UNIX_JACK
    if sys.platform == "linux":
        assert auto[0] == rtmidi.API_LINUX_ALSA
        with pytest.raises(MidiError, match=r"--midi-api coremidi: this python-rtmidi has no CoreMIDI \(it offers: "
                                            r"alsa, jack\)"):
            apis_to_try("coremidi")
    for name, api in API_BY_NAME.items():
        if api in compiled:
            assert apis_to_try(name) == [api]


# The MIDI input opened and closed again and again while a controller (the test) keeps sending, in a process of
# its own (a crash there fails the test instead of ending the run). Each close comes from a thread busy in Python,
# as the interface's is. When rtmidi called Python from the MIDI system's thread, a call waiting for the interpreter
# while the close cancelled it read the callback python-rtmidi had just freed: the process died within a few closes.
CLOSE_WHILE_SENDING = """
import sys, time
import rtmidi
from tuibend.bend.registry import Bend
from tuibend.bend.scene import Scene
from tuibend.midi import Mapping, MidiInput

class Target:
    def __init__(self):
        self.scene = Scene("one", [Bend("amps", "offset", 0.0)])
        self.scenes = [self.scene]
        self.moves = 0
    def target(self, bend, name):
        return 0.0
    def apply(self, message, source="midi"):
        self.moves += 1

target = Target()
heard = []
for _ in range(int(sys.argv[2])):
    before = target.moves
    with MidiInput(target, sys.argv[1], rtmidi.API_UNIX_JACK, [Mapping("cc", 20, bend=0, takeover=False)],
                   client_name="closing"):
        busy = time.perf_counter() + 0.03
        while time.perf_counter() < busy:  # the interface at work, holding the interpreter, as it closes
            pass
    heard.append(target.moves - before)
print(min(heard), sum(heard))
"""


def test_closing_while_a_controller_sends_is_safe(jack_server):
    """Forty opens and closes of the MIDI input while a controller sends a CC every 0.2 ms, each close from a
    busy thread: every opening hears the controller, and the process ends cleanly."""
    controller = Controller()
    sending = True

    def flood() -> None:
        value = 0
        while sending:
            controller.cc(20, value)
            value = (value + 1) % 128
            time.sleep(0.0002)

    sender = threading.Thread(target=flood)
    sender.start()
    try:
        run = subprocess.run([sys.executable, "-c", CLOSE_WHILE_SENDING, controller.name, "40"], capture_output=True,
                             text=True, timeout=120)
    finally:
        sending = False
        sender.join()
        controller.close()
    assert run.returncode == 0, run.stderr[-2000:]
    fewest, total = map(int, run.stdout.split())
    print(f"\n40 closes while sending: {total} CCs heard, at least {fewest} an opening")
    assert fewest > 0
