"""Dialogs over the instrument: help, a yes/no question, a line of text, a choice from a list.

Each is a modal screen; the engine keeps playing underneath (it never waits for the interface).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static


class Dialog(ModalScreen):
    """A modal screen that answers once: a second Enter, or Escape then Enter, in the same moment
    (key mashing) finds the dialog already gone and does nothing (it must not pop the screen under it)."""

    _answered = False

    def answer(self, value=None) -> None:
        if self._answered:
            return
        self._answered = True
        self.dismiss(value)


class HelpScreen(Dialog):
    """Every action and its key (as remapped)."""

    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "close", "close")]

    def action_close(self) -> None:
        self.answer(None)

    def __init__(self, rows: list[tuple[str, str]]):
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = Text("tuibend · keys\n\n", style="bold")
        for keys, description in self.rows:
            text.append(f"{keys:>18}  ", style="bold cyan")
            text.append(f"{description}\n")
        text.append("\nEsc, q or ? closes this help.", style="italic")
        yield Vertical(Static(text), id="dialog")


class ConfirmScreen(Dialog):
    """A yes/no question: y or Enter for yes, n or Esc for no."""

    BINDINGS: ClassVar = [Binding("y,enter", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Vertical(Label(self.question), Label("[b]y[/b] yes · [b]n[/b] no"), id="dialog")

    def action_answer(self, answer: bool) -> None:
        self.answer(answer)


class PromptScreen(Dialog):
    """One line of text (Enter accepts, Esc cancels)."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, value: str = ""):
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        yield Vertical(Label(self.question), Input(value=self.value, id="answer"), id="dialog")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.answer(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.answer(None)


class ChoiceScreen(Dialog):
    """A choice from a list (arrows and Enter, Esc cancels)."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, choices: list[str]):
        super().__init__()
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        yield Vertical(Label(self.question), OptionList(*self.choices, id="choices"), id="dialog")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.answer(self.choices[event.option_index])

    def action_cancel(self) -> None:
        self.answer(None)
