"""Errors a user can cause. The CLI prints their message as one line and exits non-zero."""


class TransferlabError(Exception):
    """A problem with the user's data, parameters or environment (not a bug)."""


class DataError(TransferlabError):
    """Missing, unreadable, corrupt or inconsistent data."""


class ConfigError(TransferlabError):
    """A parameter is unknown or has a bad value."""


class MethodRequirementError(TransferlabError):
    """A transfer method was asked to run without the data it needs."""
