"""Minutes of live processing through JACK with the interface on screen and MIDI faders moving.

Run: ``python bench/soak.py`` (10 minutes by default; ``--minutes`` to change). The target is
no underrun (xrun) in 10 minutes of live processing while the interface redraws and MIDI faders
move; this drives the whole program as a performer would:

- ``tuibend play --input mic --midi virtual --midi-api jack`` runs in a tmux session (the Textual
  interface redrawing its meters and faders all along) against the JACK dummy server (16 kHz,
  256-sample periods; started here unless one runs), at 256-sample blocks, margin 1 (the default;
  ``--margin``);
- a JACK client plays the demo voice, looped, into tuibend's input and records its output;
- a JACK MIDI client moves the default map's faders (CC 20-27) every 50 ms, sweeping, and recalls
  the next scene (program change) every 30 s.

At the end it quits the interface and reads tuibend's own stats file and events log: tuibend's
ring-buffer underruns and overruns, the xruns JACK reported, the load, the MIDI changes applied,
and how loud the recorded output was. Run it alone: other work on the machine is what makes xruns.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from jack_harness import RATE, Harness, start_dummy_server  # noqa: E402

from tuibend.engine.events import read_events  # noqa: E402
from tuibend.places import bundled  # noqa: E402

DEMO = bundled("audio", "demo-voice.flac")
MODEL = bundled("models", "choir")
FADER_CCS = range(20, 28)
FADER_PERIOD = 0.05
SCENE_PERIOD = 30.0


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: timed out waiting for {what}")
        time.sleep(0.1)


def soak(minutes: float, margin: int, folder: Path) -> dict:
    import jack
    import rtmidi

    session = f"tuibend-soak-{int(time.time())}"
    stats, log = folder / "stats.json", folder / "events.jsonl"
    command = (f"cd {REPO} && {REPO / '.venv/bin/tuibend'} play --model {MODEL} --input mic --midi virtual "
               f"--midi-api jack --midi-map {folder / 'midi.toml'} --stats {stats} --log {log} --margin {margin}")
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
    probe = jack.Client("soak-probe", no_start_server=True)
    harness = midi = None
    try:
        wait_for(lambda: probe.get_ports("tuibend:", is_audio=True), 180, "tuibend's JACK ports")
        wait_for(lambda: "Chain" in tmux("capture-pane", "-p", "-t", session), 60, "the interface")
        seconds = 60.0 * minutes
        harness = Harness("soak-voice", seconds=seconds + 10)
        harness.wire("tuibend")
        voice, rate = soundfile.read(DEMO, dtype="float32")
        assert rate == RATE, f"{DEMO} is {rate} Hz"
        harness.play(np.tile(voice, int(np.ceil(seconds * RATE / len(voice))) + 1))
        midi = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "soak-faders")
        wait_for(lambda: "tuibend-midi:tuibend" in midi.get_ports(), 30, "tuibend's MIDI port")
        midi.open_port(midi.get_ports().index("tuibend-midi:tuibend"))
        started = time.monotonic()
        sent = scenes = 0
        settled = None  # tuibend's counts once the clients are wired and playing: what start-up cost
        while (elapsed := time.monotonic() - started) < seconds:
            for index, number in enumerate(FADER_CCS):
                value = int(63.5 + 63.5 * np.sin(2 * np.pi * (elapsed / (4.0 + index) + index / 8)))
                midi.send_message([0xB0, number, value])
                sent += 1
            if elapsed >= SCENE_PERIOD * (scenes + 1):
                scenes += 1
                midi.send_message([0xC0, scenes % 8])
            if settled is None and elapsed > 10.0:
                settled = json.loads(stats.read_text())
            time.sleep(FADER_PERIOD)
        screen = tmux("capture-pane", "-p", "-t", session)
        tmux("send-keys", "-t", session, "q")

        def gone() -> bool:
            return subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0

        time.sleep(1.0)
        if not gone() and "Quit anyway?" in tmux("capture-pane", "-p", "-t", session):
            tmux("send-keys", "-t", session, "y")  # the faders moved: the scene is unsaved
        wait_for(gone, 60, "tuibend to quit")
        recorded = harness.recording[:harness.recorded]
    finally:
        for client in (midi,):
            if client is not None:
                client.close_port()
                client.delete()
        if harness is not None:
            harness.close()
        probe.close()
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    result = json.loads(stats.read_text())
    applied = [event for event in read_events(log) if event.source == "midi"]
    recalled = [event for event in applied if event.target == "scene"]
    return {"seconds": seconds, "stats": result, "settled": settled or result, "midi_sent": sent,
            "midi_applied": len(applied),
            "scene_changes": f"{scenes} / {len(recalled)}", "output_rms": float(np.sqrt(np.mean(recorded[RATE:] ** 2))),
            "harness_xruns": harness.xruns, "screen": screen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--margin", type=int, choices=[0, 1, 2], default=1,
                        help="tuibend's --margin: output periods queued for safety (1, its default)")
    args = parser.parse_args()
    for tool in ("tmux", "jackd"):
        if shutil.which(tool) is None:
            raise SystemExit(f"soak: {tool} is needed (make system-test installs it)")
    server = start_dummy_server()
    try:
        with tempfile.TemporaryDirectory() as folder:
            result = soak(args.minutes, args.margin, Path(folder))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    stats = result["stats"]
    print(f"\nThe interface at the end:\n{result['screen']}")
    settled = result["settled"]
    print("| minutes | blocks | underruns | overruns | JACK xruns (after the first 10 s) "
          "| load (mean / peak of last second) "
          "| MIDI messages sent / changes logged | scene recalls sent / logged | output RMS |")
    print("| ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |")
    print(f"| {result['seconds'] / 60:g} | {stats['blocks']} | {stats['underruns']} | {stats['overruns']} | "
          f"{stats['xruns']} ({stats['xruns'] - settled['xruns']}) | {stats['load']:.2f} / {stats['load_peak']:.2f} | "
          f"{result['midi_sent']} / {result['midi_applied']} | {result['scene_changes']} | "
          f"{result['output_rms']:.3f} |")
    print(f"\n{stats['block']}-sample blocks at {stats['sample_rate']} Hz, margin {args.margin}, device "
          f"{stats['device']}, latency {stats['latency_ms']:.0f} ms as the engine reports it; the harness "
          f"client saw {result['harness_xruns']} xruns.")


if __name__ == "__main__":
    main()
