"""Errors the harness reports as one clear line (the CLI prints them without a traceback)."""


class HarnessError(Exception):
    """Base class: a problem the user can act on, described in the message."""


class ModelError(HarnessError):
    """A model could not be found, built or understood."""


class DataError(HarnessError):
    """Text data could not be found or read."""


class CheckpointError(HarnessError):
    """A checkpoint could not be written or read; the message names the file and tensor."""
