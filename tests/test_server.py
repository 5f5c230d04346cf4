"""The performance apart from its interface: the control protocol, the socket server, an attached
interface, and the whole program in tmux through JACK surviving the loss of its terminal."""

from __future__ import annotations

import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import BUNDLED_MODEL, DEMO_INPUT, REPO, wait_for

from tuibend import control
from tuibend.bend.registry import Bend
from tuibend.bend.scene import Scene, save_scene, scene_to_toml
from tuibend.control import ProtocolError, decode, encode
from tuibend.engine.remote import NotPlaying, RemoteEngine


@pytest.fixture(autouse=True)
def _quick_pilot(quick_pilot):
    """Every pilot here drives an app over a playing engine."""


# ----- the protocol ---------------------------------------------------------------------------------------

EVERY_MESSAGE = [control.SetParam(1, "proportion", 0.25), control.Recall(3), control.Recall(0, 2.5),
                 control.PlayScene("name = 'x'\n", 2, 0.0), control.SceneSaved(1, "/tmp/x.toml"), control.Panic(),
                 control.SetGain(-3.0),
                 control.SetGate(4.0), control.SetBypass(True), control.Transport("seek", 1.5),
                 control.RecordLane(0, "amount"), control.StopLane(0, "amount"), control.StartTake("/tmp/a.wav"),
                 control.StopTake(), control.Learn(0, "proportion"), control.Switch(model="flute"), control.Stop()]


@pytest.mark.quick
def test_each_performance_keeps_its_own_start_up_log(tmp_path):
    from tuibend.engine.launch import engine_log
    from tuibend.engine.server import socket_path

    default = engine_log(socket_path())
    assert default.name == "engine.log"
    logs = {engine_log(tmp_path / "a" / "control.sock"), engine_log(tmp_path / "b" / "control.sock"),
            engine_log(tmp_path / "gig.sock"), default}
    assert len(logs) == 4 and all(log.parent == default.parent for log in logs)
    assert engine_log(tmp_path / "gig.sock") == engine_log(tmp_path / "gig.sock")  # found again by the same socket
    assert engine_log(tmp_path / "gig.sock").name.startswith("engine-gig-")


@pytest.mark.quick
def test_every_message_survives_the_wire():
    assert {message.op for message in EVERY_MESSAGE} == set(control.MESSAGES)
    for index, message in enumerate(EVERY_MESSAGE):
        assert decode(encode(message, index)) == (index, message)
    assert decode(b'{"op": "gain", "db": 3}') == (None, control.SetGain(3.0))  # an integer is a number


@pytest.mark.quick
@pytest.mark.parametrize("line, fault", [
    (b"\xff\xfe", "not JSON"), (b"{", "not JSON"), (b"[1, 2]", "not a JSON object"),
    (b'{"op": "format_disk"}', "unknown op 'format_disk'"), (b'{"db": 1}', "unknown op None"),
    (b'{"op": "set", "bend": 0, "name": "proportion"}', "missing field 'value'"),
    (b'{"op": "set", "bend": true, "name": "proportion", "value": 1}', "set.bend: expected int, got True"),
    (b'{"op": "set", "bend": 0, "name": 7, "value": 1}', "set.name: expected str"),
    (b'{"op": "gain", "db": NaN}', "expected a finite number"),
    (b'{"op": "gain", "db": 1, "extra": 2}', "unknown field 'extra'"),
    (b'{"op": "panic", "id": "x"}', "id: expected int"),
    (b'{"op": "transport", "action": "rewind"}', "action 'rewind'"),
    (b'{"op": "recall", "index": 1.5}', "recall.index: expected int"),
])
def test_anything_else_is_refused_with_the_reason(line, fault):
    with pytest.raises(ProtocolError, match=fault.replace("(", r"\(")):
        decode(line)


@pytest.mark.quick
def test_a_line_longer_than_any_message_is_refused_unread():
    with pytest.raises(ProtocolError, match="bytes"):
        decode(b" " * (control.MAX_LINE + 1))


