"""The terminal instrument: every action through Textual's pilot on a real engine, snapshots, and the
whole program in tmux against the JACK dummy server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import BUNDLED_MODEL, DEMO_INPUT, REPO

from tuibend.bend.registry import Bend
from tuibend.bend.scene import Scene, load_scene, save_scene
from tuibend.engine import Engine, EngineSettings
from tuibend.engine.events import read_events
from tuibend.engine.session import file_player
from tuibend.tui.app import AppOptions, TuibendApp
from tuibend.tui.editor import SceneEditor
from tuibend.tui.keys import KeymapError, load_keymap


@pytest.fixture(autouse=True)
def _quick_pilot(quick_pilot):
    """Every pilot here drives an app over a playing engine."""


def two_scenes() -> list[Scene]:
    return [Scene("glow", [Bend("fc1", "ablate", 0.5), Bend("gru", "oscillate", 0.25)], morph_seconds=0.0),
            Scene("grit", [Bend("fc2", "threshold", 0.1)], morph_seconds=0.0)]


@pytest.fixture(scope="module")
def player(choir_model):
    return file_player(choir_model, DEMO_INPUT, loop=True)


@pytest.fixture
def performance(choir_model, player, tmp_path):
    """A real engine on the virtual clock with two scene files, and the app's options."""
    scenes = two_scenes()
    paths = []
    for scene in scenes:
        paths.append(save_scene(tmp_path / "scenes" / f"{scene.name}.toml", scene))
    settings = EngineSettings(device="none", log=tmp_path / "events.jsonl", check_speed=False)
    engine = Engine(choir_model, player, scenes, settings)
    engine.scene_paths = paths
    engine.prepare()
    options = AppOptions("choir", "demo-voice.flac", tmp_path / "scenes", tmp_path / "takes")
    yield engine, options, tmp_path
    engine.stop()


def events(tmp_path: Path, target_prefix: str = "") -> list:
    return [e for e in read_events(tmp_path / "events.jsonl") if e.target.startswith(target_prefix)]


async def test_faders_move_the_engine_coarse_and_fine(performance):
    engine, options, tmp_path = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("right", "right")  # bend 1 proportion 0.5 -> 0.6
        assert engine.target(0, "proportion") == pytest.approx(0.6)
        await pilot.press("H")  # fine: -0.01
        assert engine.target(0, "proportion") == pytest.approx(0.59)
        await pilot.press("j", "tab", "l")  # bend 2, its first parameter (freq, 0..60 Hz), up 5 %
        assert engine.target(1, "freq") == pytest.approx(2.0 + 3.0)
        await pilot.pause(0.2)
    engine.events.write_pending(force_flush=True)
    moves = [(e.source, e.target) for e in events(tmp_path, "bend")]
    assert ("tui", "bend1.proportion") in moves and ("tui", "bend2.freq") in moves


async def test_digits_recall_scenes_and_space_pauses(performance):
    engine, options, tmp_path = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("2")
        await pilot.pause(0.1)
        deadline = time.monotonic() + 20
        while engine.scene.name != "grit" and time.monotonic() < deadline:  # a new chain compiles first
            await pilot.pause(0.1)
        assert engine.scene.name == "grit" and app.editor.current == 1
        assert engine.source.playing
        await pilot.press("space")
        assert not engine.source.playing
        await pilot.press("space")
        assert engine.source.playing
        await pilot.press("9")  # no ninth scene: nothing happens
        assert app.editor.current == 1
    engine.events.write_pending(force_flush=True)
    assert [e.value for e in events(tmp_path, "scene")][-1] == "grit"
    assert [e.value for e in events(tmp_path, "transport")] == ["pause", "play"]


async def test_panic_bypass_and_gain(performance):
    engine, options, tmp_path = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("b")
        assert engine.bypass
        await pilot.press("b")
        assert not engine.bypass
        await pilot.press("plus", "plus", "plus", "minus")
        assert engine.gain_db == 2.0
        written = engine.bridge.output.written
        await pilot.press("escape")
        assert engine.bridge.mute_until >= written
    engine.events.write_pending(force_flush=True)
    assert [e.target for e in events(tmp_path) if e.source == "tui"] == ["bypass", "bypass", *["gain"] * 4, "panic"]


