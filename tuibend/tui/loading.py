"""The first screen of ``tuibend play``: it appears at once and says what is loading (TensorFlow, the
model, the kernel, the scenes' chains) while a thread loads it, then hands over what was loaded.

Importing TensorFlow alone takes seconds; a performer should see the instrument answer the moment the
command is typed, not a silent terminal. This module imports only Textual.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static

# load(say) -> what was loaded; say(text) adds a line, say(text, replace=True) rewrites the last one.
Say = Callable[..., None]


class LoadingApp(App):
    """Runs ``load`` on a worker thread; :meth:`run` returns its result, or the exception it raised
    (the caller re-raises it, so a fault prints as one line as everywhere else), or None if the
    performer quit while it loaded."""

    CSS = """
    Screen { align: center middle; }
    #loading { width: 72; height: auto; border: round $accent; padding: 0 1; }
    """
    BINDINGS: ClassVar = [Binding("q", "quit", "Quit"), Binding("ctrl+c", "quit", "Quit", show=False)]

    def __init__(self, title: str, load: Callable[[Say], object]):
        super().__init__()
        self._load = load
        self._title = title
        self._lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(self._title, id="loading")

    def on_mount(self) -> None:
        self.run_worker(self._work, thread=True, exit_on_error=False)

    def _work(self) -> None:
        try:
            result = self._load(self._say)
        except Exception as error:  # re-raised by the caller, outside the interface
            result = error
        self.call_from_thread(self.exit, result)

    def _say(self, text: str, replace: bool = False) -> None:
        self.call_from_thread(self._show, text, replace)

    def _show(self, text: str, replace: bool) -> None:
        if replace and self._lines:
            self._lines[-1] = text
        else:
            self._lines.append(text)
        self.query_one("#loading", Static).update("\n".join([self._title, "", *self._lines]))


def load_with_screen(title: str, load: Callable[[Say], object]) -> object:
    """``load``'s result, loaded under the loading screen; its exception raised here; KeyboardInterrupt
    if the performer quit first."""
    # Textual draws on sys.__stderr__; loading TensorFlow points file descriptor 2 at /dev/null for a moment
    # (its C++ start-up notices would draw over the screen), so the screen is drawn on a copy of it.
    terminal = os.fdopen(os.dup(sys.__stderr__.fileno()), "w")
    real, sys.__stderr__ = sys.__stderr__, terminal
    try:
        result = LoadingApp(title, load).run()
    finally:
        sys.__stderr__ = real
        terminal.close()
    if isinstance(result, BaseException):
        raise result
    if result is None:
        raise KeyboardInterrupt
    return result