@pytest.mark.quick
def test_logged_changes_replay_as_messages():
    names = ["glow", "grit"]
    assert control.from_event("scene", "grit", names) == control.Recall(1)
    assert control.from_event("scene", "gone", names) is None
    assert control.from_event("bend2.freq", 3.0, names) == control.SetParam(1, "freq", 3.0)
    assert control.from_event("bend1.proportion", "record lane", names) is None
    assert control.from_event("transport", "seek 2.500", names) == control.Transport("seek", 2.5)
    assert control.from_event("transport", "pause", names) == control.Transport("pause")
    assert control.from_event("panic", True, names) == control.Panic()
    assert control.from_event("gain", -6, names) == control.SetGain(-6.0)
    assert control.from_event("take", "stopped", names) is None


# ----- the server, in this process, over a real engine --------------------------------------------------------


def two_scenes() -> list[Scene]:
    return [Scene("glow", [Bend("fc1", "ablate", 0.5), Bend("gru", "oscillate", 0.25)], morph_seconds=0.0),
            Scene("grit", [Bend("fc2", "threshold", 0.1)], morph_seconds=0.0)]


@pytest.fixture
def served(choir_model, tmp_path):
    """A real engine on the virtual clock, served on a socket of its own, playing."""
    from tuibend.engine import Engine, EngineSettings
    from tuibend.engine.performance import Performance
    from tuibend.engine.server import ControlServer
    from tuibend.engine.session import file_player

    settings = EngineSettings(device="none", log=tmp_path / "events.jsonl", check_speed=False)
    engine = Engine(choir_model, file_player(choir_model, DEMO_INPUT), two_scenes(), settings)
    engine.prepare()
    engine.start()
    performance = Performance(engine, ("choir", "demo-voice.flac"), notices=["started without a MIDI input"])
    path = Path(os.environ["XDG_RUNTIME_DIR"]) / f"t{os.getpid()}.sock"
    server = ControlServer(performance, path)
    yield performance, server, path
    server.close()
    performance.stop()


def test_an_attached_client_sees_and_steers_the_engine(served, tmp_path):
    performance, _, path = served
    engine = performance.engine
    remote = RemoteEngine(path)
    try:
        assert [scene.name for scene in remote.scenes] == ["glow", "grit"] and remote.scene.name == "glow"
        assert remote.labels == ("choir", "demo-voice.flac") and remote.widths == engine.widths
        assert list(remote.notices) == ["started without a MIDI input"]  # the first client sees the start's notices
        assert remote.set(0, "proportion", 0.8) and not remote.set(5, "proportion", 0.8)
        wait_for(lambda: engine.target(0, "proportion") == pytest.approx(0.8), 5)
        remote.set_gain(-6.0)
        remote.set_bypass(True)
        wait_for(lambda: engine.gain_db == -6.0 and engine.bypass, 5)
        wait_for(lambda: remote.telemetry.bypass and remote.telemetry.time_s > 0.5, 5)
        assert remote.recall(1) and not remote.recall(7)
        wait_for(lambda: remote.scene.name == "grit" and engine.scene.name == "grit", 10)
        remote.record_lane(0, "proportion")
        for value in (0.2, 0.6, 0.4):
            remote.set(0, "proportion", value)
            time.sleep(0.15)
        lane = remote.stop_lane(0, "proportion")
        assert lane is not None and lane == engine.controller.lanes[(0, "proportion")]
        remote.start_take(tmp_path / "take.wav")
        assert remote.recording_take
        time.sleep(0.6)
        remote.stop_take()
        wait_for(lambda: (tmp_path / "take.wav").exists(), 5)
        edited = Scene("grit", [Bend("fc2", "threshold", 0.3), Bend("fc1", "ablate", 0.5)], morph_seconds=0.0)
        remote.scenes[1] = edited
        remote.load(edited)
        wait_for(lambda: len(engine.scene.bends) == 2, 30)  # a new chain, compiled while the old one played
        assert scene_to_toml(engine.scenes[1]) == scene_to_toml(edited)  # it took its place in the set
        with pytest.raises(Exception, match=r"fc9"):
            remote.load(Scene("bad", [Bend("fc9", "ablate", 0.5)]))
    finally:
        remote.close()
    engine.events.write_pending(force_flush=True)
    moves = [(event.source, event.target) for event in _events(tmp_path)]
    assert ("tui", "bend1.proportion") in moves and ("tui", "scene") in moves and ("tui", "gain") in moves


def _events(tmp_path: Path) -> list:
    from tuibend.engine.events import read_events

    return read_events(tmp_path / "events.jsonl")