async def test_chain_edits_undo_redo_and_save(performance):
    engine, options, tmp_path = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("a")  # a bend after bend 1
        assert [b.transform for b in app.editor.scene.bends] == ["ablate", "oscillate", "oscillate"]
        await pilot.press("t")  # oscillate -> the next transform
        assert app.editor.scene.bends[1].transform == "threshold"
        await pilot.press("p")  # the next bend point
        assert app.editor.scene.bends[1].point != "fc1"
        await pilot.press("left_square_bracket")  # up the chain
        assert app.editor.scene.bends[0].transform == "threshold"
        await pilot.press("d")
        assert [b.transform for b in app.editor.scene.bends] == ["ablate", "oscillate"]
        await pilot.press("u", "u")
        assert [b.transform for b in app.editor.scene.bends] == ["ablate", "threshold", "oscillate"]
        await pilot.press("U")
        assert app.editor.scene.bends[0].transform == "threshold"
        deadline = time.monotonic() + 30
        while [b.transform for b in engine.scene.bends] != ["threshold", "ablate", "oscillate"]:
            assert time.monotonic() < deadline, "the edited chain never reached the engine"
            await pilot.pause(0.1)
        await pilot.press("s")
        await pilot.pause(0.1)
    saved = load_scene(tmp_path / "scenes" / "glow.toml")
    assert [b.transform for b in saved.bends] == ["threshold", "ablate", "oscillate"]
    assert not app.editor.dirty


async def test_save_as_writes_a_new_scene_file(performance):
    engine, options, tmp_path = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("right")
        await pilot.press("S")
        await pilot.pause(0.1)
        await pilot.press("ctrl+a", *"dusk", "enter")  # ctrl+a: to the start... then a new name replaces
        await pilot.pause(0.2)
    written = sorted(p.name for p in (tmp_path / "scenes").glob("*.toml"))
    assert len(written) == 3
    new = next(p for p in (tmp_path / "scenes").glob("*.toml") if p.name not in ("glow.toml", "grit.toml"))
    assert load_scene(new).bends[0].proportion == pytest.approx(0.55)


async def test_lane_recording_from_live_moves(performance):
    engine, options, _ = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("r")
        for _ in range(4):
            await pilot.press("right")
            await pilot.pause(0.15)
        await pilot.press("r")
        lane = app.editor.scene.automation[(0, "proportion")]
        assert lane.values[0] == pytest.approx(0.5) and lane.values[-1] == pytest.approx(0.7)
        assert (0, "proportion") in engine.controller.lanes  # the engine plays it back
    assert 0 in app.editor.dirty


async def test_take_recording_key(performance):
    engine, options, tmp_path = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        # The pilot returns from a press when the app is idle, which with the meters redrawing can take a
        # while: each press happened between the engine times read before and after it.
        before_start = engine.telemetry.time_s
        await pilot.press("R")
        after_start = engine.telemetry.time_s
        await pilot.pause(1.0)
        before_stop = engine.telemetry.time_s
        await pilot.press("R")
        after_stop = engine.telemetry.time_s
        await pilot.pause(0.3)
    takes = list((tmp_path / "takes").glob("take-*.wav"))
    assert len(takes) == 1
    audio, rate = soundfile.read(takes[0])
    assert before_stop - after_start > 0.9
    block = engine.settings.block / rate  # a request is applied at the next block
    # the take holds what played between the presses
    assert before_stop - after_start - block <= len(audio) / rate <= after_stop - before_start + 2 * block
    assert np.max(np.abs(audio)) > 0.01


async def test_take_key_stops_a_take_that_record_started(choir_model, player, tmp_path):
    """``R`` while ``--record``'s take (or the take of a run with no audio device) records ends it, saved."""
    settings = EngineSettings(device="none", record=tmp_path / "recorded.wav", check_speed=False)
    engine = Engine(choir_model, player, two_scenes(), settings)
    engine.prepare()
    options = AppOptions("choir", "demo-voice.flac", tmp_path / "scenes", tmp_path / "takes")
    app = TuibendApp(engine, options)
    try:
        async with app.run_test() as pilot:
            await pilot.pause(0.5)
            assert engine.recording_take and engine.take_path == tmp_path / "recorded.wav"
            await pilot.press("R")
            await pilot.pause(0.3)
            assert not engine.recording_take and app.is_running
            await pilot.press("R")  # and a new one starts in takes/
            await pilot.pause(0.3)
            assert engine.recording_take and engine.take_path.parent == tmp_path / "takes"
    finally:
        engine.stop()
    assert soundfile.info(tmp_path / "recorded.wav").frames > 0


