"""Refusals: errors whose message already says what is wrong and what to do, led by the key, flag or file.

The command line prints them as one `error: ...` line (exit status 2) instead of a traceback.
"""

from __future__ import annotations


class Refusal(ValueError):
    """A value, file or sample the code refused; the message names it and what was expected."""


class ConfigError(Refusal):
    """A configuration value the code refused; the message leads with its key."""


class DataError(Refusal):
    """A shard or sample that does not hold what the model expects; the message names it."""


class CheckpointError(Refusal):
    """A checkpoint that cannot be used where it was given; the message names the flag, the file and what it
    holds."""


def check_at_least(*checks: tuple[str, int | None, int], why: dict[str, str] | None = None) -> None:
    """Refuse the first (flag, value, least) whose value is below its least, as `--flag value: must be >= least`
    and `why[flag]` (what the least means, or that leaving the flag out gives the default); None is a flag left
    out."""
    for flag, value, least in checks:
        if value is not None and value < least:
            raise ConfigError(f"{flag} {value}: must be >= {least}{(why or {}).get(flag, '')}")
