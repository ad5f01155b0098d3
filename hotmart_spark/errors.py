"""Errors a user can cause; jobs print them as one line instead of a stack trace."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the input, the config or the command line, explained in one line."""


class NotEnoughData(UserError):
    """The data is too small for a stage to answer its question (no clean rows, a revenue of
    zero, a series too short): the pipeline skips the stage and the ones that need it."""