def test_a_client_that_sends_garbage_is_disconnected_and_the_engine_plays_on(served):
    performance, server, path = served
    engine = performance.engine
    steady = RemoteEngine(path)
    hostile = [b"\x00\xff garbage\n", b'{"op": "set", "bend": "all", "name": 1, "value": 1}\n',
               b"{" * 2_000_000, b'{"op": "stop", "op": "panic", "why": 1}\n']
    try:
        for junk in hostile:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(path))
                client.settimeout(5)
                client.makefile("rb").readline()  # the first state
                with pytest.raises(OSError):  # disconnected: the send fails, or the reply is the last word
                    client.sendall(junk)
                    reply = b"".join(iter(lambda: client.recv(65536), b""))
                    assert b"not a message of the protocol" in reply
                    raise ConnectionResetError
        blocks = engine.telemetry.blocks
        wait_for(lambda: engine.telemetry.blocks > blocks + 10, 5)  # the engine plays on
        assert not performance.ended.is_set() and engine.error is None
        assert steady.connected and steady.set(0, "proportion", 0.1)  # and another client is served
        wait_for(lambda: engine.target(0, "proportion") == pytest.approx(0.1), 5)
        wait_for(lambda: server.clients == 1, 5)
    finally:
        steady.close()


def test_a_second_performance_on_the_same_socket_is_refused(served):
    from tuibend.engine.errors import EngineError
    from tuibend.engine.server import ControlServer

    performance, _, path = served
    with pytest.raises(EngineError, match=r"already playing.*tuibend attach"):
        ControlServer(performance, path)


def test_an_interface_of_another_version_is_refused_with_the_reason(served, monkeypatch):
    import tuibend.engine.remote as remote_module

    _, _, path = served
    monkeypatch.setattr(remote_module, "__version__", "0.0.1")
    with pytest.raises(NotPlaying, match=r"runs tuibend \d.*this is 0\.0\.1; attach with the tuibend that started it"):
        RemoteEngine(path)


@pytest.mark.quick
def test_nothing_playing_is_one_clear_line(tmp_path):
    with pytest.raises(NotPlaying, match=r"no performance is playing.*tuibend play"):
        RemoteEngine(tmp_path / "none.sock")


@pytest.mark.quick
def test_the_control_folder_must_be_the_users_own(tmp_path, monkeypatch):
    from tuibend.places import PlaceError, runtime

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = runtime()
    assert folder == tmp_path / "tuibend" and (folder.stat().st_mode & 0o777) == 0o700
    folder.chmod(0o755)  # others may enter: whoever reaches the socket steers the performance
    with pytest.raises(PlaceError, match="only you may enter"):
        runtime()


async def test_the_interface_attached_drives_the_engine_and_detaches_without_stopping_it(served, tmp_path):
    """The same interface over the socket: a fader key moves the engine's fader, and detaching (D) leaves
    the performance playing; quitting (q) from a second attach ends it."""
    from tuibend.tui.app import DETACH, QUIT, AppOptions, TuibendApp

    performance, _, path = served
    engine = performance.engine
    for ending in (DETACH, QUIT):
        remote = RemoteEngine(path)
        app = TuibendApp(remote, AppOptions(*remote.labels, tmp_path / "scenes", tmp_path / "takes"))
        async with app.run_test() as pilot:
            await pilot.pause(0.3)
            assert "glow" in str(app.query_one("#scenes").render())
            before = engine.target(0, "proportion")
            await pilot.press("right")
            await pilot.pause(0.3)
            assert engine.target(0, "proportion") == pytest.approx(before + 0.05)
            if ending == DETACH:  # saved under a name: the performance learns where the scene now lives
                await pilot.press("S")
                await pilot.pause(0.2)
                for key in ("ctrl+u", *"saved-glow", "enter"):
                    await pilot.press(key)
                await pilot.pause(0.3)
                saved = tmp_path / "scenes" / "saved-glow.toml"
                assert saved.exists() and engine.scene_paths[0] == saved
            else:  # a second attach sees the scene where it was saved
                assert remote.scene_paths[0] == tmp_path / "scenes" / "saved-glow.toml"
            await pilot.press("D" if ending == DETACH else "q")
            await pilot.pause(0.2)
            if ending == QUIT:  # the moved fader is an unsaved edit
                await pilot.press("y")
                await pilot.pause(0.2)
        assert app.return_value == ending
        if ending == QUIT:
            remote.ask(control.Stop())  # what run_app does after a quit
        remote.close()
        assert performance.ended.is_set() == (ending == QUIT)


