"""User-facing errors: one plain line, exit code 2, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the user's input (file, field, row or option) rather than a bug.

    The message is shown as it is, on one line, so it must name what is wrong and where.
    """


def exits_cleanly_on_user_error(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a command's main() so a UserError prints one line and exits 2."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper
