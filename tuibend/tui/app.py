"""The terminal instrument: scenes, the chain with its faders, the focused lane, meters, and a key for everything.

The app reads the engine's telemetry ten times a second and turns keys into engine calls that
never wait (:meth:`Engine.set`, :meth:`Engine.recall`, :meth:`Engine.load`, ...). Work that takes
time (compiling a new model or input) runs on a worker thread while the old engine plays on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Footer

from tuibend import places
from tuibend.bend.registry import structure_key
from tuibend.bend.scene import SceneError, save_scene
from tuibend.engine.errors import EngineError
from tuibend.engine.performance import swap_engine
from tuibend.errors import describe
from tuibend.tui.editor import SceneEditor
from tuibend.tui.keys import ACTIONS, bindings, load_keymap
from tuibend.tui.screens import ChoiceScreen, ConfirmScreen, HelpScreen, PromptScreen
from tuibend.tui.widgets import ChainView, LaneView, Meters, MidiMonitor, SceneList, StatusLine

if TYPE_CHECKING:
    from tuibend.engine.engine import Engine

REFRESH_SECONDS = 0.1  # telemetry reaches the screen ten times a second
# How the interface ended: the performance with it, or playing on, or the performance ended from elsewhere.
QUIT, DETACH, ENDED = "quit", "detach", "ended"


@dataclass
class AppOptions:
    """What the app needs beyond the engine: labels, folders, keys, and how to open another engine."""

    model: str
    source: str
    scenes_dir: Path = field(default_factory=places.user_scenes)  # where scenes are saved
    takes_dir: Path = field(default_factory=places.takes)
    keymap: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    make_engine: Callable[[dict], Engine] | None = None  # {"model": ...} or {"input": ...} -> a new engine
    start_engine: bool = True  # False in snapshot tests: the screen shows a fixed telemetry
    midi: object | None = None  # a tuibend.midi.MidiInput: its monitor, notices and learn
    osc: object | None = None  # a tuibend.midi.OscServer: its notices
    outputs: tuple = ()  # what sends the performance out (OSC telemetry, MIDI notes): their notices


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip().lower()).strip("-") or "scene"


class TuibendApp(App):
    """The instrument's one main screen; dialogs are modal screens over it."""

    CSS_PATH = "app.tcss"
    TITLE = "tuibend"
    BINDINGS = bindings()

    def __init__(self, engine: Engine, options: AppOptions):
        super().__init__()
        self.engine = engine
        self.options = options
        self.editor = self._editor_for(engine)
        self.recording_lane: tuple[int, str] | None = None
        self._reported_error: str | None = None
        self._reported_notice: str | None = None
        self._panels: dict = {}
        self._generation = engine.generation if engine.detachable else 0

    @staticmethod
    def _editor_for(engine: Engine) -> SceneEditor:
        editor = SceneEditor(engine.scenes, list(engine.scene_paths), list(engine.widths))
        editor.select(engine.scenes.index(engine.scene))
        return editor

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="body"):
            yield SceneList(id="scenes")
            yield ChainView(id="chain")
        yield LaneView(id="lane")
        yield MidiMonitor(id="midi")
        yield Meters(id="meters")
        yield Footer()

    def on_mount(self) -> None:
        # A dropped SSH connection sends SIGHUP: the take and the log are finished, then the app ends. Where
        # the event loop takes no signal handlers (Windows: NotImplementedError; not the main thread: the
        # others), there is no SIGHUP to handle.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hang_up)
        if self.options.keymap:
            self.set_keymap(self.options.keymap)
        if self.options.start_engine:  # after the first frame: the app's start-up would starve the audio
            self.call_after_refresh(self.engine.start)
        for notice in self.options.notices:
            self.notify(notice, severity="warning", timeout=8)
        self.refresh_panels()
        self.set_interval(REFRESH_SECONDS, self.refresh_panels)

    def _hang_up(self) -> None:
        """The terminal is gone: an engine of its own process plays on; one in this process ends here, its
        take finished and its log flushed, with the controls it drove. Then this process leaves at once: an
        orderly exit writes to the terminal that is no more, and can wait on it for ever."""
        if self.engine.detachable:
            self.engine.close()
        else:
            self.engine.stop()
            for control in (self.options.midi, self.options.osc, *self.options.outputs):
                if control is not None:
                    with contextlib.suppress(Exception):
                        control.close()
        os._exit(128 + signal.SIGHUP)

    # ----- the clock ---------------------------------------------------------------------------

    def _playing_edited_scene(self) -> bool:
        """True when the engine plays the chain the editor shows (not while a new one compiles)."""
        return structure_key(self.engine.scene.bends) == structure_key(self.editor.scene.bends)

    def refresh_panels(self) -> None:
        if not self._panels:
            try:  # found once on the main screen; a dialog over it later does not hide them
                self._panels = {kind: self.query_one(kind) for kind in
                                (StatusLine, SceneList, ChainView, LaneView, MidiMonitor, Meters)}
            except NoMatches:  # the clock fired while the app was closing: nothing left to draw
                return
        self._refresh_panels(self._panels)

    def _refresh_panels(self, panels: dict) -> None:
        engine, editor, telemetry = self.engine, self.editor, self.engine.telemetry
        if engine.detachable and not engine.connected:  # stopped from elsewhere (`tuibend stop`)
            self.exit(ENDED)
            return
        if engine.detachable and engine.generation != self._generation:  # the engine swapped model or input
            self._generation = engine.generation
            self.editor, self.recording_lane = self._editor_for(engine), None
            editor = self.editor
        moving = {}
        if self._playing_edited_scene():
            for (index, name), (target, value) in engine.faders().items():
                moving[(index, name)] = value
                editor.sync(index, name, target)  # MIDI and OSC moves
        panels[StatusLine].show(self.options.model, self.options.source, engine, telemetry)
        panels[SceneList].show(editor, engine.scene.name)
        panels[ChainView].show(editor, moving)
        panels[LaneView].show(editor, engine.scene_seconds, self.recording_lane == editor.focused())
        panels[Meters].show(telemetry)
        panels[MidiMonitor].show(*self._controls())
        queues = [control.notices for control in (*self._controls(), *self.options.outputs) if control is not None]
        if engine.detachable:  # what the engine's process has to say
            queues.append(engine.notices)
        for notices in queues:
            while notices:
                self.notify(notices.popleft(), timeout=4)
        if telemetry.notice and telemetry.notice != self._reported_notice:
            self._reported_notice = telemetry.notice
            self.notify(telemetry.notice, severity="warning", timeout=15)
        if telemetry.error and telemetry.error != self._reported_error:
            self._reported_error = telemetry.error
            self.notify(f"engine: {telemetry.error}", severity="error", timeout=30)

    # ----- performance -----------------------------------------------------------------------------

    def action_recall(self, index: int) -> None:
        if self.engine.recall(index, "tui"):
            self.editor.select(index)
            self.recording_lane = None
            self.refresh_panels()

    # Moves and fader steps come many a second: the panels catch up at the next tick (0.1 s).
    def action_move_row(self, delta: int) -> None:
        self.editor.move_row(delta)

    def action_move_column(self, delta: int) -> None:
        self.editor.move_column(delta)

    def action_adjust(self, fraction: float) -> None:
        moved = self.editor.adjust(fraction)
        if moved is None:
            return
        if self._playing_edited_scene():
            self.engine.set(*moved, source="tui")
        else:
            self._play(self.editor.scene)

    def action_play_pause(self) -> None:
        self.engine.transport("toggle", "tui")

    def action_panic(self) -> None:
        self.engine.panic("tui")
        self.notify("panic: muted and reset", severity="warning", timeout=2)

    def action_bypass(self) -> None:
        self.engine.set_bypass(not self.engine.bypass, "tui")

    def action_gain(self, db: float) -> None:
        self.engine.set_gain(self.engine.gain_db + db, "tui")

    def action_gate(self, db: float) -> None:
        engine = self.engine
        engine.set_gate_offset(engine.gate_offset_db + db, "tui")
        self.notify(f"noise gate opens at {engine.gate_threshold_db:.0f} dB ({engine.gate_offset_db:+.0f} dB)",
                    timeout=2)

    def action_record_lane(self) -> None:
        focus = self.editor.focused()
        if focus is None or not self._playing_edited_scene():
            return
        if self.recording_lane == focus:
            lane = self.engine.stop_lane(*focus, source="tui")
            self.editor.set_lane(*focus, lane)
            self.recording_lane = None
            self.notify(f"lane recorded: bend {focus[0] + 1} {focus[1]}", timeout=3)
        else:
            if self.recording_lane is not None:
                self.editor.set_lane(*self.recording_lane, self.engine.stop_lane(*self.recording_lane, source="tui"))
            self.engine.record_lane(*focus, source="tui")
            self.recording_lane = focus
        self.refresh_panels()

    def action_record_take(self) -> None:
        if self.engine.recording_take:  # one this key started, or --record's
            path = self.engine.take_path
            self.engine.stop_take()
            self.notify(f"take saved: {path}", timeout=5)
            return
        path = self.options.takes_dir / time.strftime("take-%Y%m%d-%H%M%S.wav")
        try:
            self.engine.start_take(path)
        except (OSError, ValueError) as error:
            self.notify(f"cannot record {path}: {getattr(error, 'strerror', None) or error}", severity="error",
                        timeout=8)
            return
        self.notify(f"recording {path}", timeout=3)

    # ----- editing ---------------------------------------------------------------------------------

    def _play(self, scene) -> None:
        """Sends an edited chain to the engine (compiled in the background if it is new)."""
        try:
            self.engine.load(scene, "tui", seconds=0.0)
        except (SceneError, EngineError, ValueError) as error:
            self.notify(str(error), severity="error", timeout=8)
        self.refresh_panels()

    def _edit(self, scene) -> None:
        if scene is not None:
            self.recording_lane = None
            self._play(scene)

    def action_add_bend(self) -> None:
        self._edit(self.editor.add_bend())

    def action_remove_bend(self) -> None:
        self._edit(self.editor.remove_bend())

    def action_move_bend(self, delta: int) -> None:
        self._edit(self.editor.move_bend(delta))

    def action_transform(self, delta: int) -> None:
        self._edit(self.editor.cycle_transform(delta))

    def action_point(self, delta: int) -> None:
        self._edit(self.editor.cycle_point(delta))

    def action_undo(self) -> None:
        self._edit(self.editor.undo())

    def action_redo(self) -> None:
        self._edit(self.editor.redo())

    def action_save(self) -> None:
        path = self.editor.paths[self.editor.current]
        if path is None:
            self.action_save_as()
            return
        if places.is_bundled(path):  # a bundled scene, edited, is saved as the user's own of the same name
            path = self.options.scenes_dir / path.name
        self._save(path)

    def _save(self, path: Path) -> None:
        try:
            save_scene(path, self.editor.scene)
        except OSError as error:
            self.notify(f"{path}: not saved ({error.strerror or error})", severity="error", timeout=8)
            return
        self.editor.saved(path)
        self.engine.scene_saved(self.editor.current, path)
        self.notify(f"saved {path}", timeout=3)

    def action_save_as(self) -> None:
        def answered(name: str | None) -> None:
            if name:
                self.editor.scene.name = name
                self._save(self.options.scenes_dir / f"{slug(name)}.toml")

        self.push_screen(PromptScreen("Save the scene as (name):", self.editor.scene.name), answered)

    # ----- model, input, MIDI, help, quit ---------------------------------------------------------------

    def action_switch_model(self) -> None:
        models = list(places.model_folders())
        self.push_screen(ChoiceScreen("Switch to model:", models),
                         lambda choice: choice and self._switch({"model": choice}, f"model {choice}"))

    def action_switch_input(self) -> None:
        self.push_screen(PromptScreen("Input: mic, or an audio file:", self.options.source),
                         lambda choice: choice and self._switch({"input": choice}, f"input {choice}"))

    def _switch(self, changes: dict, label: str) -> None:
        if self.engine.detachable:  # the engine's process prepares and swaps; the editor follows it
            self.engine.switch(changes)
            self.notify(f"preparing {label}… (the current engine plays on)", timeout=4)
            return
        if self.options.make_engine is None:
            self.notify("switching is not available here", severity="error")
            return
        self.notify(f"preparing {label}… (the current engine plays on)", timeout=4)
        self.run_worker(lambda: self._prepare_engine(changes, label), thread=True, exclusive=True)

    def _prepare_engine(self, changes: dict, label: str) -> None:
        try:
            engine = self.options.make_engine(changes)
            engine.prepare()
        except Exception as error:  # any fault: the performance goes on with what was playing
            self.call_from_thread(self.notify, f"{label} failed: {describe(error)}", severity="error", timeout=10)
            return
        self.call_from_thread(self._swap_engine, engine, changes)

    def _swap_engine(self, engine: Engine, changes: dict) -> None:
        self.engine, failure = swap_engine(self.engine, engine, self.options.make_engine,
                                           (self.options.midi, self.options.osc, *self.options.outputs))
        if failure is not None:
            self.notify(failure, severity="error", timeout=10)
            changes = {}
        self.editor = self._editor_for(self.engine)
        self.options.model = changes.get("model", self.options.model)
        self.options.source = changes.get("input", self.options.source)
        self.recording_lane = None
        self.refresh_panels()

    def _controls(self) -> tuple:
        """The MIDI and OSC inputs (those of the engine's process when attached), None where not open."""
        engine = self.engine
        return (engine.midi, engine.osc) if engine.detachable else (self.options.midi, self.options.osc)

    def action_midi_learn(self) -> None:
        midi, focus = self._controls()[0], self.editor.focused()
        if midi is None:
            self.notify("no MIDI input is open (start tuibend play with --midi)", severity="warning")
        elif focus is not None:
            midi.learn(*focus)
            self.notify(f"MIDI learn: move a control for bend {focus[0] + 1} {focus[1]}", timeout=4)

    def action_help(self) -> None:
        keymap = self.options.keymap
        rows = [(keymap.get(action_id, keys), description) for action_id, keys, _, description, _ in ACTIONS]
        self.push_screen(HelpScreen(rows))

    def action_quit_app(self) -> None:
        """Ends the performance (asking first when edits are unsaved)."""
        if not self.editor.dirty:
            self.exit(QUIT)
            return
        names = ", ".join(self.editor.scenes[i].name for i in sorted(self.editor.dirty))
        self.push_screen(ConfirmScreen(f"Unsaved edits in: {names}. Quit anyway?"),
                         lambda yes: yes and self.exit(QUIT))

    def action_detach(self) -> None:
        """Leaves the performance playing in its engine process (``tuibend attach`` brings this back)."""
        if not self.engine.detachable:
            self.notify("this engine plays in the interface's process (--foreground): q ends it", severity="warning")
            return
        self.exit(DETACH)


