"""The panels: each renders one part of the engine's state as text, refreshed by the app's clock."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.widgets import Static

from tuibend.bend.registry import SPECS, parameter_range
from tuibend.dsp.plain import hz_to_midi
from tuibend.engine import Telemetry
from tuibend.tui.editor import SceneEditor

NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def note_name(f0_hz: float) -> str:
    if f0_hz <= 0:
        return "--"
    midi = round(hz_to_midi(f0_hz))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def level_bar(db: float, width: int = 10) -> str:
    return bar((db + 60.0) / 60.0, width)


class StatusLine(Static):
    """Model, input, rates and block size; what the engine is doing right now."""

    def show(self, model: str, source: str, engine, telemetry: Telemetry) -> None:
        device = engine.device
        text = Text()
        text.append(" tuibend ", style="bold reverse")
        text.append(f" {model} · {source} · {engine.sample_rate} Hz · block {engine.block}")
        if device is not None:
            text.append(f" · {device.name}" + (f" {device.sample_rate} Hz" if device.sample_rate != engine.sample_rate
                                               else ""))
        for flag, label, style in ((telemetry.bypass, " BYPASS ", "bold black on yellow"),
                                   (telemetry.take_s is not None, " ● REC ", "bold white on red"),
                                   (telemetry.preparing, " compiling… ", "italic"),
                                   (bool(telemetry.error), " ENGINE STOPPED ", "bold white on red")):
            if flag:
                text.append(" ")
                text.append(label, style=style)
        self.update(text)


class SceneList(Static):
    """The scene set, numbered for the digit keys; the playing one marked, unsaved ones starred."""

    def show(self, editor: SceneEditor, playing: str) -> None:
        text = Text("Scenes\n", style="bold")
        for index, scene in enumerate(editor.scenes):
            marker = "▶" if index == editor.current else " "
            star = "*" if index in editor.dirty else " "
            style = "bold reverse" if index == editor.current else ("" if scene.name != playing else "bold")
            key = str(index + 1) if index < 9 else " "
            text.append(f"{marker}{key} {scene.name[:12]:<12}{star}\n", style=style)
        self.update(text)


class ChainView(Static):
    """The current scene's chain: one row per bend, its point, transform, proportion fader and parameters."""

    def show(self, editor: SceneEditor, moving: dict[tuple[int, str], float]) -> None:
        scene = editor.scene
        text = Text(f"Chain · {scene.name} · morph {scene.morph_seconds:g} s\n", style="bold")
        if not scene.bends:
            text.append("  (no bends: the model plays unbent — press a to add one)\n", style="italic")
        focus = editor.focused()
        widest = max((sum(len(f" {name} 0.00~") for name in bend.params or SPECS[bend.transform].params)
                      for bend in scene.bends), default=0)
        bar_width = max(4, min(20, self.size.width - 2 - 23 - 6 - widest))
        for index, bend in enumerate(scene.bends):
            row_style = "reverse" if focus and focus[0] == index else ""
            text.append(f"{index + 1:>2} {bend.point:<9} {bend.transform:<9} ", style=row_style)
            for name in bend.parameter_names():
                value = moving.get((index, name), bend.value(name))
                low, high = parameter_range(bend.transform, name)
                focused = focus == (index, name)
                lane = "~" if (index, name) in scene.automation else " "
                style = "bold black on cyan" if focused else ("bold" if row_style else "")
                if name == "proportion":
                    text.append(f"{bar((value - low) / (high - low), bar_width)} {value:4.2f}{lane}", style=style)
                else:
                    text.append(f" {name} {value:.2f}{lane}", style=style)
            text.append("\n")
        self.update(text)


class LaneView(Static):
    """The focused parameter's automation lane over the next seconds, with the play head."""

    WINDOW_SECONDS = 8.0

    def show(self, editor: SceneEditor, scene_seconds: float, recording: bool) -> None:
        focus = editor.focused()
        width = max(10, self.size.width - 2)
        if focus is None:
            self.update(Text("Lane: no bend in focus", style="italic"))
            return
        lane = editor.scene.automation.get(focus)
        title = f"Lane · bend {focus[0] + 1} {focus[1]}"
        if recording:
            self.update(Text(f"{title} · ● recording live moves (r stops)", style="bold red"))
            return
        if lane is None:
            self.update(Text(f"{title} · no automation (r records one from live moves)", style="italic"))
            return
        start = max(0.0, scene_seconds - self.WINDOW_SECONDS / 4)
        times = start + np.arange(width) * self.WINDOW_SECONDS / width
        values = lane.at(times)
        low, high = parameter_range(editor.scene.bends[focus[0]].transform, focus[1])
        levels = " ▁▂▃▄▅▆▇█"
        head = int((scene_seconds - start) / self.WINDOW_SECONDS * width)
        text = Text(f"{title} · {start:.1f} to {start + self.WINDOW_SECONDS:.1f} s\n")
        for column, value in enumerate(values):
            level = levels[round(float(np.clip((value - low) / (high - low), 0, 1)) * 8)]
            text.append(level, style="bold yellow" if column == head else "cyan")
        self.update(text)


class Meters(Static):
    """Levels, pitch, loudness, load, underruns, latency and the file's transport."""

    def show(self, telemetry: Telemetry) -> None:
        t = telemetry
        text = Text()
        text.append(f"in  {level_bar(t.input_db)} {t.input_db:6.1f} dB   ")
        text.append(f"f0 {t.f0_hz:6.1f} Hz {note_name(t.f0_hz):<4} loud {t.loudness_db:6.1f} dB\n")
        text.append(f"out {level_bar(t.output_db)} {t.output_db:6.1f} dB   ")
        load_style = "bold red" if t.load_peak > 0.8 else ("yellow" if t.load > 0.5 else "")
        text.append(f"load {t.load:4.2f}/{t.load_peak:4.2f}", style=load_style)  # mean / peak of the last second
        text.append("  xruns ")  # tuibend's underruns / overruns / the audio system's own
        text.append(f"{t.underruns}/{t.overruns}/{t.xruns}", style="bold red" if t.underruns or t.overruns else "")
        text.append(f"  lat {t.latency_ms:4.1f} ms\n")
        text.append(f"gain {t.gain_db:+.0f} dB  ")
        if t.duration_s:
            state = "▶" if t.playing else "⏸"
            text.append(f"{state} {t.position_s:5.1f} / {t.duration_s:5.1f} s  ")
        if t.take_s is not None:
            text.append(f"take {t.take_s:6.1f} s  ", style="red")
        if t.guard_mutes:
            text.append(f"guard mutes {t.guard_mutes}", style="bold red")
        self.update(text)


class MidiMonitor(Static):
    """The last MIDI messages and the state of the MIDI and OSC inputs (hidden when neither is open)."""

    def show(self, midi, osc) -> None:
        self.display = midi is not None or osc is not None
        if not self.display:
            return
        text = Text()
        if midi is not None:
            learning = midi.learning
            text.append(midi.status + (f" · learning bend {learning[0] + 1} {learning[1]}" if learning else ""))
            recent = list(midi.monitor)[-3:]
            text.append("  " + "  ".join(f"{e.kind} ch{e.channel} {e.number}={e.value}" for e in recent))
        if osc is not None:
            text.append(("\n" if midi is not None else "") + osc.status)
        self.update(text)
