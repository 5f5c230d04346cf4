"""rtmidi's side: opening the MIDI system, listing ports, finding one by name, closing one safely."""

from __future__ import annotations

import rtmidi

from tuibend.midi.errors import MidiError

API_NAMES = {rtmidi.API_UNSPECIFIED: "the default MIDI system", rtmidi.API_LINUX_ALSA: "ALSA",
             rtmidi.API_UNIX_JACK: "JACK", rtmidi.API_MACOSX_CORE: "CoreMIDI", rtmidi.API_WINDOWS_MM: "Windows MIDI"}


# The names ``--midi-api`` takes, each system's own first: what rtmidi offers is asked at run time.
API_BY_NAME = {"coremidi": rtmidi.API_MACOSX_CORE, "winmm": rtmidi.API_WINDOWS_MM, "alsa": rtmidi.API_LINUX_ALSA,
               "jack": rtmidi.API_UNIX_JACK}


def apis_to_try(name: str) -> list[int]:
    """The MIDI systems to open for ``--midi-api NAME``, in order: ``auto`` is every system this rtmidi was
    built with, the platform's native one first (CoreMIDI, Windows MM, ALSA), JACK last."""
    compiled = set(rtmidi.get_compiled_api())
    if name != "auto":
        if API_BY_NAME[name] not in compiled:
            offered = ", ".join(key for key, api in API_BY_NAME.items() if api in compiled) or "none"
            raise MidiError(f"--midi-api {name}: this python-rtmidi has no {api_name(API_BY_NAME[name])} "
                            f"(it offers: {offered})")
        return [API_BY_NAME[name]]
    apis = [api for api in API_BY_NAME.values() if api in compiled]
    if not apis:
        raise MidiError("this python-rtmidi was built without any MIDI system")
    return apis


def api_name(api: int) -> str:
    return API_NAMES.get(api, f"MIDI API {api}")


def open_client(api: int, name: str) -> rtmidi.MidiIn:
    """An rtmidi input client (with JACK, a JACK client of that name); MidiError if the system is missing."""
    try:
        return rtmidi.MidiIn(api, name)
    except rtmidi.SystemError as error:
        hint = "" if api == rtmidi.API_UNIX_JACK else " (under a JACK server, JACK's own MIDI API may serve)"
        raise MidiError(f"cannot open MIDI through {api_name(api)}: {error}{hint}") from None


def input_ports(api: int = rtmidi.API_UNSPECIFIED) -> list[str]:
    """The ports there are to listen to (other programs' and devices' outputs)."""
    client = open_client(api, "tuibend-list")
    try:
        return client.get_ports()
    finally:
        client.delete()


def match_port(wanted: str, ports: list[str]) -> str | None:
    """``wanted`` exactly, else the first port whose name contains it (any case): ALSA appends client and
    port numbers that change when a device is replugged, and JACK may number a returning client."""
    if wanted in ports:
        return wanted
    return next((port for port in ports if wanted.lower() in port.lower()), None)


def describe_ports(ports: list[str]) -> str:
    return ", ".join(repr(port) for port in ports) if ports else "none"


def close_clients(clients: list[rtmidi.MidiIn]) -> None:
    """Closes each client's port and the client (with JACK, its JACK client)."""
    for client in clients:
        client.close_port()
        client.delete()
