"""The instrument's keys: every action with its default key, remappable from a TOML file.

The file (``keys.toml`` in the user's config folder, ``~/.config/tuibend`` on Linux, or ``--keys``)
holds one table, ``[keys]``, mapping an action's id to a key or a comma-separated list of keys, e.g. ``panic = "x"``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from textual.binding import Binding

from tuibend.errors import TuibendError
from tuibend.places import user_config
from tuibend.textfile import read_user_text

# (id, default keys, action, description shown in the footer and the help screen, shown in the footer)
ACTIONS: list[tuple[str, str, str, str, bool]] = [
    *[(f"scene_{n}", str(n), f"recall({n - 1})", f"recall scene {n}", False) for n in range(1, 10)],
    ("up", "up,k", "move_row(-1)", "previous bend", False),
    ("down", "down,j", "move_row(1)", "next bend", False),
    ("next_param", "tab", "move_column(1)", "next parameter", False),
    ("previous_param", "shift+tab", "move_column(-1)", "previous parameter", False),
    ("increase", "right,l", "adjust(0.05)", "raise (coarse)", False),
    ("decrease", "left,h", "adjust(-0.05)", "lower (coarse)", False),
    ("increase_fine", "shift+right,L", "adjust(0.01)", "raise (fine)", False),
    ("decrease_fine", "shift+left,H", "adjust(-0.01)", "lower (fine)", False),
    ("play_pause", "space", "play_pause", "play/pause", True),
    ("panic", "escape", "panic", "panic", True),
    ("bypass", "b", "bypass", "bypass", True),
    ("gain_up", "plus", "gain(1.0)", "output gain +1 dB", False),
    ("gain_down", "minus", "gain(-1.0)", "output gain -1 dB", False),
    ("gate_up", "n", "gate(2.0)", "noise gate threshold +2 dB", False),
    ("gate_down", "N", "gate(-2.0)", "noise gate threshold -2 dB", False),
    ("record_lane", "r", "record_lane", "rec lane", True),
    ("record_take", "R", "record_take", "rec take", True),
    ("add_bend", "a", "add_bend", "add bend", False),
    ("remove_bend", "d", "remove_bend", "remove bend", False),
    ("bend_up", "left_square_bracket", "move_bend(-1)", "move bend up", False),
    ("bend_down", "right_square_bracket", "move_bend(1)", "move bend down", False),
    ("next_transform", "t", "transform(1)", "next transform", False),
    ("previous_transform", "T", "transform(-1)", "previous transform", False),
    ("next_point", "p", "point(1)", "next point", False),
    ("previous_point", "P", "point(-1)", "previous point", False),
    ("save", "s", "save", "save", True),
    ("save_as", "S", "save_as", "save as", False),
    ("undo", "u", "undo", "undo", False),
    ("redo", "U", "redo", "redo", False),
    ("switch_model", "m", "switch_model", "model", False),
    ("switch_input", "i", "switch_input", "input", False),
    ("midi_learn", "g", "midi_learn", "MIDI learn", False),
    ("help", "question_mark", "help", "help", True),
    ("quit", "q", "quit_app", "quit", True),
    ("detach", "D", "detach", "detach (plays on)", False),
]


# A key as Textual names it: modifiers, then one character or a lower-case name ("escape", "f5").
KEY_NAME = re.compile(r"^((ctrl|shift|alt|meta|super|hyper)\+)*([A-Za-z0-9]|[a-z][a-z0-9_]*)$")
PRIORITY = {"next_param", "previous_param"}  # before Textual's own tab (focus moves): there is no focus to move


def bindings() -> list[Binding]:
    return [Binding(keys, action, description, show=shown, id=action_id, priority=action_id in PRIORITY)
            for action_id, keys, action, description, shown in ACTIONS]


class KeymapError(TuibendError, ValueError):
    """A keys file that cannot be used, naming the file and the entry."""


def load_keymap(path: Path | None) -> dict[str, str]:
    """The remapping in ``path`` (or the default file when it exists); {} when there is none."""
    if path is None:
        path = user_config("keys.toml")
        if not path.is_file():
            return {}
    try:
        table = tomllib.loads(read_user_text(path, KeymapError, "keys file"))
    except tomllib.TOMLDecodeError as error:
        raise KeymapError(f"{path}: not valid TOML ({error})") from None
    keys = table.get("keys", {})
    known = {action_id for action_id, *_ in ACTIONS}
    if not isinstance(keys, dict):
        raise KeymapError(f"{path}: [keys] must be a table of action = \"key\"")
    for action_id, key in keys.items():
        if action_id not in known:
            raise KeymapError(f"{path}: keys.{action_id}: no such action (actions: {', '.join(sorted(known))})")
        if not isinstance(key, str) or not key or not all(KEY_NAME.match(k.strip()) for k in key.split(",")):
            raise KeymapError(f"{path}: keys.{action_id}: {key!r} is not a key name such as \"x\", \"ctrl+p\" "
                              f"or \"left_square_bracket\"")
    return dict(keys)
