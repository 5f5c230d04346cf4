"""The real-time engine: the model thread between a source and the speaker.

Four kinds of thread meet here and none waits for another:

- the audio callback (:class:`~tuibend.engine.devices.Bridge`) copies samples between two rings;
- the model thread (:meth:`Engine._run`) takes a block of input (live analysis or a prepared
  file), advances the bend controller, runs the compiled model step, guards and limits the
  result, queues it for the take, and writes it to the output ring; it never touches the disk;
- the file writer (:class:`~tuibend.engine.writer.FileWriter`) puts the take, the events log and
  the stats file on disk ten times a second, so a disk that stalls delays them, never the music;
- controllers (the interface, MIDI, OSC, a replayed log) call :meth:`Engine.set`,
  :meth:`Engine.recall`, :meth:`Engine.panic` and the rest, which swap small values or append
  to a deque; the model thread applies them before its next block, so a change is heard in
  the next block.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from tuibend import control
from tuibend.atomic import atomic_path
from tuibend.bend.registry import structure_key
from tuibend.bend.rig import BendController
from tuibend.bend.scene import Scene, scene_gate
from tuibend.dsp.flavours import LOUDNESS_FLAVOURS
from tuibend.dynamics import Dynamics, GateSettings
from tuibend.engine.chains import Chain, ChainPreparer, build_chain
from tuibend.engine.devices import Bridge, DeviceInfo, VirtualDevice, open_device
from tuibend.engine.errors import EngineError
from tuibend.engine.events import Event, EventLog
from tuibend.engine.ring import RingBuffer
from tuibend.engine.sources import Block, FilePlayer, KeyboardSource, LiveAnalysis
from tuibend.engine.take import TakeWriter
from tuibend.engine.telemetry import Telemetry
from tuibend.engine.writer import FileWriter
from tuibend.errors import describe
from tuibend.keyboard import KeyboardVoice, VoiceSettings
from tuibend.model.store import ModelFile
from tuibend.native.dynamics import dynamics_for
from tuibend.native.safety import safety_chain

if TYPE_CHECKING:
    from tuibend.model.timbre import TimbreModel

BLOCK_SIZES = (64, 128, 256, 512, 1024)
KERNELS = ("auto", "native", "tensorflow")
SLOW_LOAD = 0.7  # a model using more of a block's duration than this cannot play without underruns


@dataclass
class EngineSettings:
    """How to run: block size, device, and where the performance is written."""

    block: int = 256
    device: str | int | None = None  # None: the default device; "none": no device, paced by the clock
    output_channels: int = 2
    record: Path | None = None
    stats: Path | None = None
    log: Path | None = None
    seed: int = 0
    check_speed: bool = True
    # Live input: device periods of output queued beyond the one block in flight. 1 survives a late
    # block on a busy machine (+16 ms at 256 samples); 0 is the lowest latency.
    margin_periods: int = 1
    gain_db: float = 0.0  # output gain before the limiter (the model's own level is often low)
    virtual_rate: int | None = None  # the clock-paced device's rate (default: the model's); tests resampling
    keep_virtual_output: bool = False  # the clock-paced device keeps what it would have played (tests)
    virtual_microphone: np.ndarray | None = None  # what the clock-paced device hears, looped (tests, benchmarks)
    # What runs a block: "native" (the C kernel, the package's build for this CPU), "tensorflow" (its compiled
    # step), or "auto": native unless it cannot load here (then TensorFlow, and the notice says why).
    kernel: str = "auto"
    # The native kernel's layers in bfloat16 where the CPU has AVX512-BF16 (about twice as fast; the
    # sound 0.3-0.7 % RMS off float32, measured); False keeps float32 throughout.
    bfloat16: bool = True
    # The noise gate (silent when the player is) and the level match (the output at the player's level).
    gate: GateSettings = field(default_factory=GateSettings)
    level_match: bool = True
    keyboard: VoiceSettings = field(default_factory=VoiceSettings)  # a keyboard's envelope, unless a scene sets one


def _level_db(samples: np.ndarray) -> float:
    """The block's peak in dBFS (a meter's): two reductions, no temporary array."""
    peak = max(float(samples.max()), -float(samples.min())) if len(samples) else 0.0
    return 20.0 * math.log10(peak) if peak > 1e-6 else -120.0


@dataclass
class _SceneChange:
    scene: Scene
    seconds: float
    source: str
    fade_out_until: int | None = None  # engine frame at which the old chain, faded out, is swapped


@dataclass
class _LoadMeter:
    """The last 64 blocks' loads, in plain floats: added every block, where a numpy call costs more than the sum."""

    loads: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))

    def add(self, load: float) -> None:
        self.loads.append(load)

    def mean_and_peak(self) -> tuple[float, float]:
        """From any thread: a copy first (one C call, atomic under the interpreter's lock)."""
        loads = tuple(self.loads)
        return (sum(loads) / len(loads), max(loads)) if loads else (0.0, 0.0)


