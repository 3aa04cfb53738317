"""The one exception type users see.

Every problem caused by the user's input (an unreadable image, a checkpoint that does not match, a config
key that does not exist) is raised as :class:`SwinIRError` with a one-line message that names the problem
and the fix. The CLI prints that line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class SwinIRError(Exception):
    """A user-facing error: ``str(err)`` is one line that says what is wrong and how to fix it."""
