"""User-facing errors: the CLI prints these as one line and exits non-zero."""


class TaskmixError(Exception):
    """A problem with the user's input (config, data, task name) rather than a bug."""


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


class ConfigError(TaskmixError):
    """An experiment or study file has an unknown key, a bad value or an unknown task."""
