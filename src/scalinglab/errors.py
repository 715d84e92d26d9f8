"""Errors in what the user gave: the command line prints each as one line and exits with code 2."""


class InputError(ValueError):
    """Bad user input. The message is one line that names what the user wrote and what to do."""


class SpecError(InputError):
    """A sweep file, or the data it names, that cannot be used."""


class UsageError(InputError):
    """A command line that cannot be used."""


class FitError(InputError):
    """Not enough, or unsuitable, data for the requested law."""