def test_telemetry_goes_out_as_osc_and_only_what_changed(served):
    """--osc-out: the scene, the faders, the levels, to a loopback UDP port; a moved fader is sent again."""
    from pythonosc.osc_message import OscMessage

    from tuibend.midi import OscTelemetry

    performance, _, _ = served
    engine = performance.engine
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        sender = OscTelemetry(engine, "127.0.0.1", listener.getsockname()[1], seconds=0.05)
        try:
            heard = {}
            while len(heard) < 6 + 4:  # six addresses of telemetry, four of glow's parameters
                message = OscMessage(listener.recv(8192))
                heard[message.address] = message.params[0]
            assert heard["/tuibend/scene"] == "glow" and heard["/tuibend/bend/1/proportion"] == pytest.approx(0.5)
            assert heard["/tuibend/bend/2/freq"] == pytest.approx(2.0) and heard["/tuibend/level/out"] <= 0.0
            engine.set(0, "proportion", 0.75)
            while (message := OscMessage(listener.recv(8192))).address != "/tuibend/bend/1/proportion":
                assert message.address.startswith("/tuibend/level") or message.address in ("/tuibend/f0",
                                                                                           "/tuibend/gate")
            assert message.params == [pytest.approx(0.75)]
        finally:
            sender.close()
    assert sender.notices == collections.deque()


# ----- another user -----------------------------------------------------------------------------------------


def _other_user() -> int | None:
    """The uid of a second user (made if need be); None where this is not root."""
    if os.getuid() != 0 or shutil.which("useradd") is None:
        return None
    name = "tuibend-guest"
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    return int(subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout)


def _command_as(uid: int, argv: list[str]) -> tuple[int, str]:
    """``tuibend ARGV`` run by another user: a forked child drops to ``uid`` and runs the command's main
    (a new interpreter could not start: Python may live in a folder only its owner enters)."""
    from tuibend.cli import main

    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: no return from here
        code = 70
        try:
            os.close(reader)
            sys.stderr = os.fdopen(writer, "w")  # pytest holds the one it captures into
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            code = main(argv)
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader) as output:
        said = output.read()
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status), said


def test_another_users_stop_is_refused_and_the_performance_goes_on(served):
    """Through the folder (0700) and, with the folder opened up, through the socket's peer check."""
    guest = _other_user()
    if guest is None:
        pytest.fail("this test needs root to make a second user (CI runs as root)")
    performance, _, path = served
    code, said = _command_as(guest, ["stop", "--socket", str(path)])
    assert code == 2 and "not yours to control" in said, said
    path.parent.chmod(0o755)  # a careless folder and socket: the peer check still refuses the guest
    path.chmod(0o666)
    try:
        code, said = _command_as(guest, ["stop", "--socket", str(path)])
    finally:
        path.parent.chmod(0o700)
    assert code == 2 and "closed the connection" in said, said
    assert not performance.ended.is_set() and performance.engine.error is None
    wait_for(lambda: any("refused a connection from user" in notice for notice in performance.notices), 5)


