"""The ``tuibend`` command. Every fault a user can cause ends in one line naming it, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tuibend import __version__
from tuibend.errors import TuibendError, describe
from tuibend.places import DEFAULT_MODEL, DEMO_INPUT, PlaceError, demo_input, find_model, find_scene, takes

if TYPE_CHECKING:
    import numpy as np

    from tuibend.model.store import ModelFile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MIDI_APIS = ("coremidi", "winmm", "alsa", "jack")  # tuibend.midi.ports.API_BY_NAME, without importing rtmidi


class UserError(TuibendError):
    """A fault in what the user asked for: printed as one line, exit status 2."""


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its start-up chatter (absl, oneDNN notices) kept off the terminal.

    Those lines are written by C++ straight to file descriptor 2, so stderr is pointed
    at /dev/null for the duration of the import and of the device probe only.
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow

                tensorflow.config.list_physical_devices()  # where a GPU build finds no GPU, it says so here
            except ImportError as error:
                raise UserError(f"TensorFlow is not installed ({error}): reinstall tuibend "
                                "(`pip install tuibend`), or `pip install tensorflow`") from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_ddsp(args: argparse.Namespace) -> None:
    from tuibend.model.ddsp_import import import_ddsp

    path = import_ddsp(args.source, args.output, name=args.name, loudness=args.loudness)
    print(f"imported {args.source} -> {path}")


def _info(args: argparse.Namespace) -> None:
    from tuibend.model.layout import bend_points, point_widths
    from tuibend.model.store import read_model

    model = read_model(args.model)  # the folder's arrays, checked: no TensorFlow
    config = model.config
    n_params = sum(value.size for name, value in model.weights().items() if name != "reverb/ir")
    print(f"{config.name}: {n_params / 1e6:.2f} M decoder parameters, {config.sample_rate} Hz, "
          f"{config.frame_rate} frames/s, loudness {config.loudness}, reverb {'on' if config.reverb else 'off'}, "
          f"output gain {config.output_gain_db:+.2f} dB")
    if model.statistics.mean_pitch is not None:
        print(f"mean pitch of its training data: MIDI {model.statistics.mean_pitch:.1f}")
    widths = point_widths(config.decoder)
    print("bend points:")
    for point, description in bend_points(config.decoder).items():
        print(f"  {point:<12} {widths[point]:>5} units  {description}")


class ProgressBar:
    """A progress bar on stderr (rich's), shown only on a terminal; called with the fraction done."""

    def __init__(self, label: str, stream=sys.stderr):
        self.label = label
        self.enabled = stream.isatty()
        self._progress = self._task = None
        self._stream = stream

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn(self.label), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                                      console=Console(file=self._stream))
            self._task = self._progress.add_task(self.label, total=1.0)
            self._progress.start()
        self._progress.update(self._task, completed=fraction)
        if fraction >= 1.0:
            self._progress.stop()
            self._progress = None


def _analyze(args: argparse.Namespace) -> None:
    import numpy as np

    from tuibend.native.crepe import file_crepe
    from tuibend.pitch.files import analyze, cache_dir

    crepe = file_crepe("auto")  # the native kernel's CREPE where it loads: no TensorFlow
    if crepe is None and args.tracker.startswith("crepe-"):
        import_tensorflow_quietly()
    features = analyze(args.input, tracker=args.tracker, loudness=args.loudness, crepe_hop=args.crepe_hop,
                       use_cache=not args.no_cache, progress=ProgressBar("analysing"), crepe=crepe)
    voiced = features.confidence >= (0.8 if args.tracker == "yin" else 0.5)
    median = float(np.median(features.f0_hz[voiced])) if voiced.any() else float("nan")
    print(f"{args.input}: {len(features)} frames ({len(features) / features.frame_rate:.2f} s), "
          f"{100 * voiced.mean():.0f}% voiced, median f0 {median:.1f} Hz, "
          f"loudness {features.loudness_db.min():.1f} to {features.loudness_db.max():.1f} dB")
    if not args.no_cache:
        print(f"cached in {cache_dir()}")


def threads_text(threads: int | None) -> str:
    return f", {threads} threads" if threads and threads > 1 else ""


def _render(args: argparse.Namespace) -> None:
    import numpy.ma  # noqa: F401  numpy loads it at the first median (15 ms): here, with the rest of start-up

    from tuibend.adjust import Adjustment
    from tuibend.audiofile import check_output_format, read_audio
    from tuibend.model.layout import point_widths
    from tuibend.model.store import read_model
    from tuibend.render import draw_spectrograms, render_file, render_kernel

    check_output_format(args.output)  # before anything is loaded
    model = read_model(args.model)
    scene, statistics = None, None
    if args.scene:
        from tuibend.bend.scene import load_scene

        scene_path = find_scene(args.scene)
        scene = load_scene(scene_path).check(point_widths(model.config.decoder), scene_path)
        if any(bend.select.method != "random" for bend in scene.bends):
            statistics = model_unit_statistics(model, args.model)
    adjustment = Adjustment(octave_shift=not args.no_octave_shift, loudness_quantiles=not args.no_loudness_map,
                            pitch_shift_semitones=args.pitch_shift, loudness_shift_db=args.loudness_shift)
    if render_kernel(args.kernel) != "native":
        import_tensorflow_quietly()  # it renders: the kernel's path (analysis included) runs without it
    started = time.perf_counter()
    result = render_file(model, args.input, args.output, tracker=args.tracker, adjustment=adjustment,
                         seed=args.seed, progress=ProgressBar("rendering"), use_cache=not args.no_cache,
                         scene=scene, unit_statistics=statistics, gate=args.gate, level_match=args.level_match,
                         analysis_progress=ProgressBar("analysing"), kernel=args.kernel, bfloat16=not args.float32,
                         threads=args.threads)
    elapsed, report = time.perf_counter() - started, result.report
    seconds = len(result.audio) / model.config.sample_rate
    factor = seconds / elapsed
    print(f"wrote {args.output}: {seconds:.2f} s, peak {report['peak']:.2f}; "
          f"octave shift {report['octaves']:+d}, loudness {'mapped' if report['loudness_mapped'] else 'as is'}; "
          f"{report['kernel']} kernel ({report['layers']} layers{threads_text(report['threads'])}); "
          f"rendered in {elapsed:.3f} s "
          f"({factor:.{0 if factor >= 10 else 1}f}x real time, after start-up)")
    if args.spectrogram:
        draw_spectrograms(args.spectrogram, read_audio(args.input, model.config.sample_rate), result.audio,
                          model.config.sample_rate, (str(args.input), f"{args.output} ({model.config.name})"))
        print(f"wrote {args.spectrogram}")



