"""Regenerates tuibend's training audio: seeded monophonic melodies played by FluidSynth.

    python tools/make_training_audio.py midi              # writes data/midi/<instrument>/*.mid (committed)
    python tools/make_training_audio.py audio -o DIR      # renders them with the FluidR3 GM soundfont
    python tools/make_training_audio.py unseen -o DIR     # melodies no training file holds, to evaluate on

The melodies are legato, detached and staccato phrases over about two octaves with vibrato
(modulation wheel), swells (expression), velocity dynamics from pianissimo to fortissimo and rests
from a breath to several seconds, rendered dry (FluidSynth's reverb and chorus off:
the model learns its own reverb). Rendering needs Debian's ``fluidsynth`` and
``fluid-soundfont-gm`` (``apt-get install fluidsynth fluid-soundfont-gm``).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MIDI_DIR = REPO / "data" / "midi"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TICKS = 480  # per quarter note
TEMPO_US = 500000  # 120 bpm: a quarter note is 0.5 s
UNSEEN_SEED = 9999  # first seed of the melodies to evaluate on (the training files come from one generator per
# instrument, seeded by its name)

# GM program (0-based) and a two-octave MIDI range that suits the instrument.
INSTRUMENTS = {
    "choir": (52, 52, 76),  # Choir Aahs
    "voice": (53, 50, 74),  # Voice Oohs
    "flute": (73, 60, 84),
    "violin": (40, 55, 81),
}


def _variable_length(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, events: list[tuple[int, bytes]]) -> None:
    """A format-0 standard MIDI file from (absolute tick, message) pairs."""
    track = bytearray(b"\x00\xff\x51\x03" + TEMPO_US.to_bytes(3, "big"))
    now = 0
    for tick, message in sorted(events, key=lambda e: e[0]):
        track += _variable_length(tick - now) + message
        now = tick
    track += b"\x00\xff\x2f\x00"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS) + b"MTrk" + struct.pack(">I", len(track))
                     + bytes(track))


def melody(rng: np.random.Generator, program: int, low: int, high: int, seconds: float) -> list[tuple[int, bytes]]:
    """One phrase-structured melody: a random walk in a scale, with dynamics, vibrato and rests.

    Phrases are legato, detached or staccato (notes of 80-250 ms with silence between), each at its
    own dynamic level from pianissimo to fortissimo, some swelling or fading across the phrase; rests
    between phrases run from a breath to several seconds, so the model hears the instrument's real
    releases into silence, soft and loud playing, and short notes.
    """
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    root = int(rng.integers(0, 12))
    notes = sorted({n for n in range(low, high + 1) if (n - root) % 12 in scale})
    events = [(0, bytes([0xC0, program])), (0, bytes([0xB0, 7, 100])), (0, bytes([0xB0, 1, 0]))]
    tick, index = 0, len(notes) // 2
    end = int(seconds * 2 * TICKS)
    while tick < end:
        style = rng.choice(["legato", "detached", "staccato"], p=[0.45, 0.3, 0.25])
        level = rng.uniform(30, 120)  # the phrase's dynamic, pianissimo to fortissimo
        slope = rng.choice([-1.0, 0.0, 0.0, 1.0]) * rng.uniform(0, 60)  # a crescendo or a fade across it
        count = int(rng.integers(3, 9)) if style != "staccato" else int(rng.integers(4, 12))
        for number in range(count):
            index = int(np.clip(index + rng.choice([-3, -2, -1, -1, 1, 1, 2, 3, 4, -4]), 0, len(notes) - 1))
            if style == "staccato":
                length = int(TICKS * rng.choice([0.5, 0.5, 1.0]))
                sounding = int(TICKS * rng.uniform(0.16, 0.5))  # 80-250 ms at 120 bpm
            else:
                length = int(TICKS * rng.choice([0.5, 1, 1, 1.5, 2, 3, 4]))
                sounding = int(length * (1.05 if style == "legato" else rng.uniform(0.6, 0.9)))
            progress = number / max(1, count - 1) - 0.5
            velocity = int(np.clip(level + slope * progress + rng.normal(0, 6), 20, 127))
            events.append((tick, bytes([0x90, notes[index], velocity])))
            events.append((tick + sounding, bytes([0x80, notes[index], 0])))
            # Expression swell and delayed vibrato across the note.
            swell = rng.uniform(0.2, 1.0) if style != "staccato" else 0.0
            for step in range(8):
                at = tick + step * length // 8
                shape = np.sin(np.pi * (step + 0.5) / 8)
                events.append((at, bytes([0xB0, 11, int(127 * (1 - swell + swell * shape))])))
                vibrato = int(min(127, max(0, (step - 2) * rng.uniform(0, 14))))
                events.append((at, bytes([0xB0, 1, vibrato])))
            tick += length
        tick += int(TICKS * rng.choice([0.5, 1, 2, 4, 8]))  # a breath to a long rest
    events.append((end + TICKS, bytes([0xB0, 123, 0])))
    return events


def make_midi(count: int, seconds: float) -> None:
    for name, (program, low, high) in INSTRUMENTS.items():
        rng = np.random.default_rng(sum(map(ord, name)))
        for number in range(count):
            write_midi(MIDI_DIR / name / f"{name}-{number:02d}.mid", melody(rng, program, low, high, seconds))
    print(f"wrote {count} melodies for each of {', '.join(INSTRUMENTS)} under {MIDI_DIR}")


def can_render() -> bool:
    return shutil.which("fluidsynth") is not None and SOUNDFONT.exists()


def require_renderer() -> None:
    if not can_render():
        sys.exit("needs FluidSynth and the FluidR3 GM soundfont: apt-get install fluidsynth fluid-soundfont-gm")


def render(midi: Path, target: Path, sample_rate: int) -> Path:
    """One MIDI file rendered dry (no reverb, no chorus) by FluidSynth."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", str(sample_rate),
                    "-F", str(target), str(SOUNDFONT), str(midi)], check=True, capture_output=True)
    return target


