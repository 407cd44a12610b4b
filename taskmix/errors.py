"""User-facing errors: the CLI prints these as one line and exits non-zero."""

MAX_LINE = 400
"""Longest message line printed: a 10 MB header line quoted into an error stays readable."""


def clip(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters with an ellipsis, for quoting raw input in a message."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


class TaskmixError(Exception):
    """A problem with the user's input (config, data, task name) rather than a bug.

    Every line of the message is clipped, so raw input quoted anywhere (a header line, a
    field value) cannot flood the terminal or the log.
    """

    def __init__(self, message: str = "", *args: object):
        super().__init__("\n".join(clip(line, MAX_LINE) for line in str(message).split("\n")), *args)


class DataError(TaskmixError):
    """A data file is missing, malformed or inconsistent with its task."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class NonFinitePredictions(TaskmixError):
    """Predictions with NaN or infinite values: the model diverged, so there is nothing to score."""


class ConfigError(TaskmixError):
    """An experiment or study file has an unknown key, a bad value or an unknown task."""


class CheckpointError(TaskmixError):
    """A checkpoint or resume file is truncated, corrupt, or holds more than tensors and plain data."""


class RunDirLocked(TaskmixError):
    """Another live process holds the run directory (or stage-cache entry) this run needs."""
