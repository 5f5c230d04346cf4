"""Note on to sound: how soon a key played on a MIDI keyboard is heard, through JACK.

``tuibend play --headless --input midi`` runs against the JACK dummy server (16 kHz, 256-sample periods,
started if none runs). A JACK MIDI client plays notes into tuibend's virtual port, at random moments within
a period, and a JACK client records tuibend's output; the latency of a note is the time from the moment it
was sent to the first sample of its sound (above a tenth of the note's peak). The same run measures the
floor this JACK server sets: a JACK client that answers a note with a click at once, through the same
ports. The goal is one block plus the envelope's attack above that floor.

    python bench/keyboard.py [--notes 20] [--margin 0 1]

Prints a table (milliseconds, median and 90th percentile, and the ratio to the floor).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from jack_harness import PERIOD, RATE, Harness, start_dummy_server  # noqa: E402

from tuibend.places import bundled  # noqa: E402

MODEL = bundled("models", "choir")
ATTACK_MS = 10.0
HOLD, REST = 0.3, 0.4


class Clicker:
    """The floor: a JACK client that outputs a click in the period a MIDI note on reaches it."""

    def __init__(self):
        import jack

        self.client = jack.Client("kb-floor", no_start_server=True)
        self.midi = self.client.midi_inports.register("in")
        self.out = self.client.outports.register("out")
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        buffer = self.out.get_array()
        buffer[:] = 0.0
        for offset, data in self.midi.incoming_midi_events():
            message = bytes(data)
            if len(message) == 3 and message[0] & 0xF0 == 0x90 and message[2] > 0:
                buffer[offset:] = 0.5

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def measure(harness: Harness, source: str, midi_port: str, notes: int, rng) -> np.ndarray:
    """Latencies (ms) of ``notes`` notes sent to ``midi_port`` and heard from ``source``'s first output."""
    import rtmidi

    _, outputs = harness.ports_of(source)
    for other in harness.client.get_all_connections(harness.inp):
        harness.client.disconnect(other, harness.inp)
    harness.client.connect(outputs[0], harness.inp)
    keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "kb-keys")
    try:
        deadline = time.monotonic() + 30
        while midi_port not in keys.get_ports():
            if time.monotonic() > deadline:
                raise SystemExit(f"keyboard: no MIDI port {midi_port}")
            time.sleep(0.1)
        keys.open_port(keys.get_ports().index(midi_port))
        time.sleep(0.5)
        latencies = []
        for _ in range(notes):
            time.sleep(rng.uniform(0, PERIOD / RATE))  # anywhere within a period
            sent = harness.recorded
            keys.send_message([0x90, 69, 100])
            time.sleep(HOLD)
            keys.send_message([0x80, 69, 0])
            time.sleep(REST)
            heard = np.abs(harness.recording[sent:harness.recorded])
            onset = int(np.argmax(heard > 0.1 * heard.max())) if heard.max() > 0 else len(heard)
            latencies.append(1000.0 * onset / RATE)
        return np.array(latencies)
    finally:
        keys.close_port()
        keys.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=20)
    parser.add_argument("--margin", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    import jack

    server = start_dummy_server()
    rng = np.random.default_rng(0)
    harness = Harness("kb-listener", seconds=len(args.margin) * args.notes * (HOLD + REST + 0.1) + 60)
    rows = []
    try:
        clicker = Clicker()
        floor = measure(harness, "kb-floor", "kb-floor:in", args.notes, rng)
        clicker.close()
        rows.append(("JACK floor (a click at once)", floor, None))
        for margin in args.margin:
            with tempfile.TemporaryDirectory() as folder:
                process = subprocess.Popen(
                    [sys.executable, "-m", "tuibend", "play", "--headless", "--model", str(MODEL), "--input", "midi",
                     "--midi", "virtual", "--midi-api", "jack", "--scenes", folder, "--margin", str(margin),
                     "--keyboard", f"attack={ATTACK_MS}", "--socket", str(Path(folder) / "control.sock")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                probe = jack.Client("kb-probe", no_start_server=True)
                try:
                    deadline = time.monotonic() + 180
                    while not probe.get_ports("tuibend:", is_audio=True):
                        if process.poll() is not None or time.monotonic() > deadline:
                            raise SystemExit(f"keyboard: tuibend did not start: {process.communicate()[1][-500:]}")
                        time.sleep(0.2)
                    latencies = measure(harness, "tuibend", "tuibend-midi:tuibend", args.notes, rng)
                finally:
                    probe.close()
                    process.terminate()
                    process.communicate(timeout=60)
            rows.append((f"tuibend, margin {margin}", latencies, floor))
    finally:
        harness.close()
        if server is not None:
            server.terminate()
            server.wait()
    block_ms = 1000.0 * 256 / 16000
    print(f"note on to sound through JACK (16 kHz, {PERIOD}-sample periods), {args.notes} notes; "
          f"goal: the floor + one block ({block_ms:.0f} ms) + the attack ({ATTACK_MS:.0f} ms)\n")
    print(f"| {'path':<30} | median ms | p90 ms | above the floor, median ms |")
    print(f"| {'-' * 30} | --------- | ------ | -------------------------- |")
    for label, latencies, reference in rows:
        above = "" if reference is None else f"{np.median(latencies) - np.median(reference):.1f}"
        print(f"| {label:<30} | {np.median(latencies):9.1f} | {np.percentile(latencies, 90):6.1f} | {above:>26} |")


if __name__ == "__main__":
    main()