# ----- the whole program in tmux, through JACK ---------------------------------------------------------------


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _screen_shows(session: str, text: str, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while text not in (screen := tmux("capture-pane", "-p", "-t", session)):
        assert time.monotonic() < deadline, screen
        time.sleep(0.3)
    return screen


def test_the_performance_survives_its_terminal_through_jack(jack_server, tmp_path):
    """Play in tmux; kill the tmux session: the engine's JACK ports stay and its output keeps its level; a
    MIDI CC while detached moves bend 1; `tuibend attach` in a new session shows the scenes and the moved
    fader; `tuibend stop` leaves a finished take of the whole performance, with no underrun, and the engine
    never late for JACK (the graph's xruns, if any, are the test's own Python listener's, named by the server)."""
    import jack
    import rtmidi
    from jack_harness import Harness, late_clients, server_log_size

    assert shutil.which("tmux"), "tmux is needed (apt-get install tmux)"
    scenes = tmp_path / "scenes"
    for scene in two_scenes():
        save_scene(scenes / f"{scene.name}.toml", scene)
    take, stats = tmp_path / "take.wav", tmp_path / "stats.json"
    tuibend = f"{sys.executable} -m tuibend"
    first, second = f"tb-play-{os.getpid()}", f"tb-attach-{os.getpid()}"
    log_start = server_log_size()
    tmux("new-session", "-d", "-s", first, "-x", "100", "-y", "30",
         f"cd {REPO} && {tuibend} play --model {BUNDLED_MODEL} --input {DEMO_INPUT} --scenes {scenes} "
         f"--record {take} --stats {stats} --midi virtual --midi-api jack --midi-map {tmp_path / 'midi.toml'}")
    harness = Harness("survival-listener", seconds=60)
    controller = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "survival-faders")
    probe = jack.Client("survival-probe", no_start_server=True)
    try:
        _screen_shows(first, "Chain")
        _, outputs = harness.ports_of("tuibend")
        harness.client.connect(outputs[0], harness.inp)
        time.sleep(2.0)
        level_before = _level(harness, 1.5)
        tmux("kill-session", "-t", first)  # the terminal is gone (what a dropped SSH connection does)
        time.sleep(2.0)
        assert probe.get_ports("tuibend:", is_audio=True), "the engine's JACK ports went with the terminal"
        level_after = _level(harness, 1.5)
        assert level_before > 0.01 and level_after > 0.3 * level_before, (level_before, level_after)
        wait_for(lambda: "tuibend-midi:tuibend" in controller.get_ports(), 10)
        controller.open_port(controller.get_ports().index("tuibend-midi:tuibend"))
        for value in (60, 64, 90, 100):  # CC 20 (the default map) crosses the fader's 0.5, then leads it
            controller.send_message([0xB0, 20, value])
            time.sleep(0.1)
        status = subprocess.run([*tuibend.split(), "status"], capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and "playing choir from demo-voice.flac" in status.stdout, status.stderr
        tmux("new-session", "-d", "-s", second, "-x", "100", "-y", "30", f"cd {REPO} && {tuibend} attach")
        screen = _screen_shows(second, "grit", 60)
        assert "glow" in screen and "0.79" in screen, screen  # the scenes, and the fader the CC moved (100/127)
        stopped = subprocess.run([*tuibend.split(), "stop"], capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and f"take {take}" in stopped.stdout, stopped.stdout + stopped.stderr
        wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", second], capture_output=True).returncode, 30)
    finally:
        for session in (first, second):
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        subprocess.run([*tuibend.split(), "stop"], capture_output=True, timeout=60)  # if a failure left it playing
        controller.delete()
        probe.close()
        harness.close()
    assert take.exists() and not take.with_name(take.name + ".part").exists()
    audio, rate = soundfile.read(take)
    played = json.loads(stats.read_text())
    assert len(audio) / rate == pytest.approx(played["time_s"], abs=0.5) and len(audio) / rate > 8.0
    late = late_clients(log_start)
    assert played["underruns"] == 0 and "tuibend" not in late, (played, late)


def _level(harness, seconds: float) -> float:
    """RMS of what the listener recorded over the next ``seconds``."""
    start = harness.recorded
    time.sleep(seconds)
    recorded = harness.recording[start:harness.recorded]
    return float(np.sqrt(np.mean(recorded ** 2))) if len(recorded) else 0.0


def test_a_foreground_performance_finishes_its_take_when_its_terminal_goes(tmp_path):
    """--foreground: the engine lives in the interface's process, so a killed tmux session ends it; the take
    is finished and renamed (never a .part left) and the process does not linger on the dead terminal."""
    take = tmp_path / "take.wav"
    session = f"tb-foreground-{os.getpid()}"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30",
         f"cd {REPO} && exec {sys.executable} -m tuibend play --foreground --device none --model {BUNDLED_MODEL} "
         f"--record {take} --scenes {tmp_path}")
    try:
        _screen_shows(session, "Chain")
        time.sleep(2.0)
        pid = int(tmux("display-message", "-p", "-t", session, "#{pane_pid}"))
        tmux("kill-session", "-t", session)
        wait_for(lambda: not _alive(pid) and take.exists(), 20)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert not take.with_name(take.name + ".part").exists()
    audio, rate = soundfile.read(take)
    assert len(audio) / rate > 1.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
