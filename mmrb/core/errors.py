"""Exceptions a user can act on: each names the file, the field and the fix."""


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


def unknown_name(kind: str, name: str, registered, error: type[MmrbError] = ModelError) -> MmrbError:
    """The error for a name missing from a registry: the closest registered names, then all of them."""
    import difflib

    close = difflib.get_close_matches(name, list(registered), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return error(f"unknown {kind} {name!r}.{hint} Registered: {', '.join(sorted(registered))}")
