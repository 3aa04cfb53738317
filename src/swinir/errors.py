"""The exception types users see.

Every problem caused by the user's input (an unreadable image, a checkpoint that does not match, a config
key that does not exist) is raised as :class:`SwinIRError` with a one-line message that names the problem
and the fix. The CLI prints that line and exits non-zero; anything else is a bug and keeps its traceback.

An option that cannot work (a scale the weights do not have, a noise level for a blind model) is raised as
:class:`OptionRefused`: the same one line for library users, plus the parts (which option, which value, why,
what would work) from which each front end words it in its own terms: the CLI names ``--scale``, the web API
the ``scale`` form field. The layers below the front ends never spell a command-line flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class SwinIRError(Exception):
    """A user-facing error: ``str(err)`` is one line that says what is wrong and how to fix it."""


def _plain_name(option: str) -> str:
    return option


def _plain_leave_out(option: str) -> str:
    return f"leave {option} out"


class OptionRefused(SwinIRError):
    """A request option that cannot work, as data: what, which value, why, and what would work.

    Attributes:
        option: the option's plain name (``scale``, ``sigma``, ``quality``, ``precision``, ``to``, ...).
        value: the value refused; None when giving the option at all is what is refused.
        problem: what is wrong with it, a verb phrase (``does not apply``, ``does not fit``, ``is out of range``).
        reason: why, in plain words that name no flag or form field.
        omit: whether leaving the option out works.
        accepted: values of the option that would work.
        alternatives: other things that would work, in plain words (``weights trained for x2``).
        subject: what the line is about when not the option alone (an output file's name), or "".
    """

    def __init__(self, option: str, value: object = None, *, problem: str = "does not apply", reason: str = "",
                 omit: bool = False, accepted: Sequence[object] = (), alternatives: Sequence[str] = (),
                 subject: str = "") -> None:
        self.option, self.value, self.problem, self.reason = option, value, problem, reason
        self.omit, self.accepted, self.alternatives, self.subject = omit, tuple(accepted), tuple(alternatives), subject
        super().__init__(self.words())

    def __reduce__(self) -> tuple:  # keyword-only fields: pickle (torchrun's gathers, worker pools) rebuilds it
        return (_rebuild, (self.option, self.value, self.__dict__.copy()))

    def words(self, name: Callable[[str], str] = _plain_name,
              leave_out: Callable[[str], str] = _plain_leave_out) -> str:
        """The refusal as one line, with ``name(option)`` for how the front end names an option (``--scale``)
        and ``leave_out(option)`` for how it says to leave one out (``remove --scale``)."""
        line = f"{self.subject}: " if self.subject else ""
        line += name(self.option) + ("" if self.value is None else f" {_shown(self.value)}") + f" {self.problem}"
        if self.reason:
            line += f": {self.reason}"
        uses = [f"{name(self.option)} {_shown(v)}" for v in self.accepted] + list(self.alternatives)
        fixes = ([leave_out(self.option)] if self.omit else []) + ([f"use {_either(uses)}"] if uses else [])
        return line + ("; " + ", or ".join(fixes) if fixes else "")


class WeightsMismatch(SwinIRError):
    """Weights that do not fit the architecture they are loaded into. ``detail`` names the tensors (missing,
    unexpected, mis-shaped); the line adds the fix, which the CLI words with its ``--preset`` flag."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{detail}; load it as the architecture it was trained with, or let that be inferred "
                         "from the weights")

    def __reduce__(self) -> tuple:
        return (WeightsMismatch, (self.detail,))


def _rebuild(option: str, value: object, state: dict) -> OptionRefused:
    err = OptionRefused(option, value)
    err.__dict__.update(state)
    err.args = (err.words(),)
    return err


def _shown(value: object) -> str:
    """A value as a user typed it: 25 rather than 25.0."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _either(items: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