def run_app(engine: Engine, args, labels: tuple[str, str], make_engine: Callable[[dict], Engine] | None,
            notices: list[str], controls: tuple = (None, None)) -> str | None:
    """Runs the interface over a prepared engine (started once the first frame is drawn) or an attached one.

    An engine in this process is stopped when the interface ends, whatever ended it. An attached one
    (:class:`~tuibend.engine.remote.RemoteEngine`) is stopped only by quitting (q); detaching (D) or a
    lost terminal leaves it playing. ``labels``: the model's and the input's names, for the status line.
    Returns how the interface ended (:data:`QUIT` or :data:`DETACH`)."""
    keymap = load_keymap(args.keys)
    midi, osc = (*controls, None, None)[:2]
    options = AppOptions(*labels, args.scenes or places.user_scenes(), args.takes, keymap, notices, make_engine,
                         midi=midi, osc=osc, outputs=tuple(control for control in controls[2:] if control))
    app = TuibendApp(engine, options)
    try:
        ending = app.run()
    finally:
        if not app.engine.detachable:  # the take finished and renamed, the log flushed
            app.engine.stop()
        for control in controls:
            if control is not None:
                control.close()
    if app.engine.detachable and ending != ENDED:
        if ending == QUIT:
            app.engine.stop()
        app.engine.close()
    if app.return_code:  # the interface died (Textual printed why) or hung up: say so to the shell
        raise SystemExit(app.return_code)
    return ending
