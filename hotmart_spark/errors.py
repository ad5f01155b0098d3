"""Errors a user can cause; jobs print them as one line instead of a stack trace."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the input, the config or the command line, explained in one line."""
