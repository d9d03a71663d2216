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
