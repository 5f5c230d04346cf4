"""The audio side: a callback that only copies between rings, on a real device or a virtual clock.

:class:`Bridge` is all the audio callback touches: two preallocated rings and a few integer
counters. :func:`open_device` runs it on a PortAudio stream (sounddevice: JACK, ALSA, ...);
:class:`VirtualDevice` runs the same callback from a thread paced by the wall clock, for a
machine with no sound card (the performance goes to a take file).
"""

from __future__ import annotations

import ctypes
import functools
import threading
import time
from dataclasses import dataclass

import numpy as np

from tuibend.engine.errors import EngineError
from tuibend.engine.ring import RingBuffer


class Bridge:
    """The rings and counters shared between the audio callback and the model thread."""

    def __init__(self, input_ring: RingBuffer | None, output_ring: RingBuffer):
        self.input = input_ring
        self.output = output_ring
        self.underruns = 0  # the output ring ran dry: the engine was late
        self.overruns = 0  # the input ring was full: the engine did not read in time
        self.xruns = 0  # the audio system reported a late or dropped period (the whole graph, e.g. JACK)
        self.producing = False  # set by the model thread once real output flows: only then a dry ring is an underrun
        self.mute_until = 0  # output samples before this index are played as silence (panic)

    def callback(self, indata, outdata, frames, time_info, status) -> None:
        """Copies input into one ring and output out of the other; nothing else."""
        if status and self.producing and (status.input_overflow or status.output_underflow):
            self.xruns += 1
        if self.input is not None and self.input.write(indata[:, 0]) < frames:
            self.overruns += 1
        out = outdata[:, 0]
        first = self.output.read
        got = self.output.read_into(out)
        if got < frames:
            out[got:] = 0.0
            if self.producing:
                self.underruns += 1
        if first < self.mute_until:
            out[:] = 0.0
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]

    def output_callback(self, outdata, frames, time_info, status) -> None:
        self.callback(None, outdata, frames, time_info, status)


@dataclass
class DeviceInfo:
    """What the engine learned when it opened the device."""

    name: str
    sample_rate: int
    period: int  # samples per callback, 0 when the host decides per call
    virtual: bool = False


JACK_CLIENT_NAME = ctypes.c_char_p(b"tuibend")  # kept alive: PortAudio holds the pointer


@functools.cache
def _sounddevice():
    """sounddevice, with PortAudio re-initialised so that under JACK the client is called ``tuibend``."""
    try:
        import sounddevice
    except OSError as error:  # PortAudio's shared library is missing
        raise EngineError(f"no audio library: {error} (install it: sudo apt-get install libportaudio2)") from None
    set_name = getattr(ctypes.CDLL(sounddevice._libname), "PaJack_SetClientName", None)
    if set_name is not None:
        set_name(JACK_CLIENT_NAME)
        sounddevice._terminate()
        sounddevice._initialize()
    return sounddevice


def has_audio_device() -> bool:
    """True when PortAudio offers a default output device."""
    try:
        sd = _sounddevice()
        return sd.query_devices(kind="output") is not None
    except (EngineError, ValueError, Exception):  # any failure here means "no usable device"
        return False


def _device_rate(sd, device, kind: str, wanted: int) -> int:
    """The model's rate where the device takes it, else the device's own (the engine resamples)."""
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=device, samplerate=wanted, channels=1)
        return wanted
    except Exception:  # fall back to the device's native rate
        return int(sd.query_devices(device, kind)["default_samplerate"])


def open_device(bridge: Bridge, device: str | int | None, sample_rate: int, duplex: bool,
                output_channels: int = 2) -> tuple[object, DeviceInfo]:
    """Opens (not yet starts) a PortAudio stream on ``device``; every fault becomes one EngineError."""
    sd = _sounddevice()
    label = "the default device" if device is None else f"audio device {device!r}"
    try:
        info = sd.query_devices(device, "output")
        if duplex:
            sd.query_devices(device, "input")
    except ValueError as error:
        names = ", ".join(repr(d["name"]) for d in sd.query_devices()) or "none"
        raise EngineError(f"{label}: {error} (devices here: {names})") from None
    rate = _device_rate(sd, device, "output", sample_rate)
    channels = max(1, min(output_channels, int(info["max_output_channels"])))
    try:
        if duplex:
            stream = sd.Stream(device=device, samplerate=rate, channels=(1, channels), dtype="float32",
                               callback=bridge.callback)
        else:
            stream = sd.OutputStream(device=device, samplerate=rate, channels=channels, dtype="float32",
                                     callback=bridge.output_callback)
    except sd.PortAudioError as error:
        raise EngineError(f"{label}: cannot open it at {rate} Hz ({error}); it may be busy or not support "
                          f"this rate") from None
    return stream, DeviceInfo(str(info["name"]), rate, int(stream.blocksize))


class VirtualDevice:
    """The callback driven by the wall clock, ``period`` samples at a time: a sound card's pace
    with no sound card. Input reads as silence, or as ``microphone`` played in a loop (how tests and
    benchmarks run the live path as the engine runs it, with no device); with ``keep_output`` what would
    have been played is kept in :attr:`played` (a list of periods), which is how tests listen to it."""

    def __init__(self, bridge: Bridge, sample_rate: int, period: int = 256, keep_output: bool = False,
                 microphone: np.ndarray | None = None):
        self.bridge = bridge
        self.sample_rate = sample_rate
        self.period = period
        self.played: list[np.ndarray] | None = [] if keep_output else None
        self._stop = threading.Event()
        self._input = np.zeros((period, 1), np.float32)
        # the loop, extended by a period so that each period is one slice of it
        self._microphone = (None if microphone is None or not len(microphone) else
                            np.resize(np.asarray(microphone, np.float32), len(microphone) + period))
        self._heard = 0
        self._output = np.zeros((period, 1), np.float32)
        self._thread = threading.Thread(target=self._run, name="tuibend-virtual-device", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def blocksize(self) -> int:
        return self.period

    def _run(self) -> None:
        step = self.period / self.sample_rate
        due = time.monotonic()
        while not self._stop.is_set():
            due += step
            if self._microphone is not None:
                self._input[:, 0] = self._microphone[self._heard:self._heard + self.period]
                self._heard = (self._heard + self.period) % (len(self._microphone) - self.period)
            self.bridge.callback(self._input, self._output, self.period, None, None)
            if self.played is not None:
                self.played.append(self._output[:, 0].copy())
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def close(self) -> None:
        """Stopped already by :meth:`stop`; here for the same shape as a PortAudio stream."""
