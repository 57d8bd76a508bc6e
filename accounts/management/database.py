"""What Lia's management commands say when the database can't be reached (accounts', and the
apps' that build on it: accounts may import no other Lia app, so the helper lives here)."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import OperationalError


@contextmanager
def database_required() -> Iterator[None]:
    """A database that can't be reached, or is lost on the way, ends the command with one line
    and a non-zero exit (CommandError), not psycopg's and the pool's hundred-line traceback
    (`--traceback` still shows it)."""
    try:
        yield
    except OperationalError as error:
        raise CommandError(f"database unavailable: {' '.join(str(error).split())}") from error
