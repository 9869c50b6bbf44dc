"""User-facing error types: anything raised as UserError is printed as one line, never a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad flag, bad file, missing model); printed as one line."""

    exit_code = 2


class PreflightError(UserError):
    """One or more selected models cannot run; each problem is a line with its fix."""

    exit_code = 3

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ConfigError(UserError):
    """A registry, experiment or results file is malformed; the message names the file."""