async def test_mashing_enter_and_escape_in_dialogs_never_pops_the_main_screen(performance):
    engine, options, tmp_path = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        main = app.screen
        await pilot.press("S", "enter", "enter")  # an empty name (nothing saved), then Enter on the main screen
        await pilot.press("S", "escape", "enter")
        await pilot.press("question_mark", "escape", "escape")
        await pilot.pause(0.2)
        assert app.is_running and app.screen is main
    assert sorted(p.name for p in (tmp_path / "scenes").glob("*.toml")) == ["glow.toml", "grit.toml"]


async def test_quit_asks_first_when_there_are_unsaved_edits(performance):
    engine, options, _ = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("q")
        assert app._exit  # nothing edited: it quits at once
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.press("right", "q")
        await pilot.pause(0.1)
        assert app.screen.__class__.__name__ == "ConfirmScreen"
        await pilot.press("n")
        assert app.screen.__class__.__name__ == "Screen"
        await pilot.press("q", "y")
        await pilot.pause(0.1)
        assert app._exit


async def test_a_failing_model_switch_keeps_the_performance(performance, tmp_path):
    engine, options, _ = performance

    def make_engine(changes: dict) -> Engine:
        raise ValueError(f"{changes['model']}: config.json is not valid JSON")

    options.make_engine = make_engine
    app = TuibendApp(engine, options)
    async with app.run_test(notifications=True) as pilot:
        await pilot.pause(0.3)
        await pilot.press("m")
        await pilot.pause(0.1)
        await pilot.press("enter")
        await pilot.pause(0.5)
        messages = [n.message for n in app._notifications]
        assert any("failed" in m and "not valid JSON" in m for m in messages)
        assert app.engine is engine and engine.error is None
        time_before = engine.telemetry.time_s
        await pilot.pause(0.3)
        assert engine.telemetry.time_s > time_before  # still playing


async def test_a_scene_that_cannot_be_prepared_is_a_warning_and_the_music_goes_on(performance, monkeypatch):
    from tuibend.engine import chains

    engine, options, _ = performance
    app = TuibendApp(engine, options)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("no room to compile another chain structure (the machine is out of memory)")

    async with app.run_test(notifications=True) as pilot:
        await pilot.pause(0.3)
        monkeypatch.setattr(chains, "NativeStream", out_of_memory)  # a new chain cannot be built
        engine.load(Scene("unpreparable", [Bend("fc2", "invert", 0.5)]), "test")
        for _ in range(100):
            if engine.notice is not None:
                break
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        warnings = [n.message for n in app._notifications if n.severity == "warning"]
        assert any("'unpreparable' could not be prepared" in m and "no room to compile" in m for m in warnings)
        assert engine.error is None and engine.scene.name == "glow"
        time_before = engine.telemetry.time_s
        await pilot.pause(0.3)
        assert engine.telemetry.time_s > time_before  # still playing


async def test_keys_can_be_remapped(performance, tmp_path):
    engine, options, _ = performance
    (tmp_path / "keys.toml").write_text('[keys]\nbypass = "z"\n')
    options.keymap = load_keymap(tmp_path / "keys.toml")
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("z")
        assert engine.bypass
        await pilot.press("n", "n", "N")  # the noise gate's threshold: +2 +2 -2 dB from where it follows the floor
        assert engine.dynamics.gate.offset_db == pytest.approx(2.0)
        assert [e.value for e in engine.events.recent if e.target == "gate"] == [2.0, 4.0, 2.0]
    (tmp_path / "bad.toml").write_text('[keys]\nexplode = "z"\n')
    with pytest.raises(KeymapError, match=r"keys\.explode: no such action"):
        load_keymap(tmp_path / "bad.toml")
    (tmp_path / "bad.toml").write_text('[keys]\npanic = "notakey!!"\n')
    with pytest.raises(KeymapError, match=r"keys\.panic: 'notakey!!' is not a key name"):
        load_keymap(tmp_path / "bad.toml")