def render_audio(output: Path, sample_rate: int, instruments: list[str]) -> None:
    require_renderer()
    for name in instruments:
        for midi in sorted((MIDI_DIR / name).glob("*.mid")):
            render(midi, output / name / midi.with_suffix(".wav").name, sample_rate)
        print(f"rendered {name} into {output / name}")


def unseen_midi(output: Path, instrument: str, count: int, seconds: float) -> list[Path]:
    """``count`` melodies of ``instrument`` from seeds no training file uses, as MIDI in ``output/instrument``:
    held-out material no model trained on, whatever the dataset's split."""
    program, low, high = INSTRUMENTS[instrument]
    paths = []
    for number in range(count):
        midi = output / instrument / f"{instrument}-unseen-{number:02d}.mid"
        midi.parent.mkdir(parents=True, exist_ok=True)
        write_midi(midi, melody(np.random.default_rng(UNSEEN_SEED + number), program, low, high, seconds))
        paths.append(midi)
    return paths


def render_unseen(output: Path, sample_rate: int, instrument: str, count: int, seconds: float) -> list[Path]:
    """:func:`unseen_midi`, rendered beside the MIDI files."""
    return [render(midi, midi.with_suffix(".wav"), sample_rate)
            for midi in unseen_midi(output, instrument, count, seconds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    midi = commands.add_parser("midi", help="write the seeded melodies as MIDI files")
    midi.add_argument("--count", type=int, default=24, help="melodies per instrument")
    midi.add_argument("--seconds", type=float, default=40.0, help="length of each melody")
    audio = commands.add_parser("audio", help="render the MIDI files with FluidSynth")
    audio.add_argument("-o", "--output", type=Path, required=True)
    audio.add_argument("--rate", type=int, default=16000)
    audio.add_argument("--instruments", nargs="+", default=list(INSTRUMENTS), choices=list(INSTRUMENTS))
    unseen = commands.add_parser("unseen", help="render melodies no training file holds (to evaluate on)")
    unseen.add_argument("-o", "--output", type=Path, required=True)
    unseen.add_argument("--rate", type=int, default=16000)
    unseen.add_argument("--instruments", nargs="+", default=list(INSTRUMENTS), choices=list(INSTRUMENTS))
    unseen.add_argument("--count", type=int, default=6, help="melodies per instrument")
    unseen.add_argument("--seconds", type=float, default=40.0, help="length of each melody")
    args = parser.parse_args()
    if args.command == "midi":
        make_midi(args.count, args.seconds)
    elif args.command == "audio":
        render_audio(args.output, args.rate, args.instruments)
    else:
        require_renderer()
        for name in args.instruments:
            render_unseen(args.output, args.rate, name, args.count, args.seconds)
            print(f"rendered {args.count} unseen {name} melodies into {args.output / name}")


if __name__ == "__main__":
    main()
