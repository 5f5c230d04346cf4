"""Reading a user's text file (a scene, a mapping, a keymap) with one clear error for every fault."""

from __future__ import annotations

import os
from pathlib import Path


def read_user_text(path: str | os.PathLike, error: type[Exception], what: str) -> str:
    """The file's text; a missing or unreadable file raises ``error`` naming the file and the fault."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as fault:
        raise error(f"{path}: unreadable ({fault})") from None