def needs_tensorflow(kernel: str) -> bool:
    """Whether TensorFlow runs the chains (``--kernel``, as this machine allows); the native kernel's chains and
    its analysis need none of it. A kernel asked for and missing is the engine's error to give."""
    from tuibend.native import NativeUnavailable, choose

    try:
        return choose(kernel)[0] != "native"
    except NativeUnavailable:
        return False


# `tuibend units FOLDER` niced by the child itself (no preexec_fn: unsafe in a process with threads).
UNITS_AT_LOW_PRIORITY = ("import os, sys\nif hasattr(os, 'nice'):\n    os.nice(10)\n"
                         "from tuibend.cli import main\nsys.exit(main(['units', sys.argv[1]]))")


def model_unit_statistics(model: ModelFile, folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """A model file's unit statistics as cached, else computed from its activations by TensorFlow.

    Where TensorFlow is not loaded here (the native kernel plays), ``tuibend units`` computes and caches them in a
    child process at low priority: a live edit that first asks for them then never holds this process (and its
    audio) for the seconds TensorFlow takes to load. In this process only if the child could not cache them."""
    import subprocess

    from tuibend.bend.units import cached_unit_statistics, unit_statistics

    statistics = cached_unit_statistics(folder)
    if statistics is None and "tensorflow" not in sys.modules:
        with contextlib.suppress(OSError, subprocess.SubprocessError):  # no child, or one that hung: here, then
            subprocess.run([sys.executable, "-c", UNITS_AT_LOW_PRIORITY, str(folder)], capture_output=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
        statistics = cached_unit_statistics(folder)
    if statistics is None:
        import_tensorflow_quietly()
        statistics = unit_statistics(model.timbre_model(), folder)
    return statistics


def _configure_compute(compute: str, threads: int) -> None:
    """Where the model runs (``--compute``) and on how many CPU threads; before TensorFlow's first op."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one compiled chain per scene is by design, not a retracing fault
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if compute == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
    elif compute == "gpu" and not gpus:
        raise UserError("--compute gpu: TensorFlow sees no GPU here (use --compute auto or cpu)")


def open_engine(args: argparse.Namespace, notify=print):
    """The engine that ``play`` asks for, not yet prepared or started, with the file of each scene."""
    from tuibend.bend.scene import load_scene
    from tuibend.engine import Engine, EngineSettings
    from tuibend.engine.devices import has_audio_device
    from tuibend.engine.session import file_player, keyboard_voice, live_input, scene_set
    from tuibend.engine.sources import KeyboardSource
    from tuibend.keyboard import VoiceSettings
    from tuibend.model.layout import point_widths
    from tuibend.model.store import read_model
    from tuibend.places import scene_files

    args.model = find_model(args.model)  # the interface's model switch gives a name
    model = read_model(args.model)
    entries, problems = scene_set(model, scene_files(args.scenes))
    for problem in problems:
        notify(f"scene skipped: {problem}")
    first = None
    if args.scene:
        named = {key: index for index, (path, scene) in enumerate(entries) for key in (path.stem, scene.name)}
        if args.scene in named:
            first = entries[named[args.scene]][1]
        else:
            path = find_scene(args.scene, args.scenes)
            first = load_scene(path).check(point_widths(model.config.decoder), path)
            entries.insert(0, (path, first))
    device = args.device
    if device is None and not has_audio_device():
        if args.input == "mic":
            raise UserError("--input mic: there is no audio device here to listen to")
        device = "none"
        if args.record is None:
            args.record = args.takes / time.strftime("take-%Y%m%d-%H%M%S.wav")
        notify(f"no audio device: playing in real time, paced by the clock, into {args.record}")
    if args.input == "mic":
        if device == "none":
            raise UserError("--input mic needs an audio device (not --device none)")
        keyboard = keyboard_voice(model) if args.pitch == "midi" else None
        source = live_input(model, args.tracker, args.pitch_shift, keyboard, args.kernel, not args.float32)
    elif args.input == "midi":
        source = KeyboardSource(keyboard_voice(model), model.config.hop)
    else:
        source = file_player(model, args.input, args.tracker, loop=not args.once, kernel=args.kernel)
    settings = EngineSettings(block=args.block, device=device, record=args.record, stats=args.stats, log=args.log,
                              margin_periods=args.margin, gain_db=args.gain, kernel=args.kernel,
                              bfloat16=not args.float32, gate=args.gate, keyboard=args.keyboard or VoiceSettings(),
                              # a keyboard has no level of its own to match: its velocities are the model's
                              level_match=args.level_match and args.input != "midi")
    return Engine(model, source, [scene for _, scene in entries], settings, scene=first,
                  units_provider=lambda: model_unit_statistics(model, args.model),
                  scene_paths=[path for path, _ in entries])


def open_controls(args: argparse.Namespace, engine) -> tuple:
    """MIDI input, OSC server, OSC telemetry and MIDI out as the flags ask (None where not asked). Made before
    the engine starts: creating a MIDI client holds the interpreter for ~30 ms, too long once audio runs."""
    midi = osc = osc_out = midi_out = None
    if engine.keyboard is not None and args.midi is None:
        args.midi = "all"  # a keyboard plays from every port there is, and any plugged in later
    if args.midi is not None or args.osc is not None:
        from tuibend.midi import MidiInput, OscServer, default_map, default_map_path, load_mappings
        from tuibend.midi.mapfile import mappings_from_tables

        overrides = {scene.name: mappings_from_tables(scene.midi, f"{path or scene.name}: midi.map")
                     for scene, path in zip(engine.scenes, engine.scene_paths, strict=True) if scene.midi}
    if args.midi is not None:
        from tuibend.midi.ports import apis_to_try

        apis = apis_to_try(args.midi_api)
        port = None if args.midi == "virtual" else args.midi
        # A map file not written yet starts as the default map; what is learned is saved there.
        mappings = default_map() if args.midi_map and not args.midi_map.exists() else load_mappings(args.midi_map)
        for index, api in enumerate(apis):
            try:
                midi = MidiInput(engine, port, api, mappings, overrides, save_to=args.midi_map or default_map_path(),
                                 keyboard=engine.keyboard)
                break
            except ValueError:
                if index == len(apis) - 1:
                    raise
    if args.osc is not None:
        osc = OscServer(engine, *args.osc)
    if args.osc_out is not None:
        from tuibend.midi import OscTelemetry

        osc_out = OscTelemetry(engine, *args.osc_out)
    if args.midi_out is not None:
        from tuibend.midi import PitchOut
        from tuibend.midi.ports import apis_to_try

        port = None if args.midi_out == "virtual" else args.midi_out
        faders = None
        if args.midi_out_faders:  # the input's map (what its controls move), else the default fader bank
            from tuibend.midi import Router, default_map

            faders = midi.router if midi is not None else Router(engine, default_map(), source="midi-out")
        midi_out = PitchOut(engine, port, apis_to_try(args.midi_api)[0], threshold=args.midi_out_confidence,
                            faders=faders)
    return midi, osc, osc_out, midi_out


def _interrupt(signum, frame) -> None:
    """SIGTERM and SIGHUP (a dropped SSH connection) end a headless performance as Ctrl-C does: the
    take and the logs are finalised; a second signal (a supervisor that sends SIGHUP then SIGTERM)
    must not interrupt that."""
    _ignore_stop_signals()
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)


def kernel_label(engine) -> str:
    """What runs the blocks, for the report: the native kernel's build and precision, or TensorFlow."""
    if engine.kernel != "native":
        return f"{engine.kernel} kernel"
    from tuibend.native import library

    lib = library()
    stream = engine.chain_stream
    layers = ("bfloat16 layers in AMX tiles" if lib.amx else "bfloat16 layers") if stream.bfloat16 else "float32 layers"
    recurrence = ", 8-bit recurrence" if stream.int8 else ""
    return f"native kernel ({lib.build} build, {layers}{recurrence})"


def progress_lines(stream=sys.stderr):
    """``say`` for a headless start: one line a step; a step that rewrites its line (``replace``) does so
    on a terminal and is left out of a log."""
    rewriting = False

    def say(text: str, replace: bool = False) -> None:
        nonlocal rewriting
        if replace and not stream.isatty():
            return
        if replace:
            print(f"\rtuibend: {text}", end="", file=stream, flush=True)
        else:
            print(("\n" if rewriting else "") + f"tuibend: {text}", file=stream, flush=True)
        rewriting = replace

    return say


def prepared_engine(args: argparse.Namespace, notify, say) -> object:
    """TensorFlow, the model, the scenes and the kernel, loaded and prepared (``say`` reports each step)."""
    from tuibend.engine.take import recover_takes

    for line in recover_takes(args.takes):  # takes a crash or a power cut left unfinished
        notify(line)
    if needs_tensorflow(args.kernel) or args.compute == "gpu":
        say("loading TensorFlow")
        import_tensorflow_quietly()
        _configure_compute(args.compute, args.threads)
    say(f"loading the model {Path(args.model).name} and the scenes")
    engine = open_engine(args, notify)
    say(f"compiling the scenes' chains for the {engine.kernel} kernel")
    engine.prepare(lambda done, total: say(f"compiling the scenes' chains for the {engine.kernel} kernel "
                                           f"{done}/{total}", replace=True))
    say(f"ready: {len(engine.scenes)} scenes")
    for skipped in engine.skipped:
        notify(skipped)
    return engine


def _make_engine(args: argparse.Namespace, notify):
    """How a performance opens another engine: the same flags with the model or the input changed."""
    return lambda changes: open_engine(argparse.Namespace(**{**vars(args), **changes}), notify)


def _labels(args: argparse.Namespace) -> tuple[str, str]:
    from tuibend.engine.performance import source_label

    return Path(args.model).name, source_label(args.input)


def _socket(args: argparse.Namespace) -> Path:
    from tuibend.engine.server import socket_path

    return args.socket or socket_path()


ALREADY_PLAYING = "a performance is already playing: `tuibend attach` shows it, `tuibend stop` ends it"


def _check_inputs(args: argparse.Namespace) -> None:
    """The mixed inputs: the keyboard's notes with the voice's loudness, asked for either way round."""
    if args.loudness == "mic":
        if args.input != "midi":
            raise UserError("--loudness mic goes with --input midi (or say --input mic --pitch midi)")
        args.input, args.pitch = "mic", "midi"
    if args.pitch == "midi" and args.input != "mic":
        raise UserError("--pitch midi goes with --input mic (the keyboard gives the pitch, the voice the loudness)")


def _play(args: argparse.Namespace) -> None:
    """By default the engine plays in a process of its own and the interface attaches to it, so a lost
    terminal never stops the sound; --foreground keeps both in this process, --headless has no interface.
    Engine faults (a device that fails to open) reach main() as EngineError: one line."""
    _check_inputs(args)
    if args.headless:
        _serve(args)
    elif args.foreground:
        _play_here(args)
    else:
        _play_apart(args)


def _play_here(args: argparse.Namespace) -> None:
    from tuibend.tui.loading import load_with_screen

    notices: list[str] = []
    engine = load_with_screen(f"tuibend {__version__}: {Path(args.model).name}",
                              lambda say: prepared_engine(args, notices.append, say))
    from tuibend.tui.app import run_app

    run_app(engine, args, _labels(args), _make_engine(args, notices.append), notices, open_controls(args, engine))


def _play_apart(args: argparse.Namespace) -> None:
    from tuibend.engine.launch import engine_log, start_engine_process, wait_until_ready
    from tuibend.engine.server import playing
    from tuibend.tui.loading import load_with_screen

    socket = _socket(args)
    if playing(socket):
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UserError(ALREADY_PLAYING)
        answer = input("tuibend: a performance is already playing. Attach to it? [Y/n] ").strip().lower()
        if answer not in ("", "y", "yes"):
            raise UserError(ALREADY_PLAYING)
        _attach_interface(args, socket)
        return
    log_path = engine_log(socket)
    process = start_engine_process(args.argv, log_path)
    try:
        load_with_screen(f"tuibend {__version__}: {Path(args.model).name}",
                         lambda say: wait_until_ready(process, socket, log_path, say) or True)
    except KeyboardInterrupt:  # the performer quit while it loaded: the engine goes too
        process.terminate()
        raise
    _attach_interface(args, socket)


def _attach_interface(args: argparse.Namespace, socket: Path) -> None:
    from tuibend.engine.remote import RemoteEngine
    from tuibend.tui.app import DETACH, ENDED, run_app

    engine = RemoteEngine(socket)
    ending = run_app(engine, args, engine.labels, None, [])
    if ending == DETACH:
        print("tuibend: detached; the performance plays on (`tuibend attach` brings it back, `tuibend stop` "
              "ends it)", file=sys.stderr)
    elif ending == ENDED:
        print(f"tuibend: the performance ended ({engine.ended})", file=sys.stderr)


def _attach(args: argparse.Namespace) -> None:
    _attach_interface(args, _socket(args))


def _stop(args: argparse.Namespace) -> None:
    from tuibend.engine.remote import RemoteEngine

    engine = RemoteEngine(_socket(args))
    take, seconds = engine.take_path, engine.telemetry.time_s
    engine.stop()
    print(f"stopped the performance after {seconds:.1f} s" + (f"; take {take}" if take else ""))


def _status(args: argparse.Namespace) -> None:
    from tuibend.engine.remote import RemoteEngine

    engine = RemoteEngine(_socket(args))
    engine.close()
    model, source = engine.labels
    report = engine.telemetry
    device = engine.device
    print(f"playing {model} from {source}: scene {report.scene!r}, {report.time_s:.1f} s"
          + (" (bypass)" if report.bypass else ""))
    print(f"output {report.output_db:.0f} dBFS, load {report.load:.2f} (peak {report.load_peak:.2f}), "
          f"{report.underruns} underruns, {report.xruns} xruns, {report.guard_mutes} guard mutes")
    print(f"device {device.name if device else 'none'}, {engine.sample_rate} Hz, {engine.block}-sample blocks")
    print(f"take {engine.take_path} ({report.take_s:.1f} s)" if engine.take_path else "no take recording")
    if report.error:
        print(f"engine stopped: {report.error}")


def _serve(args: argparse.Namespace) -> None:
    """The performance with no interface of its own: it plays, and serves the control socket (interfaces
    attach to it) until --duration, the end of a --once file, `tuibend stop`, Ctrl-C, SIGTERM or SIGHUP."""
    from tuibend.engine.performance import Performance
    from tuibend.engine.server import ControlServer, playing

    socket = _socket(args)
    if playing(socket):
        raise UserError(ALREADY_PLAYING)
    notices: list[str] = []

    def notify(text: str) -> None:
        notices.append(text)
        print(f"tuibend: {text}", file=sys.stderr)

    engine = prepared_engine(args, notify, progress_lines())
    engine.set_bypass(args.bypass, "command line")
    if args.replay:
        from tuibend.engine.events import read_events

        engine.replay(read_events(args.replay))
    controls = open_controls(args, engine)
    for control in controls:
        if control is not None:
            print(f"tuibend: {control.status}", file=sys.stderr)
    performance = Performance(engine, _labels(args), _make_engine(args, notify), controls, notices)
    engine.start()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    server = None
    started = time.monotonic()
    reported = None
    try:
        server = ControlServer(performance, socket)
        print(f"tuibend: playing; control socket {socket}", file=sys.stderr)
        while args.duration is None or time.monotonic() - started < args.duration:
            time.sleep(0.05)
            engine = performance.engine
            if engine.notice != reported:
                reported = engine.notice
                print(f"tuibend: {reported}", file=sys.stderr)
            if engine.error or performance.ended.is_set() or (args.once and not engine.telemetry.playing):
                break
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_stop_signals()
        performance.stop()
        if server is not None:
            server.close()  # after the stop: a `tuibend stop` waiting on the socket sees the take finished
    engine = performance.engine
    report = engine.telemetry
    print(f"played {report.time_s:.2f} s on {engine.device.name} at {engine.device.sample_rate} Hz, "
          f"{args.block}-sample blocks, {kernel_label(engine)}: load {report.load:.2f} (peak {report.load_peak:.2f}), "
          f"{report.underruns} underruns, {report.overruns} overruns, {report.xruns} xruns, "
          f"{report.guard_mutes} guard mutes, "
          f"latency {report.latency_ms:.1f} ms" + (f"; take {args.record}" if args.record else ""))
    if engine.error:
        raise UserError(f"the engine stopped: {engine.error}")


def _dataset(args: argparse.Namespace) -> None:
    from tuibend.training.dataset import build_dataset

    manifest = build_dataset(args.audio, args.output, tracker=args.tracker, holdout=args.holdout, seed=args.seed,
                             noise_floors=args.noise_floors, progress=ProgressBar("analysing"))
    examples = manifest["examples"]
    print(f"wrote {args.output}: {examples['train']} training and {examples['holdout']} held-out examples "
          f"of 4 s (pitch by {manifest['tracker']})")


def _train(args: argparse.Namespace) -> None:
    from tuibend.training.trainer import TrainingConfig, train

    config = TrainingConfig(size=args.size, steps=args.steps, batch_size=args.batch_size,
                            learning_rate=args.learning_rate, checkpoint_every=args.checkpoint_every,
                            eval_every=args.eval_every, seed=args.seed, jit=args.xla, precision=args.precision)
    bar = ProgressBar("training")

    def report(step: int, loss: float, rate: float) -> None:
        if bar.enabled:
            remaining = (config.steps - step) / max(rate, 1e-9)
            sys.stderr.write(f"\rstep {step}/{config.steps}  loss {loss:.3f}  {rate:.2f} steps/s  "
                             f"ETA {remaining / 60:.0f} min   ")
            sys.stderr.flush()
        elif step % config.checkpoint_every == 0:
            print(f"step {step}/{config.steps}  loss {loss:.3f}  {rate:.2f} steps/s", flush=True)

    try:
        log = train(args.data, args.output, config, report)
    except KeyboardInterrupt:
        print(f"\nstopped; a checkpoint is saved in {args.output}/training: run the same command to resume")
        raise
    holdout = log.holdout_losses[-1] if log.holdout_losses else float("nan")
    print(f"\nwrote {args.output}: held-out loss {holdout:.3f} after {log.steps[-1]} steps")


def _evaluate(args: argparse.Namespace) -> None:
    from tuibend.model.store import load_model
    from tuibend.render import draw_spectrograms
    from tuibend.training.evaluate import LOUDNESS_BAR_DB, PITCH_BAR_CENTS, evaluate_model

    model = load_model(args.model)
    evaluation, reference, rendered = evaluate_model(model, args.data, args.split, args.tracker, args.examples)
    verdict = "meets" if evaluation.good_enough else "misses"
    print(f"{args.model} on {evaluation.examples} {args.split} examples: pitch error {evaluation.pitch_error_cents:.1f}"
          f" cents (bar {PITCH_BAR_CENTS:.0f}), loudness error {evaluation.loudness_error_db:.1f} dB "
          f"(bar {LOUDNESS_BAR_DB:.0f}): {verdict} the bar; the output's level {evaluation.loudness_offset_db:+.1f} dB "
          f"from the input's, its dynamics {evaluation.dynamics_error_db:.1f} dB around that; loss (the training "
          f"loss) {evaluation.loss:.3f}")
    if args.spectrogram:
        draw_spectrograms(args.spectrogram, reference, rendered, model.config.sample_rate,
                          ("held-out input", f"resynthesis by {model.config.name}"))
        print(f"wrote {args.spectrogram}")


def _calibrate(args: argparse.Namespace) -> None:
    from tuibend.model.store import load_model, write_config
    from tuibend.training.evaluate import calibrated_config

    model = load_model(args.model)
    config, evaluation = calibrated_config(model, args.data, args.examples, args.tracker)
    print(f"{args.model} on {evaluation.examples} training examples: level {evaluation.loudness_offset_db:+.2f} dB "
          f"from the input's; output gain {model.config.output_gain_db:+.2f} -> {config.output_gain_db:+.2f} dB")
    print(f"wrote {write_config(args.model, config)}")


def _units(args: argparse.Namespace) -> None:
    import numpy as np

    from tuibend.bend.units import UNITS_FILE, unit_statistics
    from tuibend.model.store import load_model

    model = load_model(args.model)
    statistics = unit_statistics(model, args.model)
    print(f"unit statistics of {args.model} (cached in {args.model}/{UNITS_FILE}):")
    for point in model.bend_points:
        variance = statistics[f"{point}/variance"]
        strongest = {name: float(np.max(np.abs(statistics[f"{point}/correlation/{name}"])))
                     for name in ("loudness", "pitch", "centroid")}
        print(f"  {point:<10} {len(variance):>5} units, {int(np.sum(variance > 1e-6)):>5} active; strongest |r| "
              + ", ".join(f"{name} {value:.2f}" for name, value in strongest.items()))


def _models(args: argparse.Namespace) -> None:
    import json

    from tuibend.model.config import ModelConfig, ModelFormatError
    from tuibend.places import is_bundled, model_folders

    if args.folder is not None:
        if not args.folder.is_dir():
            raise UserError(f"{args.folder}: no such folder")
        found = {folder.name: folder for folder in sorted(args.folder.iterdir()) if (folder / "config.json").exists()}
    else:
        found = model_folders()
    rows = []
    for name, folder in found.items():
        where = "bundled" if is_bundled(folder) else str(folder)
        try:
            config = ModelConfig.read(folder / "config.json")
        except ModelFormatError as error:
            rows.append(f"{name:<16} unreadable: {error}")
            continue
        try:
            summary = json.loads((folder / "training.json").read_text())
        except (OSError, json.JSONDecodeError):
            summary = {}
        size = sum(p.stat().st_size for p in folder.glob("*.npz")) / 1e6
        trained = config.source.get("importer", "tuibend train") if config.source else "unknown"
        holdout = summary.get("holdout_loss")
        loss = f"  held-out loss {holdout:.3f}" if holdout is not None else ""
        rows.append(f"{name:<16} {size:5.1f} MB  {config.sample_rate} Hz  trained by {trained:<14}{loss}  {where}")
    print("\n".join(rows) if rows else f"no models in {args.folder}")


def _scenes(args: argparse.Namespace) -> None:
    """Every scene with its bends, each file checked (against no model: points are checked on loading)."""
    from tuibend.bend.scene import SceneError, load_scene
    from tuibend.places import is_bundled, scene_files

    faults = 0
    for path in scene_files(args.folder):
        where = "bundled" if is_bundled(path) else str(path)
        try:
            scene = load_scene(path)
        except SceneError as error:
            faults += 1
            print(f"{path.stem:<16} unusable: {error}")
            continue
        chain = " > ".join(f"{bend.transform}@{bend.point}" for bend in scene.bends) or "no bends"
        print(f"{path.stem:<16} {chain}  {where}")
    if faults:
        raise UserError(f"{faults} scene file{'s' if faults > 1 else ''} cannot be used (see above)")


def _check(args: argparse.Namespace) -> None:
    """Scene files checked against a model's configuration, as the engine checks them, without TensorFlow."""
    from tuibend.bend.scene import SceneError, load_scene
    from tuibend.midi.errors import MidiError
    from tuibend.midi.mapfile import mappings_from_tables
    from tuibend.model.config import ModelConfig
    from tuibend.model.layout import point_widths

    widths = point_widths(ModelConfig.read(Path(args.model) / "config.json").decoder)
    faults = 0
    for spec in args.scenes:
        try:
            path = find_scene(spec)
            scene = load_scene(path).check(widths, path)
            mappings_from_tables(scene.midi, f"{path}: midi.map")
        except (SceneError, PlaceError, MidiError) as error:
            faults += 1
            print(f"{spec}: {error}" if str(spec) not in str(error) else str(error))
            continue
        count = len(scene.bends)
        print(f"{path}: ok for {Path(args.model).name} ({count} bend{'' if count == 1 else 's'})")
    if faults:
        raise UserError(f"{faults} of {len(args.scenes)} scene{'s' if len(args.scenes) > 1 else ''} cannot be played "
                        f"on {Path(args.model).name}")


def _takes(args: argparse.Namespace) -> None:
    """The takes recorded, each with its length; --recover makes orphaned .part files whole."""
    import soundfile

    from tuibend.engine.take import recover_takes

    folder = args.folder or takes()
    if args.folder is not None and not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    for line in recover_takes(folder) if args.recover else []:
        print(line)
    rows = []
    for path in sorted(folder.glob("*.wav*")) if folder.is_dir() else []:
        if path.name.endswith(".part"):
            rows.append(f"{path.name:<40} unfinished: `tuibend takes --recover` makes it whole")
            continue
        try:
            rows.append(f"{path.name:<40} {soundfile.info(str(path)).duration:8.1f} s")
        except RuntimeError as error:  # libsndfile cannot read it
            rows.append(f"{path.name:<40} unreadable ({error})")
    print("\n".join(rows) if rows else f"no takes in {folder}")


def _paths(args: argparse.Namespace) -> None:
    from tuibend.places import folders

    for name, folder in folders().items():
        print(f"{name:<8} {folder}")


def _noise_floors(text: str) -> tuple[float | None, ...]:
    """'none,-70,-60' -> (None, -70.0, -60.0): floors in dBFS, each below 0."""
    floors: list[float | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            floors.append(None if item == "none" else float(item))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not a level in dBFS or 'none'") from None
        if floors[-1] is not None and not -120.0 <= floors[-1] < 0.0:
            raise argparse.ArgumentTypeError(f"{item} dBFS: a noise floor lies between -120 and 0 dBFS")
    return tuple(floors)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuibend", description="A terminal instrument for bent DDSP timbre models.")
    parser.add_argument("--version", action="version", version=f"tuibend {__version__}")
    parser.set_defaults(tensorflow=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    importer = commands.add_parser("import-ddsp", help="convert a magenta-ddsp model folder into a tuibend model")
    importer.add_argument("source", help="folder with ckpt-N.*, operative_config-*.gin, dataset_statistics.pkl")
    importer.add_argument("-o", "--output", required=True, help="the tuibend model folder to write")
    importer.add_argument("--name", help="model name (default: the source folder's name)")
    importer.add_argument("--loudness", choices=["v1", "v3"],
                          help="loudness flavour the model was trained with (default: guessed from the gin)")
    importer.set_defaults(handler=_import_ddsp)

    analyze = commands.add_parser("analyze", help="compute and cache f0, confidence and loudness of a file")
    analyze.add_argument("input", help="an audio file (any rate, any channels)")
    _analysis_options(analyze)
    analyze.add_argument("--loudness", choices=["v3", "v1"], default="v3", help="loudness flavour (default v3)")
    analyze.add_argument("--crepe-hop", type=positive_int, default=160,
                         help="samples between CREPE estimates (default 160)")
    analyze.set_defaults(handler=_analyze, tensorflow=False)  # the kernel's CREPE analyses without it

    render = commands.add_parser("render", help="resynthesise a file with a model (the offline workflow)")
    render.add_argument("input", help="an audio file (any rate, any channels)")
    render.add_argument("-o", "--output", required=True, help="the audio file to write")
    render.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"a model name or folder (default {DEFAULT_MODEL}; `tuibend models` lists them)")
    _analysis_options(render)
    render.add_argument("--no-octave-shift", action="store_true", help="keep the input's register")
    render.add_argument("--no-loudness-map", action="store_true", help="keep the input's loudness distribution")
    render.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES")
    render.add_argument("--loudness-shift", type=float, default=0.0, metavar="DB")
    render.add_argument("--seed", type=int, default=0, help="seed of the noise synth")
    render.add_argument("--scene", help="a scene name or file (`tuibend scenes` lists them): its bends and automation")
    render.add_argument("--spectrogram", metavar="PNG", help="also draw input and output spectrograms")
    render.add_argument("--kernel", choices=["auto", "native", "tensorflow"], default="auto",
                        help="what renders: the native kernel (many times faster), TensorFlow's stream (the "
                             "reference), or auto: native where it loads (default)")
    render.add_argument("--float32", action="store_true",
                        help="the native kernel in float32 throughout (by default its layers run in bfloat16 where "
                             "the CPU has AVX512-BF16, as the engine plays them: about twice as fast, 0.3-0.7 %% "
                             "RMS off float32; the GRU's recurrence in 8 bits where it has VNNI but no AMX)")
    render.add_argument("--threads", type=positive_int, default=None,
                        help="threads the native kernel's analysis and blocks share (default: every core this "
                             "process may use; the same output whatever the count)")
    _dynamics_options(render)
    render.set_defaults(handler=_render, tensorflow=False)  # loaded only where it is needed

    play = commands.add_parser("play", help="perform: the terminal instrument (or --headless)")
    play.add_argument("--model", default=DEFAULT_MODEL,
                      help=f"a model name or folder (default {DEFAULT_MODEL}; `tuibend models` lists them)")
    play.add_argument("--input", default=str(demo_input()),
                      help=f"mic, midi (a keyboard on --midi's port), or an audio file (default: {DEMO_INPUT})")
    play.add_argument("--pitch", choices=["input", "midi"], default="input",
                      help="with --input mic: midi takes the pitch from a keyboard's notes, the voice's loudness "
                           "(sing the rhythm and the breath, play the notes)")
    play.add_argument("--loudness", choices=["input", "mic"], default="input",
                      help="with --input midi: mic takes the loudness from the voice (as --input mic --pitch midi)")
    play.add_argument("--keyboard", type=_keyboard, metavar="NAME=VALUE,...",
                      help="how a keyboard plays: attack, decay, release, glide, delay (ms), sustain (dB under "
                           "the peak), bend (semitones), vibrato (Hz), depth (cents at the mod wheel's top), cc "
                           "(a breath or expression controller that sets the level), e.g. attack=5,release=300,cc=2")
    play.add_argument("--scenes", type=Path, metavar="FOLDER",
                      help="recall the scene files of this folder alone (default: the bundled scenes and yours)")
    play.add_argument("--scene", help="the scene to start with: a scene name or a scene file")
    play.add_argument("--device", help="audio device name or number (default: the system's; 'none': no device)")
    play.add_argument("--block", type=positive_int, default=256, help="samples per block: 64 to 1024 (default 256)")
    play.add_argument("--tracker", choices=["crepe-tiny", "crepe-full", "yin"], default="crepe-tiny")
    play.add_argument("--margin", type=int, choices=[0, 1, 2], default=1,
                      help="live input and a keyboard: device periods queued as a safety margin (default 1; 0: "
                           "lowest latency, one period less)")
    play.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES", help="live input only")
    play.add_argument("--once", action="store_true", help="play the file once instead of looping it")
    play.add_argument("--bypass", action="store_true", help="start in bypass (the dry input is heard)")
    play.add_argument("--gain", type=float, default=0.0, metavar="DB", help="output gain before the limiter")
    _dynamics_options(play)
    play.add_argument("--compute", choices=["auto", "cpu", "gpu"], default="auto")
    play.add_argument("--kernel", choices=["auto", "native", "tensorflow"], default="auto",
                      help="what runs a block: the native C kernel (the package's build for this CPU), "
                           "TensorFlow's compiled step, or auto: native unless it cannot load here (default)")
    play.add_argument("--float32", action="store_true",
                      help="the native kernel in float32 throughout (by default its layers run in bfloat16 where "
                           "the CPU has AVX512-BF16: about twice as fast, 0.3-0.7 %% RMS off float32, the GRU's "
                           "recurrence in 8 bits where it has VNNI but no AMX; and so does a microphone's CREPE, in "
                           "AMX tiles where the CPU has those, elsewhere with its heaviest layers in 8 bits where it "
                           "has VNNI)")
    play.add_argument("--threads", type=positive_int, default=1, help="CPU threads for the model (default 1)")
    play.add_argument("--headless", action="store_true",
                      help="no interface of its own (installations, scripts, tests); `tuibend attach` shows one")
    play.add_argument("--foreground", action="store_true",
                      help="the engine in the interface's process: closing the terminal ends the performance "
                           "(by default the engine plays on in a process of its own)")
    _socket_option(play)
    play.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)")
    play.add_argument("--record", type=Path, metavar="TAKE.wav", help="record the output as it plays")
    play.add_argument("--takes", type=Path, default=takes(), metavar="FOLDER",
                      help="where takes are recorded (default: your takes folder, see `tuibend paths`)")
    play.add_argument("--keys", type=Path, metavar="TOML", help="key remapping (default: keys.toml in your config "
                      "folder)")
    play.add_argument("--stats", type=Path, metavar="JSON", help="write the telemetry here each second")
    play.add_argument("--log", type=Path, metavar="JSONL", help="write every applied control change here")
    play.add_argument("--replay", type=Path, metavar="JSONL", help="play back a logged performance's changes")
    play.add_argument("--midi", metavar="PORT|all|virtual",
                      help="MIDI input: a port (name or part of it), all ports, or a virtual port 'tuibend'")
    play.add_argument("--midi-api", choices=["auto", *MIDI_APIS], default="auto",
                      help="MIDI system (default: the system's own: CoreMIDI, Windows MM, ALSA, else JACK)")
    play.add_argument("--midi-map", type=Path, metavar="TOML",
                      help="MIDI mappings (default: midi.toml in your config folder; learned mappings are saved there)")
    play.add_argument("--osc", metavar="[HOST:]PORT", type=_osc_address,
                      help="listen for OSC (on 127.0.0.1 unless HOST is given)")
    play.add_argument("--midi-out", metavar="PORT|virtual",
                      help="send the pitch of what you play as MIDI notes (pitch bend for the cents) to a port, or "
                           "to a virtual port tuibend-midi-out:tuibend-out")
    play.add_argument("--midi-out-confidence", type=float, default=0.5, metavar="0..1",
                      help="the pitch tracker's confidence a note needs to be sent (default 0.5)")
    play.add_argument("--midi-out-faders", action="store_true",
                      help="with --midi-out: send the faders' values too, as the CCs of the MIDI map that moves them "
                           "(motorised faders, controller displays)")
    play.add_argument("--osc-out", metavar="[HOST:]PORT", type=_osc_address,
                      help="send the scene, faders, levels and pitch as OSC, ten times a second, to this port (on "
                           "127.0.0.1 unless HOST is given): a controller's displays, motorised faders")
    play.set_defaults(handler=_play, tensorflow=False)  # imported under the loading screen

    attach = commands.add_parser("attach", help="show the interface of the performance playing (from any terminal)")
    attach.add_argument("--keys", type=Path, metavar="TOML", help="key remapping (default: keys.toml in your config "
                        "folder)")
    attach.add_argument("--takes", type=Path, default=takes(), metavar="FOLDER", help="where takes are recorded")
    _socket_option(attach)
    attach.set_defaults(handler=_attach, tensorflow=False, scenes=None)
    stop = commands.add_parser("stop", help="end the performance playing: the take finished, the log flushed")
    _socket_option(stop)
    stop.set_defaults(handler=_stop, tensorflow=False)
    status = commands.add_parser("status", help="what the performance playing is doing")
    _socket_option(status)
    status.set_defaults(handler=_status, tensorflow=False)

    dataset = commands.add_parser("dataset", help="analyse recordings into a training dataset")
    dataset.add_argument("audio", nargs="+", help="audio files or folders of them")
    dataset.add_argument("-o", "--output", required=True, help="the dataset folder to write")
    dataset.add_argument("--tracker", choices=["crepe-full", "crepe-tiny", "yin"],
                         help="pitch tracker (default: CREPE full where installed, else tiny)")
    dataset.add_argument("--holdout", type=float, default=0.1, help="share of 20 s chunks held out (default 0.1)")
    dataset.add_argument("--seed", type=int, default=0)
    dataset.add_argument("--noise-floors", type=_noise_floors, default="none,-70,-60,-50", metavar="DB,...",
                         help="noise floors (dBFS) mixed into the analysis of successive recordings, the target "
                              "kept clean; 'none' for a clean one (default: none,-70,-60,-50)")
    dataset.set_defaults(handler=_dataset)

    trainer = commands.add_parser(
        "train", help="train a model on a dataset (resumes when interrupted)",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=textwrap.dedent("""\
            several machines: set TF_CONFIG (as Kubernetes operators and Slurm scripts do) and run the
            same command on each; the chief (worker 0) writes the model, the global batch is shared out:

              host1$ TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
                                 "task": {"type": "worker", "index": 0}}' tuibend train DATA -o mymodel
              host2$ TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
                                 "task": {"type": "worker", "index": 1}}' tuibend train DATA -o mymodel

            DATA may be a folder on each machine or one they all read (gs://bucket/data). If a worker is
            lost, the others stop: start the same command on every worker to resume."""))
    trainer.add_argument("data", help="a dataset folder from `tuibend dataset`")
    trainer.add_argument("-o", "--output", type=Path, required=True,
                         help="the model folder to write (in your models folder, `tuibend paths`, it plays by name)")
    trainer.add_argument("--size", choices=["small", "solo"], default="small")
    trainer.add_argument("--steps", type=positive_int, default=30000)
    trainer.add_argument("--batch-size", type=positive_int, default=16)
    trainer.add_argument("--learning-rate", type=float, default=3e-4)
    trainer.add_argument("--checkpoint-every", type=positive_int, default=100)
    trainer.add_argument("--eval-every", type=positive_int, default=500)
    trainer.add_argument("--seed", type=int, default=0)
    trainer.add_argument("--no-xla", dest="xla", action="store_false",
                         help="run the step op by op instead of compiling it with XLA")
    trainer.add_argument("--precision", choices=["float32", "mixed"], default="float32",
                         help="mixed: the decoder's dense products in bfloat16 (GPUs from Ampere on, CPUs with "
                              "AMX or AVX512-BF16), weights, recurrence, synths and loss in float32")
    trainer.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="measure a model's resynthesis of held-out audio")
    evaluate.add_argument("model", help="a model name or folder")
    evaluate.add_argument("data", help="a dataset folder from `tuibend dataset`")
    evaluate.add_argument("--split", choices=["holdout", "train"], default="holdout")
    evaluate.add_argument("--tracker", choices=["crepe-tiny", "crepe-full", "yin"], default="crepe-tiny")
    evaluate.add_argument("--examples", type=positive_int, default=16, help="at most this many examples (default 16)")
    evaluate.add_argument("--spectrogram", metavar="PNG", help="input and resynthesis of the first example")
    evaluate.set_defaults(handler=_evaluate)

    calibrate = commands.add_parser("calibrate", help="set a trained model's output level from its training data")
    calibrate.add_argument("model", help="a model name or folder (its config.json is rewritten)")
    calibrate.add_argument("data", help="the dataset folder it trained on (`tuibend dataset`)")
    calibrate.add_argument("--tracker", choices=["crepe-tiny", "crepe-full", "yin"], default="crepe-tiny")
    calibrate.add_argument("--examples", type=positive_int, default=48,
                           help="examples spread over the training split (default 48)")
    calibrate.set_defaults(handler=_calibrate)

    units = commands.add_parser("units", help="compute (and cache) a model's unit statistics for informed selection")
    units.add_argument("model", help="a model name or folder")
    units.set_defaults(handler=_units)

    models = commands.add_parser("models", help="list the models: the bundled ones and yours")
    models.add_argument("folder", nargs="?", type=Path, help="list this folder's models instead")
    models.set_defaults(handler=_models, tensorflow=False)

    scenes = commands.add_parser("scenes", help="list and check the scenes: the bundled ones and yours")
    scenes.add_argument("folder", nargs="?", type=Path, help="list this folder's scenes instead")
    scenes.set_defaults(handler=_scenes, tensorflow=False)

    takes_command = commands.add_parser("takes", help="list the takes recorded; --recover finishes interrupted ones")
    takes_command.add_argument("folder", nargs="?", type=Path, help="another takes folder (default: yours)")
    takes_command.add_argument("--recover", action="store_true",
                               help="make the .part files a crash or power cut left whole (header fixed, renamed)")
    takes_command.set_defaults(handler=_takes, tensorflow=False)

    check = commands.add_parser("check", help="check scene files against a model before a gig (no model is loaded)")
    check.add_argument("scenes", nargs="+", metavar="SCENE", help="scene names or files")
    check.add_argument("--model", default=DEFAULT_MODEL, help=f"a model name or folder (default {DEFAULT_MODEL})")
    check.set_defaults(handler=_check, tensorflow=False)

    paths = commands.add_parser("paths", help="where your models, scenes, takes, settings and caches live")
    paths.set_defaults(handler=_paths, tensorflow=False)

    info = commands.add_parser("info", help="describe a model: sizes, rates, bend points")
    info.add_argument("model", help="a model name or folder")
    info.set_defaults(handler=_info, tensorflow=False)
    return parser


def _analysis_options(parser: argparse.ArgumentParser) -> None:
    from tuibend.pitch.names import TRACKERS

    parser.add_argument("--tracker", choices=TRACKERS, default="crepe-tiny", help="pitch tracker (default crepe-tiny)")
    parser.add_argument("--no-cache", action="store_true", help="analyse again, do not read or write the cache")


def _socket_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", type=Path, metavar="PATH",
                        help="the performance's control socket (default: control.sock in your runtime folder, "
                             "see `tuibend paths`); one per performance")


