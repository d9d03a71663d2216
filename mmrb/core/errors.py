"""Exceptions a user can act on: each names the file, the field and the fix."""
from __future__ import annotations

from collections.abc import Iterable


class MmrbError(Exception):
    """Base class of every error mmrb raises on purpose."""


class DataError(MmrbError):
    """A dataset file is missing, malformed or inconsistent."""


class SuiteError(MmrbError):
    """A suite YAML file does not validate."""


class ModelError(MmrbError):
    """A model name, config or checkpoint cannot be used."""


class AttackError(MmrbError):
    """An attack entry cannot be built or run."""


class ContextError(MmrbError):
    """An estimator cannot tell which bound sample an input row belongs to."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: `kept` cells are committed in `folder`; running the same command again resumes."""

    def __init__(self, folder, kept: int) -> None:
        super().__init__(f"interrupted: {kept} cells kept in {folder}; run the same command again to resume")
        self.folder, self.kept = folder, kept


def did_you_mean(name: object, known: Iterable[str], n: int = 3) -> str:
    """'did you mean a or b?' with the known names closest to `name`, or '' when none is close: the one wording of
    every hint on a misspelt name (attacks, sources, parameters, models, overrides, defenses)."""
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=n)
    return f"did you mean {' or '.join(close)}?" if close else ""


def unknown(kind: str, name: object, known: Iterable[str]) -> str:
    """'unknown <kind> <name>; did you mean …?; known: …': the message of every registry miss (`known` in its order)."""
    known = list(known)
    hint = did_you_mean(name, known)
    return f"unknown {kind} {name!r}{'; ' + hint if hint else ''}; known: {', '.join(known)}"


def unknown_name(kind: str, name: str, registered: Iterable[str], error: type[MmrbError] = ModelError) -> MmrbError:
    """The error for a name missing from a registry (`unknown`'s message, the registered names sorted)."""
    return error(unknown(kind, name, sorted(registered)))
