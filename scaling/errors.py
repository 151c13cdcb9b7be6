"""The one exception hierarchy: every error the project raises on purpose derives from :class:`ScalingError`.

A command (:mod:`scaling.cli`) turns one into a single line on stderr and exits with its ``exit_code``:
2 for a usage mistake the user can fix by changing what they typed (:class:`UserError`), 1 for a failure of
the work itself (a diverged loss, an unreadable checkpoint, a full disk). Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class ScalingError(Exception):
    """A failure the message explains; commands exit 1."""

    exit_code = 1


class UserError(ScalingError, ValueError):
    """A usage mistake — a flag, a config field, a file, a task or shape name — whose message names the fix;
    commands exit 2. A ValueError too, so library callers that catch ValueError keep working."""

    exit_code = 2


class Preempted(ScalingError):
    """A run stopped by SIGTERM (or a multi-host preemption notice) after saving its checkpoint; rerunning the
    same command resumes it. Commands exit 75 (EX_TEMPFAIL), which schedulers treat as "requeue"."""

    exit_code = 75
