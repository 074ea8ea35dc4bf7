"""User-facing errors: one line, exit code 2, never a traceback."""


class BenchError(Exception):
    """A bad input (suite, data file, model source). The CLI prints it as one line and exits 2."""

    exit_code = 2


class ParityError(RuntimeError):
    """An exported artifact disagrees with its PyTorch source beyond the tolerance."""