class _BlockReport(NamedTuple):
    """The model thread's last block and what it played (neither changes once played), for :attr:`Engine.telemetry`
    to read: one tuple of references swapped whole, so the thread reports a block without computing anything."""

    frame: int  # engine time at the block's end
    block: Block
    audio: np.ndarray


# Requests from the interface, MIDI and OSC threads, applied by the model thread between blocks.
@dataclass(frozen=True)
class LoadScene:
    scene: Scene
    seconds: float
    source: str


@dataclass(frozen=True)
class Panic:
    pass


@dataclass(frozen=True)
class SwapTake:
    take: TakeWriter | None  # None: stop recording


EngineRequest = LoadScene | Panic | SwapTake


class Engine:
    """Plays a model from a source to a device and/or a take, with scenes of bends.

    ``source`` is a :class:`FilePlayer`, a :class:`LiveAnalysis` (which needs a device with an input) or a
    :class:`KeyboardSource` (notes from MIDI). ``model``: a :class:`~tuibend.model.store.ModelFile` (read
    without TensorFlow, which loads only where TensorFlow runs the chains) or a :class:`TimbreModel`.
    ``scenes`` is the set that :meth:`recall` indexes (MIDI program changes and number keys); the
    first is played at start unless ``scene`` names another. ``units_provider`` computes the model's
    unit statistics the first time a chain with an informed selection is built.
    """

    def __init__(self, model: TimbreModel | ModelFile, source: FilePlayer | LiveAnalysis | KeyboardSource,
                 scenes: list[Scene] | None = None, settings: EngineSettings | None = None,
                 unit_statistics: dict | None = None,
                 scene: Scene | None = None, units_provider: Callable[[], dict] | None = None,
                 scene_paths: list[Path | None] | None = None):
        self.model = model
        self.source = source
        self.scenes = list(scenes or [])
        # the file of each scene (None: none yet), for the interface's save
        self.scene_paths = list(scene_paths) if scene_paths is not None else [None] * len(self.scenes)
        self.detachable = False  # the interface that drives it in this process ends it when it ends
        # called on the model thread after each block with it and whether the gate is open: each must only
        # hand the values on (an append), never wait
        self.observers: list[Callable[[Block, bool], None]] = []
        self.settings = settings or EngineSettings()
        self.unit_statistics = unit_statistics
        self.units_provider = units_provider  # unit statistics for informed selections, when first needed
        block, hop = self.settings.block, model.config.hop
        if block not in BLOCK_SIZES:
            raise EngineError(f"block size {block}: use one of {', '.join(map(str, BLOCK_SIZES))} samples")
        if block % hop:
            raise EngineError(f"block size {block} is not a whole number of model frames ({hop} samples)")
        self.sample_rate = model.config.sample_rate
        self.block_frames = block // hop
        self.floor_db = -LOUDNESS_FLAVOURS[model.config.loudness].range_db
        self.live = isinstance(source, LiveAnalysis)
        # the voice a keyboard plays, alone or giving a live input its pitch
        self.keyboard: KeyboardVoice | None = (source.voice if isinstance(source, KeyboardSource)
                                               else source.keyboard if self.live else None)
        if self.keyboard is not None:
            self.keyboard.settings = self.settings.keyboard
        self.scene = scene or (self.scenes[0] if self.scenes else Scene("unbent"))
        if self.scene not in self.scenes:  # the playing scene is always one of the set (a digit recalls it)
            self.scenes.insert(0, self.scene)
            self.scene_paths.insert(0, None)
        self.events = EventLog(self.settings.log)
        self._report: _BlockReport | None = None  # nothing played yet
        self.bridge: Bridge | None = None  # between the model thread and the device, made by start()
        self._delays = (0.0, 0.0)  # the latency and the pitch's lag, known once started
        self.device: DeviceInfo | None = None
        self.bypass = False
        self.gain_db = 0.0
        self.set_gain(self.settings.gain_db, "settings")
        self.error: str | None = None
        self.notice: str | None = None
        self.skipped: list[str] = []  # scenes that could not be prepared, each with its reason
        self.frame = 0  # engine time in model frames
        self._requests: collections.deque[EngineRequest] = collections.deque()  # applied by the model thread
        self._script: collections.deque[Event] = collections.deque()
        self._change: _SceneChange | None = None
        self._take: TakeWriter | None = None
        self._finished_takes: collections.deque[TakeWriter] = collections.deque()  # for the file writer to close
        self._files: FileWriter | None = None
        self._stop = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._stream = None
        self._guard_mutes = 0
        self._load = _LoadMeter()
        self._last_stats = 0.0
        self.kernel = self._choose_kernel()
        self.dynamics = dynamics_for(Dynamics.for_model(model.config, scene_gate(self.scene, self.settings.gate),
                                                        self.settings.level_match, source.makeup_db),
                                     native=self.kernel == "native")
        self._gated_scene = self.scene
        self._safety = safety_chain(self.sample_rate, native=self.kernel == "native")
        if self.kernel == "tensorflow" and isinstance(model, ModelFile):
            self.model = model.timbre_model()  # TensorFlow loads here: the kernel's chains need none of it
        self._preparer = ChainPreparer(self._build_chain)
        self._chain: Chain | None = None
        self.controller: BendController | None = None

    # ----- building -----------------------------------------------------------------------------

    def _build_chain(self, bends) -> Chain:
        informed = any(bend.select.method != "random" for bend in bends)
        if informed and self.unit_statistics is None and self.units_provider is not None:
            self.unit_statistics = self.units_provider()  # computed once, on the preparer thread
        return build_chain(self.model, bends, self.block_frames, self.unit_statistics, self.settings.seed,
                           native=self.kernel == "native", bfloat16=self.settings.bfloat16)

    def _choose_kernel(self) -> str:
        """"native" or "tensorflow", as the settings ask and this machine allows (auto says why not native)."""
        kernel = self.settings.kernel
        if kernel not in KERNELS:
            raise EngineError(f"kernel {kernel!r}: use one of {', '.join(KERNELS)}")
        from tuibend.native import NativeUnavailable, choose

        # The native kernel on every machine, a GPU's too: a live block is too small for a GPU to win
        # (docs/benchmarks.md); TensorFlow stays the reference and the offline and training path.
        try:
            chosen, reason = choose(kernel)
        except NativeUnavailable as error:
            raise EngineError(str(error)) from None
        if reason is not None:
            self.notice = f"TensorFlow runs the model: {reason}"
        return chosen

    def _controller(self, chain: Chain, scene: Scene) -> BendController:
        controller = BendController(chain.rig, self.model.config.frame_rate, scene.automation, fill=chain.fill)
        controller.jump({(i, name): bend.value(name) for i, bend in enumerate(scene.bends)
                         for name in bend.parameter_names()})
        return controller

    def prepare(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Compiles every scene's chain before the music starts, and checks the model keeps up.

        Compiling is Python-heavy (tracing holds the interpreter) and would starve the audio
        callback if done while playing; only a chain edited live is compiled during a performance.
        """
        self.scene.check(self.widths, f"scene {self.scene.name!r}")
        scenes = [self.scene] + [scene for scene in self.scenes if scene is not self.scene]
        for done, scene in enumerate(scenes):
            key = structure_key(scene.bends)
            if self._preparer.ready(key) is None and self._preparer.failure(key) is None:
                try:
                    self._preparer.add(key, self._build_chain(scene.bends))
                except (EngineError, ValueError, MemoryError) as error:
                    if scene is self.scene:
                        raise EngineError(f"scene {scene.name!r}: {error}") from None
                    # one scene that cannot be built is skipped with its reason; the others play
                    self._preparer.fail(key, error)
                    self.skipped.append(f"scene {scene.name!r} skipped: {error}")
            if progress is not None:
                progress(done + 1, len(scenes))
        chain = self._preparer.ready(structure_key(self.scene.bends))
        self._chain, self.controller = chain, self._controller(chain, self.scene)
        if self.settings.check_speed:
            self._check_speed(chain)
        if self.live:  # the tracker's first calls build its graph: not while the audio runs
            for _ in range(4):
                self.source.process(np.zeros(self.settings.block, np.float32))
            self.source.reset()

    @property
    def widths(self) -> dict[str, int]:
        """The model's bend points and their widths (what a scene is checked against)."""
        from tuibend.model.layout import point_widths

        return point_widths(self.model.config.decoder)

    @property
    def block(self) -> int:
        return self.settings.block

    def _check_speed(self, chain: Chain) -> None:
        f0 = np.full(self.block_frames, 220.0, np.float32)
        loudness = np.full(self.block_frames, -30.0, np.float32)
        times = []
        for _ in range(12):
            started = time.perf_counter()
            self.controller.advance()
            chain.stream.step(f0, loudness)
            times.append(time.perf_counter() - started)
        chain.stream.reset()
        chain.rig.reset()
        self.controller = self._controller(chain, self.scene)
        per_block = float(np.median(times[2:]))
        budget = self.settings.block / self.sample_rate
        if per_block > SLOW_LOAD * budget:
            raise EngineError(
                f"the model is too slow for {self.settings.block}-sample blocks: {1000 * per_block:.1f} ms per "
                f"block of {1000 * budget:.1f} ms; use a bigger block (--block {min(1024, 4 * self.settings.block)}) "
                f"or the small model")

    # ----- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """Prepares (if not yet), opens the device (or the virtual clock) and starts the model thread;
        once: a second call (two interfaces over one engine) leaves the running engine alone."""
        if self._thread is not None:
            return
        if self.controller is None:
            self.prepare()
        # The audio callback needs the interpreter within a period: switch threads often, and keep
        # the collector off the prepared model's many objects (a full pass over them takes ~0.2 s).
        sys.setswitchinterval(0.001)
        gc.collect()
        gc.freeze()
        if self.settings.record is not None:
            self._take = TakeWriter(self.settings.record, self.sample_rate)
        virtual = self.settings.device == "none"
        capacity = 16 * 1024 * max(1, self.settings.block // 256)
        self._output = RingBuffer(capacity)
        self._input = RingBuffer(capacity) if self.live else None
        self.bridge = Bridge(self._input, self._output)
        if virtual:
            if self.live and self.settings.virtual_microphone is None:
                raise EngineError("live input needs an audio device with an input; none is in use (--device none)")
            rate = self.settings.virtual_rate or self.sample_rate
            self._stream = VirtualDevice(self.bridge, rate, 256, self.settings.keep_virtual_output,
                                         self.settings.virtual_microphone)
            self.device = DeviceInfo("none (paced by the clock)", rate, 256, virtual=True)
        else:
            self._stream, self.device = open_device(self.bridge, self.settings.device, self.sample_rate,
                                                    duplex=self.live, output_channels=self.settings.output_channels)
        self._setup_rates()
        self._files = FileWriter(self._write_files, self._files_failed)
        self._files.start()
        self._thread = threading.Thread(target=self._run, name="tuibend-model", daemon=True)
        self._thread.start()
        self._stream.start()  # last: the rings are primed and the model thread waits for the first input
        self.events.add(Event(0.0, "engine", "scene", self.scene.name))

    def _setup_rates(self) -> None:
        """Streaming resamplers where the device's rate is not the model's; the output ring's prefill."""
        device_rate = self.device.sample_rate
        self._resample_in = self._resample_out = None
        if device_rate != self.sample_rate:
            import soxr

            self._resample_out = soxr.ResampleStream(self.sample_rate, device_rate, 1, dtype="float32", quality="MQ")
            if self.live:
                self._resample_in = soxr.ResampleStream(device_rate, self.sample_rate, 1, dtype="float32",
                                                        quality="MQ")
        self._device_block = math.ceil(self.settings.block * device_rate / self.sample_rate)
        # Live: one block of silence ahead (the block being computed while the next arrives), plus the
        # margin. A file: keep three blocks (at least three device periods) queued for the callback, so
        # that an interface busy redrawing can delay a block by two without a gap.
        period = self.device.period or self._device_block
        self._prefill = (self._device_block + self.settings.margin_periods * period if self.source.low_latency
                         else max(3 * self._device_block, 3 * period))
        self._pending_input = np.zeros(0, np.float32)
        self._last_period = (0, 0.0)  # the callback's count on the ring the next block waits on, and since when
        self._last_look = 0.0
        self._scratch = np.zeros(self._input.capacity if self._input is not None else 0, np.float32)
        if self.source.low_latency:
            self._output.write(np.zeros(self._prefill, np.float32))
        self._delays = (self.latency_ms, self.source.latency_ms["pitch"] if self.live else 0.0)  # for the telemetry

    @property
    def latency_ms(self) -> float:
        """The engine's own added delay: queued output, the model's hop, and (live) the loudness lag."""
        buffered = self._prefill / self.device.sample_rate if self.device else 0.0
        model_delay = self.model.config.hop / self.sample_rate
        lag = self.source.latency_ms["loudness"] if self.live else 0.0
        return 1000.0 * (buffered + model_delay) + lag

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.perf_counter()  # the load counts the live input's analysis too
                self._note_period(started)
                block = self._next_input()
                if block is None:
                    self._stop.wait(self._seconds_to_next_block())
                    continue
                self._process(block, started)
        except Exception as error:  # the engine reports and stays silent, never crashes the interface
            self.error = describe(error)  # a bug's traceback is kept in the user's log folder
            self.bridge.mute_until = 1 << 62

    def _next_input(self) -> Block | None:
        """The next block of model input, or None when it is not time yet."""
        if not self.live:
            if self._output.readable >= self._prefill:
                return None
            return self.source.next_block(self.block_frames)
        available = self._input.readable
        if available:
            got = self._input.read_into(self._scratch[:available])
            samples = self._scratch[:got]
            if self._resample_in is not None:
                samples = self._resample_in.resample_chunk(samples)
            self._pending_input = np.concatenate([self._pending_input, samples])
        if len(self._pending_input) < self.settings.block:
            return None
        samples, self._pending_input = (self._pending_input[:self.settings.block],
                                        self._pending_input[self.settings.block:])
        return self.source.process(samples)

    def _note_period(self, now: float) -> None:
        """Notes when the device's last period came, at the earliest: the look before the one that saw the
        callback's count on its ring move (a period that came while a block was computed is not placed later)."""
        moved = self._input.written if self.live else self._output.read
        if moved != self._last_period[0]:
            self._last_period = (moved, self._last_look)
        self._last_look = now

    def _seconds_to_next_block(self) -> float:
        """How long the model thread may sleep before its next block can be due, instead of looking every
        millisecond (fifteen wakes a block, each paying for caches gone cold: the model thread took a quarter to
        a half more CPU, measured). Counted from when the last period came, at the earliest, which the device
        started filling (live) or draining (a file's queue) then: the input the block still misses, or a file's
        next period, at the device's pace, less a millisecond (a wake a little late would see the period come
        without telling when: the millisecond looks that follow place the next); past it, it looks every
        millisecond as before, so a block is taken no later."""
        if self.live:
            ahead = (self.settings.block - len(self._pending_input)) / self.sample_rate
        elif self.device.period:
            ahead = self.device.period / self.device.sample_rate
        else:  # the host sizes each period: no telling when the next drain comes
            return 0.001
        due = self._last_period[1] + ahead - time.perf_counter() - 0.001
        return min(max(due, 0.001), self.settings.block / self.sample_rate)

    def _process(self, block: Block, started: float) -> None:
        """One block through the chain, the safety and out; ``started``: when its input was taken (the
        load meter's zero)."""
        self._apply_requests()
        chain, controller = self._chain, self.controller
        if self._gated_scene is not self.scene:
            self._gated_scene = self.scene
            self.dynamics.gate.configure(scene_gate(self.scene, self.settings.gate) or GateSettings())
            if self.keyboard is not None:
                self.keyboard.settings = self.scene.keyboard or self.settings.keyboard
        heard = self.dynamics.hear(block.loudness_db, block.level_db)
        if self.bypass:
            audio = block.dry.copy()
        else:
            controller.advance()
            audio = self.dynamics.shape(chain.stream.step(block.f0_hz, heard), block.dry, self.scene.drone)
        safe = self._safety.process(audio, self._gain)
        if safe is None:  # NaN or Inf: muted, every state cleared
            self._guard(chain, "guard")
            safe = np.zeros_like(audio)
        audio = safe
        take = self._take
        if take is not None:
            if take.failure is None:
                take.write(audio)  # queued: the file writer takes it to disk
            else:  # a full or stalled disk ends the take, never the performance
                self._end_take(take.failure)
        out = self._resample_out.resample_chunk(audio) if self._resample_out is not None else audio
        self._output.write(out)
        self.bridge.producing = True
        self.frame += self.block_frames
        self._publish(block, audio)
        for observe in self.observers:
            observe(block, self.dynamics.gate.is_open)
        # the load: all the model thread did for this block, its report too (it shows from the next)
        self._load.add((time.perf_counter() - started) / (self.settings.block / self.sample_rate))

    def _end_take(self, why: str) -> None:
        """Ends a take the disk failed, with a notice (its file keeps what reached it)."""
        self._finished_takes.append(self._take)
        self._take = None
        self.notice = why
        self.events.add(Event(self.seconds, "engine", "take", why))

    def _write_files(self) -> None:
        """The file writer's pass, ten times a second: the takes swapped out closed, the take's queued blocks,
        the events log, and the stats each second."""
        while self._finished_takes:
            take = self._finished_takes.popleft()
            try:
                take.close()
            except OSError as error:
                self.notice = f"take {take.path}: {error.strerror or error}"
        take = self._take
        if take is not None:
            take.write_pending()
        self.events.write_pending()
        if self.events.failure is not None and self.notice != self.events.failure:
            self.notice = self.events.failure
        if self.settings.stats is not None and time.monotonic() - self._last_stats >= 1.0:
            self.write_stats()

    def _files_failed(self, why: str) -> None:
        self.notice = f"files no longer written: {why}"

    def _guard(self, chain: Chain, reason: str) -> None:
        """Mutes what is queued and clears every state that could hold NaN or Inf."""
        self.bridge.mute_until = self._output.written
        chain.stream.reset()
        chain.rig.reset()
        self._safety.reset()
        if reason == "guard":
            self._guard_mutes += 1
            self.events.add(Event(self.seconds, "engine", "guard", "muted a non-finite block and reset"))

    @property
    def chain_stream(self):
        """The stream of the chain playing (native or TensorFlow), None before :meth:`prepare`."""
        return self._chain.stream if self._chain is not None else None

    @property
    def seconds(self) -> float:
        return self.frame / self.model.config.frame_rate

    def _publish(self, block: Block, audio: np.ndarray) -> None:
        self._report = _BlockReport(self.frame, block, audio)

    @property
    def telemetry(self) -> Telemetry:
        """The engine now, for meters, the stats file and attached interfaces: built from the last block's report
        and the state around it by whoever reads it (ten times a second), not by the model thread each block
        (62 times a second: a 30-field snapshot and four reductions there took 100 us a block paced at real time,
        measured, a tenth of the microphone path)."""
        if self._report is None:  # nothing played yet: the meters show nothing
            return Telemetry(error=self.error)
        frame, block, audio = self._report
        load, load_peak = self._load.mean_and_peak()
        gate, bridge = self.dynamics.gate, self.bridge
        underruns, overruns, xruns = (bridge.underruns, bridge.overruns, bridge.xruns) if bridge else (0, 0, 0)
        player = self.source if isinstance(self.source, FilePlayer) else None
        time_s = frame / self.model.config.frame_rate
        return Telemetry(
            time_s=time_s, input_db=_level_db(block.dry), output_db=_level_db(audio),
            f0_hz=float(block.f0_hz[-1]), confidence=float(block.confidence[-1]),
            loudness_db=float(block.loudness_db[-1]), load=load, load_peak=load_peak, underruns=underruns,
            overruns=overruns, xruns=xruns,
            guard_mutes=self._guard_mutes, latency_ms=self._delays[0], pitch_lag_ms=self._delays[1],
            position_s=player.position_seconds if player else time_s,
            duration_s=player.seconds if player else 0.0, playing=player.playing if player else True,
            bypass=self.bypass, gain_db=self.gain_db, scene=self.scene.name,
            preparing=self._change is not None or self._preparer.busy,
            take_s=self._take.seconds if self._take is not None else None, blocks=frame // self.block_frames,
            gate_open=gate.is_open or not gate.settings.enabled, gate_threshold_db=gate.threshold_db,
            floor_db=gate.floor_db if gate.settings.enabled and gate.settings.threshold_db is None else None,
            level_db=self.dynamics.level.gain_db, error=self.error, notice=self.notice)

    def write_stats(self) -> None:
        """The telemetry as JSON, atomically."""
        if self.settings.stats is None:
            return
        self._last_stats = time.monotonic()
        stats = asdict(self.telemetry)
        stats.update(block=self.settings.block, sample_rate=self.sample_rate, kernel=self.kernel,
                     bfloat16=self.chain_stream.bfloat16,
                     device=self.device.name if self.device else None,
                     device_rate=self.device.sample_rate if self.device else None)
        try:
            with atomic_path(self.settings.stats, suffix=".json") as temporary:
                temporary.write_text(json.dumps(stats, indent=2) + "\n")
        except OSError as error:  # a full disk: the stats stop, the performance goes on
            self.notice = f"stats {self.settings.stats}: {error.strerror or error}; no longer written"
            self.settings = replace(self.settings, stats=None)

    def stop(self) -> None:
        """Stops the device and the model thread; finalises the take, the log and the stats (once)."""
        if self._stopped:
            return
        self._stopped = True
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
                self._stream.close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._thread is None or not self._thread.is_alive():
            # soxr's native resamplers go now, not whenever the engine's reference cycles are collected
            # (at interpreter exit they were reported as leaked)
            self._resample_in = self._resample_out = None
        self._preparer.close()
        if self._files is not None and not self._files.stop(timeout=5.0):
            self.notice = "the disk has not answered for 5 s: the take and the log are left as far as written"
            return  # a take left as a .part is recovered at the next start
        if self._take is not None:
            self._take.close()
            self._take = None
        self.events.close()
        self.write_stats()

    # ----- control (any thread) -------------------------------------------------------------------

    def scene_saved(self, index: int, path: str | Path) -> bool:
        """Where the scene at ``index`` now lives (its file, saved by an interface)."""
        if not 0 <= index < len(self.scene_paths):
            return False
        self.scene_paths[index] = Path(path)
        return True

    def apply(self, message: control.Message, source: str = "api"):
        """Applies one message of the control protocol (what MIDI, OSC, the socket and a replay send); the
        value of its reply, where it has one."""
        return control.apply(self, message, source)

    def _log(self, source: str, target: str, value) -> None:
        self.events.add(Event(self.seconds, source, target, value))

    def set(self, bend: int, name: str, value: float, source: str = "api") -> bool:
        """Moves a fader or parameter of the playing chain (bend index from 0); False if it has none."""
        controller = self.controller
        if not math.isfinite(value := float(value)):
            return False  # a NaN or an infinity never reaches the model
        try:
            controller.set(bend, name, value)
        except KeyError:
            return False
        self._log(source, f"bend{bend + 1}.{name}", round(float(value), 6))
        return True

    def target(self, bend: int, name: str) -> float:
        return self.controller.target(bend, name)

    def faders(self) -> dict[tuple[int, str], tuple[float, float]]:
        """Each parameter of the playing chain: (where it is going, where it is now)."""
        controller = self.controller
        if controller is None:
            return {}
        try:
            return {(index, name): (controller.target(index, name), controller.value(index, name))
                    for index, bend in enumerate(self.scene.bends) for name in bend.parameter_names()}
        except KeyError:  # read between the model thread's swap of chain and scene: next time
            return {}

    @property
    def gate_offset_db(self) -> float:
        return self.dynamics.gate.offset_db

    @property
    def gate_threshold_db(self) -> float:
        return self.dynamics.gate.threshold_db

    def recall(self, index: int, source: str = "api", seconds: float | None = None) -> bool:
        """Recalls scene ``index`` (from 0) of the set, morphing over its ``morph_seconds``."""
        if not 0 <= index < len(self.scenes):
            return False
        self.load(self.scenes[index], source, seconds)
        return True

    def load(self, scene: Scene, source: str = "api", seconds: float | None = None) -> None:
        """Plays ``scene`` (an edited one too): morphs to it, or compiles its chain first if it is new."""
        scene.check(self.widths, f"scene {scene.name!r}")
        self._preparer.request(scene.bends)
        self._requests.append(LoadScene(scene, scene.morph_seconds if seconds is None else seconds, source))

    def panic(self, source: str = "api") -> None:
        """Silence now (what is queued is muted in the callback), then a fresh model state."""
        self.bridge.mute_until = self._output.written
        self._requests.append(Panic())
        self._log(source, "panic", True)

    GAIN_RANGE_DB = (-24.0, 24.0)

    def set_gain(self, db: float, source: str = "api") -> None:
        """The output gain in dB (within +-24), before the limiter."""
        if not math.isfinite(db):
            return
        self.gain_db = float(min(self.GAIN_RANGE_DB[1], max(self.GAIN_RANGE_DB[0], db)))
        self._gain = np.float32(10.0 ** (self.gain_db / 20.0))
        if source != "settings":
            self._log(source, "gain", round(self.gain_db, 3))

    GATE_OFFSET_RANGE_DB = (-30.0, 30.0)

    def set_gate_offset(self, db: float, source: str = "api") -> None:
        """Moves the noise gate's threshold by ``db`` from where it is set (the floor's margin, or a fixed
        threshold), within +-30 dB; the model thread reads it at its next frame."""
        if not math.isfinite(db):
            return
        self.dynamics.gate.offset_db = float(min(self.GATE_OFFSET_RANGE_DB[1], max(self.GATE_OFFSET_RANGE_DB[0], db)))
        self._log(source, "gate", round(self.dynamics.gate.offset_db, 3))

    def set_bypass(self, on: bool, source: str = "api") -> None:
        self.bypass = bool(on)
        self._log(source, "bypass", self.bypass)

    def transport(self, action: str, source: str = "api", seconds: float = 0.0) -> None:
        """play, pause, toggle or seek (a prepared file only)."""
        if not isinstance(self.source, FilePlayer):
            return
        if action == "toggle":
            action = "pause" if self.source.playing else "play"
        if action == "play":
            self.source.play()
        elif action == "pause":
            self.source.pause()
        elif action == "seek" and math.isfinite(seconds):
            self.source.seek(seconds)
        self._log(source, "transport", action if action != "seek" else f"seek {seconds:.3f}")

    def record_lane(self, bend: int, name: str, source: str = "api") -> None:
        """Starts recording live moves of a parameter into an automation lane."""
        self.controller.record(bend, name)
        self._log(source, f"bend{bend + 1}.{name}", "record lane")

    def stop_lane(self, bend: int, name: str, source: str = "api"):
        """Ends the recording: the moves become the parameter's lane, played from the scene's start."""
        lane = self.controller.stop_recording(bend, name)
        self._log(source, f"bend{bend + 1}.{name}", "lane recorded")
        return lane

    @property
    def scene_seconds(self) -> float:
        """Time since the scene (its automation) started."""
        return self.controller.frame / self.model.config.frame_rate if self.controller else 0.0

    def start_take(self, path: str | Path) -> None:
        self._requests.append(SwapTake(TakeWriter(path, self.sample_rate)))

    def stop_take(self) -> None:
        self._requests.append(SwapTake(None))

    @property
    def recording_take(self) -> bool:
        return self._take is not None

    @property
    def take_path(self) -> Path | None:
        """Where the take being recorded goes (``--record``'s, or one the interface started)."""
        take = self._take
        return take.path if take is not None else None

    def replay(self, events: list[Event]) -> None:
        """Plays a logged performance's control changes back at their times."""
        self._script = collections.deque(events)

    def current_scene(self) -> Scene:
        """The playing scene with its faders where they stand now (what "save" writes)."""
        scene, controller = self.scene, self.controller
        bends = []
        for index, bend in enumerate(scene.bends):
            proportion = controller.target(index, "proportion")
            params = {name: controller.target(index, name) for name in bend.params}
            bends.append(replace(bend, proportion=proportion, params=params))
        return replace(scene, bends=bends, automation=dict(controller.lanes))

    # ----- the model thread's side of control --------------------------------------------------------

    def _apply_requests(self) -> None:
        while self._script and self._script[0].t <= self.seconds:
            self._replay_event(self._script.popleft())
        while self._requests:
            match self._requests.popleft():
                case LoadScene(scene, seconds, source):
                    self._change = _SceneChange(scene, seconds, source)
                    self._log(source, "scene", scene.name)
                case Panic():
                    self._guard(self._chain, "panic")
                    if not isinstance(self.source, FilePlayer):
                        self.source.reset()
                case SwapTake(take):
                    if self._take is not None:
                        self._finished_takes.append(self._take)  # closed by the file writer
                    self._take = take
        if self._change is not None:
            self._advance_scene_change()

    def _replay_event(self, event: Event) -> None:
        message = control.from_event(event.target, event.value, [scene.name for scene in self.scenes])
        if message is not None:
            self.apply(message, "replay")

    def _advance_scene_change(self) -> None:
        """Same chain: morph the values. A new chain: fade the old bends out over half the morph, swap
        (the new stream carries the old one's state on), fade the new ones in over the other half."""
        change = self._change
        key = structure_key(change.scene.bends)
        chain = self._preparer.ready(key)
        failure = self._preparer.failure(key)
        if failure is not None:  # the playing chain goes on: a performance never stops for a scene
            self.notice = f"scene {change.scene.name!r} could not be prepared ({failure}); {self.scene.name!r} plays on"
            self._change = None
            return
        frame_rate = self.model.config.frame_rate
        if chain is self._chain:
            controller = self.controller
            controller.lanes = dict(change.scene.automation)
            controller.restart()
            controller.morph({(i, name): bend.value(name) for i, bend in enumerate(change.scene.bends)
                              for name in bend.parameter_names()}, change.seconds)
            self.scene, self._change = change.scene, None
            return
        if chain is None:
            return  # still compiling; the old chain plays on
        if change.fade_out_until is None and change.seconds > 0 and self._chain.rig.bends:
            half = change.seconds / 2
            self.controller.morph({(i, "proportion"): 0.0 for i in range(len(self._chain.rig.bends))}, half)
            change.fade_out_until = self.frame + round(half * frame_rate)
        if change.fade_out_until is not None and self.frame < change.fade_out_until:
            return
        chain.stream.continue_from(self._chain.stream)
        chain.rig.reset()
        controller = self._controller(chain, change.scene)
        if change.seconds > 0:
            targets = {(i, "proportion"): bend.proportion for i, bend in enumerate(change.scene.bends)}
            controller.jump({key: 0.0 for key in targets})
            controller.morph(targets, change.seconds / 2)
        self._chain, self.controller, self.scene, self._change = chain, controller, change.scene, None