def _osc_address(text: str) -> tuple[str, int]:
    """argparse type: [HOST:]PORT, the host 127.0.0.1 unless given."""
    host, _, port_text = text.rpartition(":")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a UDP port (0 to 65535) or HOST:PORT")
    return host or "127.0.0.1", int(port_text)


def _keyboard(text: str):
    """argparse type: a keyboard's settings."""
    from tuibend.keyboard import parse_settings

    try:
        return parse_settings(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _gate(text: str):
    """argparse type: the noise gate's setting."""
    from tuibend.dynamics import parse_gate

    try:
        return parse_gate(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _dynamics_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gate", type=_gate, default="auto", metavar="auto|off|DB",
                        help="the noise gate: silent when the player is. auto: opens 10 dB above the input's "
                             "measured noise floor (default); off; or a fixed threshold on the loudness scale "
                             "(dB; white noise at -60 dBFS reads -37)")
    parser.add_argument("--no-level-match", dest="level_match", action="store_false",
                        help="keep the model's own level (by default the output follows the player's level)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # play starts its engine's process with the same arguments
    try:
        if getattr(args, "model", None) is not None:  # a name (bundled or the user's) or a folder
            args.model = find_model(args.model)
        if args.tensorflow:
            import_tensorflow_quietly()
        args.handler(args)
    except TuibendError as error:  # a fault the user can act on: one line
        print(f"tuibend: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`tuibend info M | head`): leave quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:  # a folder that cannot be written, a disk that is full: one line, no traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"tuibend: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuibend: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: its traceback is kept for a report
        print(f"tuibend: internal error: {describe(error)}", file=sys.stderr)
        return 70
    return 0


if __name__ == "__main__":
    sys.exit(main())
