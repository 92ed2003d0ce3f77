"""The exception tree: every error bastion raises on purpose derives from `BastionError`.

::

    BastionError
     +-- ValidationError (ValueError)     an argument or an input is not what was expected
     |    +-- ShapeError                  wrong shape or rank
     |    +-- BoundsError                 values outside the declared input bounds
     |    +-- NonFiniteError              NaN or infinity where finite numbers are needed
     +-- ConfigError (ValueError)         a configuration file or option is invalid
     +-- AccessError (PermissionError)    the model does not grant the access a probe needs
     +-- QueryBudgetExceeded              a query budget would be exceeded
     +-- LoadError (OSError)              a model or data file cannot be read
     |    +-- UnsafeFileError             loading the file would run untrusted code
     +-- RemoteModelError (OSError)       a remote prediction endpoint failed or answered badly

The CLI prints any `BastionError` as one line and exits with status 2; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "BastionError",
    "BoundsError",
    "ConfigError",
    "LoadError",
    "NonFiniteError",
    "QueryBudgetExceeded",
    "RemoteModelError",
    "ShapeError",
    "UnsafeFileError",
    "ValidationError",
]


class BastionError(Exception):
    """Root of every error bastion raises deliberately."""


class ValidationError(BastionError, ValueError):
    """An argument or an input is not what was expected; the message names both."""


class ShapeError(ValidationError):
    """An array has the wrong shape or rank."""


class BoundsError(ValidationError):
    """Input values lie outside the declared input bounds."""


class NonFiniteError(ValidationError):
    """An array holds NaN or infinity."""


class ConfigError(BastionError, ValueError):
    """A configuration file or option is invalid."""


class AccessError(BastionError, PermissionError):
    """The model does not grant the access (labels, scores, gradients) that a probe needs."""


class QueryBudgetExceeded(BastionError):
    """Answering would take the model past its query budget; no query was made."""


class LoadError(BastionError, OSError):
    """A model or data file is missing, unreadable, or not in the expected format."""


class UnsafeFileError(LoadError):
    """Loading the file would deserialize untrusted code (a pickle) without consent."""


class RemoteModelError(BastionError, OSError):
    """A remote prediction endpoint timed out, failed, or answered in an unexpected shape."""
