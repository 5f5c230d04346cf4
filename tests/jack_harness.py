"""Test-side JACK helpers: the dummy server, and a client that plays into and records from other clients."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RATE = 16000
PERIOD = 256
# What the dummy server this run starts says: which client it found late when it reports an xrun.
SERVER_LOG = Path(tempfile.gettempdir()) / f"tuibend-tests-jackd-{os.getpid()}.log"


def jack_running() -> bool:
    import jack

    try:
        jack.Client("tuibend-probe", no_start_server=True).close()
        return True
    except jack.JackOpenError:
        return False


def start_dummy_server() -> subprocess.Popen | None:
    """Starts ``jackd -d dummy`` (16 kHz, 256-sample periods) unless a server runs; None if one did."""
    if jack_running():
        return None
    if shutil.which("jackd") is None:
        raise RuntimeError("jackd is missing: apt-get install jackd2 (the engine tests run against its dummy driver)")
    with SERVER_LOG.open("wb") as log:
        server = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)],
                                  stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"})
    for _ in range(100):
        if jack_running():
            return server
        time.sleep(0.05)
    server.kill()
    raise RuntimeError("jackd -d dummy did not start")


def server_log_size() -> int:
    """Where the server's log ends now (0 when this run did not start the server)."""
    return SERVER_LOG.stat().st_size if SERVER_LOG.exists() else 0


def late_clients(since: int) -> list[str]:
    """The clients the server found unfinished at a period's end (an xrun of the whole graph), since byte
    ``since`` of its log: an xrun counts against every client, this names the one that caused it. Empty when
    this run did not start the server (then nothing says who was late)."""
    if not SERVER_LOG.exists():
        return []
    with SERVER_LOG.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    return re.findall(r"XRun: client = (\S+) was not finished", text)


class Harness:
    """A JACK client with one output (plays a buffer) and one input (records), wired to another client."""

    def __init__(self, name: str = "harness", seconds: float = 40.0):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.out = self.client.outports.register("out")
        self.inp = self.client.inports.register("in")
        self.recording = np.zeros(int(seconds * RATE), np.float32)
        self.recorded = 0
        self.playing = np.zeros(0, np.float32)
        self.played = 0
        self.xruns = 0
        self.lock = threading.Lock()
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _xrun(self, delay) -> None:
        self.xruns += 1

    def _process(self, frames: int) -> None:
        out = self.out.get_array()
        chunk = self.playing[self.played:self.played + frames]
        out[:len(chunk)] = chunk
        out[len(chunk):] = 0.0
        self.played += len(chunk)
        space = len(self.recording) - self.recorded
        take = min(space, frames)
        self.recording[self.recorded:self.recorded + take] = self.inp.get_array()[:take]
        self.recorded += take

    def play(self, audio: np.ndarray) -> tuple[int, int]:
        """Starts playing ``audio`` at the next period; returns (recorded index when queued, length)."""
        self.playing, self.played = np.asarray(audio, np.float32), 0
        return self.recorded, len(audio)

    def ports_of(self, client_name: str) -> tuple[list[str], list[str]]:
        inputs = [p.name for p in self.client.get_ports(f"{client_name}:", is_audio=True, is_input=True)]
        outputs = [p.name for p in self.client.get_ports(f"{client_name}:", is_audio=True, is_output=True)]
        return inputs, outputs

    def wire(self, client_name: str) -> None:
        """Our output into the client's first input, its first output into our input; nothing else."""
        inputs, outputs = self.ports_of(client_name)
        for port in inputs[:1] + outputs[:1]:
            for other in self.client.get_all_connections(port):
                self.client.disconnect(*((other, port) if port in inputs else (port, other)))
        self.client.connect(self.out, inputs[0])
        self.client.connect(outputs[0], self.inp)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class Passthrough:
    """A plain JACK client copying its input to its output in the process callback: the baseline."""

    def __init__(self, name: str = "passthrough"):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.inp = self.client.inports.register("in")
        self.out = self.client.outports.register("out")
        self.client.set_process_callback(lambda frames: self.out.get_array().__setitem__(slice(None),
                                                                                         self.inp.get_array()))
        self.client.activate()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def onset(signal: np.ndarray, start: int, relative_db: float = -20.0) -> int:
    """The first sample at or after ``start`` within ``relative_db`` of the peak that follows."""
    tail = np.abs(signal[start:])
    threshold = tail.max() * 10 ** (relative_db / 20)
    return start + int(np.argmax(tail >= threshold))
