"""Errors caused by the user's input (config, data, files), reported as one line without a traceback."""


class BenchError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do."""