@pytest.mark.live
async def test_hammering_keys_causes_no_underrun(performance):
    """About a hundred key presses a second for 4 s, a dialog opened and closed among them: every
    move reaches the engine and no block is late. (Keys are posted as events: the pilot's own
    ``press`` waits for an idle process, which a playing engine never is.)"""
    from textual import events as textual_events

    engine, options, _ = performance
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.5)
        underruns, posted, started = engine.telemetry.underruns, 0, time.monotonic()
        while time.monotonic() - started < 4.0:
            keys = ["right", "left"] if posted % 100 else ["question_mark", "escape"]
            for key in keys:
                app.post_message(textual_events.Key(key, None))
            posted += len(keys)
            await asyncio.sleep(0.02)
        await pilot.pause(0.5)
        rate = posted / (time.monotonic() - started)
        assert engine.telemetry.underruns == underruns
    engine.events.write_pending(force_flush=True)
    moves = [e for e in engine.events.recent if e.source == "tui" and e.target == "bend1.proportion"]
    assert rate > 50 and len(moves) >= posted - 10


def test_editor_groups_a_run_of_fader_moves_into_one_undo_step():
    scenes = two_scenes()
    editor = SceneEditor(scenes, [None, None], ["fc1", "gru", "fc2"])
    for _ in range(5):
        editor.adjust(0.05)
    editor.move_row(1)
    editor.adjust(-0.05)
    editor.undo()
    assert scenes[0].bends[1].proportion == pytest.approx(0.25)
    assert scenes[0].bends[0].proportion == pytest.approx(0.75)
    editor.undo()
    assert scenes[0].bends[0].proportion == pytest.approx(0.5)
    editor.redo()
    assert scenes[0].bends[0].proportion == pytest.approx(0.75)


# ----- snapshots: the main screen and the help screen at 80x24 ------------------------------------------


@pytest.fixture
def still_app(choir_model, player, tmp_path):
    """The interface over a prepared engine that is not running: a fixed telemetry, a stable picture."""
    engine = Engine(choir_model, player, two_scenes(), EngineSettings(device="none", check_speed=False))
    engine.scene_paths = [None, None]
    engine.prepare()
    return TuibendApp(engine, AppOptions("choir", "demo-voice.flac", tmp_path, tmp_path,
                                         start_engine=False))


def test_main_screen_snapshot(still_app, snap_compare):
    assert snap_compare(still_app, terminal_size=(80, 24))


def test_help_screen_snapshot(still_app, snap_compare):
    assert snap_compare(still_app, terminal_size=(80, 24), press=["question_mark"])


# ----- the whole program in tmux, against JACK -----------------------------------------------------------


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def test_play_in_tmux_through_jack(jack_server, tmp_path):
    """Start, recall a scene, move a fader, record a take, quit: the take sounds and the log shows it all."""
    assert shutil.which("tmux"), "tmux is needed (apt-get install tmux)"
    scenes = tmp_path / "scenes"
    for scene in two_scenes():
        save_scene(scenes / f"{scene.name}.toml", scene)
    session = f"tuibend-test-{int(time.time())}"
    command = (f"cd {REPO} && {REPO / '.venv/bin/tuibend'} play --model {BUNDLED_MODEL} --scenes {scenes} "
               f"--takes {tmp_path / 'takes'} --log {tmp_path / 'events.jsonl'} --stats {tmp_path / 'stats.json'}")
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", command)
    try:
        deadline = time.monotonic() + 120
        while "Chain" not in tmux("capture-pane", "-p", "-t", session):
            assert time.monotonic() < deadline, tmux("capture-pane", "-p", "-t", session)
            time.sleep(0.5)
        time.sleep(1.0)
        tmux("send-keys", "-t", session, "R")
        time.sleep(1.0)
        tmux("send-keys", "-t", session, "2")
        time.sleep(3.0)
        tmux("send-keys", "-t", session, "Right", "Right")
        time.sleep(1.5)
        screen = tmux("capture-pane", "-p", "-t", session)
        assert "grit" in screen and "0.20" in screen  # the fader shows its new value
        tmux("send-keys", "-t", session, "R")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "q")
        time.sleep(0.5)
        assert "Quit anyway?" in tmux("capture-pane", "-p", "-t", session)  # the moved fader is unsaved
        tmux("send-keys", "-t", session, "y")
        deadline = time.monotonic() + 30
        while subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "tuibend did not quit"
            time.sleep(0.3)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    takes = list((tmp_path / "takes").glob("take-*.wav"))
    assert len(takes) == 1
    audio, rate = soundfile.read(takes[0])
    assert len(audio) / rate > 4.0 and np.max(np.abs(audio)) > 0.01
    log = read_events(tmp_path / "events.jsonl")
    assert any(e.target == "scene" and e.value == "grit" and e.source == "tui" for e in log)
    assert any(e.target == "bend1.proportion" and e.source == "tui" and e.value == pytest.approx(0.2) for e in log)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["underruns"] == 0


async def test_midi_learn_from_the_interface_through_jack(performance, jack_server, tmp_path):
    """g arms learn on the focused fader; a CC from a JACK MIDI controller becomes its control; the
    monitor panel shows the messages."""
    import rtmidi

    from tuibend.midi import MidiInput

    engine, options, _ = performance
    controller = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "tui-controller")
    controller.open_virtual_port("knobs")
    midi = MidiInput(engine, "tui-controller:knobs", rtmidi.API_UNIX_JACK, save_to=tmp_path / "midi.toml",
                     client_name="tui-midi")
    options.midi = midi
    app = TuibendApp(engine, options)
    try:
        async with app.run_test() as pilot:
            await pilot.pause(0.3)
            await pilot.press("g")
            assert midi.learning == (0, "proportion")
            for value in (60, 64, 70, 80):  # crosses the fader's 0.5 (soft takeover), then leads it
                controller.send_message([0xB0, 7, value])
                await pilot.pause(0.1)
            deadline = time.monotonic() + 5
            while engine.target(0, "proportion") != pytest.approx(80 / 127, abs=0.01):
                assert time.monotonic() < deadline, engine.target(0, "proportion")
                await pilot.pause(0.1)
            assert midi.learning is None
            monitor = str(app.query_one("#midi").render())
            assert "cc ch1 7=80" in monitor
    finally:
        midi.close()
        controller.close_port()
        controller.delete()
    assert "number = 7" in (tmp_path / "midi.toml").read_text()  # learned mappings are kept


async def test_switching_input_swaps_the_engine_and_the_performance_goes_on(performance, choir_model):
    engine, options, _ = performance
    asked = []

    def make_engine(changes: dict) -> Engine:
        asked.append(changes)
        new = Engine(choir_model, file_player(choir_model, changes["input"], loop=True), two_scenes(),
                     EngineSettings(device="none", check_speed=False))
        new.scene_paths = [None, None]
        return new

    options.make_engine = make_engine
    app = TuibendApp(engine, options)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        await pilot.press("i")
        await pilot.pause(0.1)
        app.screen.query_one("#answer").value = str(DEMO_INPUT)
        await pilot.press("enter")
        deadline = time.monotonic() + 60
        while app.engine is engine:
            assert time.monotonic() < deadline, "the new engine never took over"
            await pilot.pause(0.2)
        new = app.engine
        played = new.telemetry.time_s
        await pilot.pause(0.5)
        assert new.telemetry.time_s > played and new.error is None
        assert engine._stop.is_set()  # the old engine was stopped once the new one was ready
        assert app.options.source == str(DEMO_INPUT)
    new.stop()
    assert asked == [{"input": str(DEMO_INPUT)}]


async def test_the_loading_screen_shows_each_step_while_it_loads_and_hands_over_the_result():
    """The first screen appears at once and says what is loading; the loader's result (or its fault,
    for the caller to report) comes back when it is done; quitting while it loads returns nothing."""
    import threading

    from tuibend.tui.loading import LoadingApp

    go_on = threading.Event()

    def load(say):
        say("loading TensorFlow")
        say("compiling 1/2")
        say("compiling 2/2", replace=True)
        go_on.wait(10)
        return "the engine"

    app = LoadingApp("tuibend: choir", load)
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        text = str(app.query_one("#loading").render())
        assert "loading TensorFlow" in text and "compiling 2/2" in text and "1/2" not in text
        assert app.is_running
        go_on.set()
        await pilot.pause(0.5)
    assert app.return_value == "the engine"

    failing = LoadingApp("tuibend", lambda say: (_ for _ in ()).throw(OSError("no such model")))
    async with failing.run_test() as pilot:
        await pilot.pause(0.5)
    assert isinstance(failing.return_value, OSError)

    stuck = threading.Event()
    waiting = LoadingApp("tuibend", lambda say: stuck.wait(10) and "late")
    async with waiting.run_test() as pilot:
        await pilot.press("q")
    stuck.set()
    assert waiting.return_value is None
