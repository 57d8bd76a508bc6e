"""Password hashes carried over from the FastAPI backend (CONTRACT §5.2).

Its users' hashes are argon2id PHC strings (`$argon2id$…`) or bcrypt (`$2a$`/`$2b$`/`$2y$…`).
`django_hash_of` gives them the `algorithm$` prefix Django's hashers expect (accounts.User does
it when checking a password), so those users log in and their password is then re-hashed with
the preferred hasher. passlib, which the FastAPI backend used, hashed only the first 72 bytes
of a bcrypt password; LegacyBCryptPasswordHasher does the same where bcrypt 5 would raise.

Every hasher here hashes through `password_hashing`: Django's, as PASSWORD_HASHERS names them.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bcrypt
import structlog
from django.conf import settings
from django.contrib.auth import hashers
from django.db import connection
from django.utils.crypto import constant_time_compare

from accounts.exceptions import SignInBusy

BCRYPT_MAX_BYTES = 72
logger = structlog.get_logger("lia.accounts")
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def django_hash_of(stored: str) -> str | None:
    """The Django form (`bcrypt$$2b$…`, `argon2$argon2id$…`) of a FastAPI-era hash, or None."""
    if stored.startswith(BCRYPT_PREFIXES):
        return "bcrypt$" + stored
    if stored.startswith("$argon2id$"):
        return "argon2" + stored
    return None


def _bcrypt_verify(password: str, hashed: str) -> bool:
    candidate = bcrypt.hashpw(password.encode()[:BCRYPT_MAX_BYTES], hashed.encode())
    return constant_time_compare(candidate, hashed.encode())


_hashing_slots: threading.BoundedSemaphore | None = None
_hashing_slots_lock = threading.Lock()
_hashing = threading.local()  # whether this thread holds a slot (PBKDF2's verify calls encode)


def _slots() -> threading.BoundedSemaphore:
    global _hashing_slots
    with _hashing_slots_lock:
        if _hashing_slots is None:
            _hashing_slots = threading.BoundedSemaphore(max(1, settings.PASSWORD_HASH_CONCURRENCY))
        return _hashing_slots


@contextmanager
def password_hashing() -> Iterator[None]:
    """Around every password hash (a login's check, a sign-up's, the dummy one for an unknown
    email): at most PASSWORD_HASH_CONCURRENCY at a time in this process, and none holding a
    pooled database connection. An Argon2 hash takes 0.4 s on 8 lanes (threads) and 100 MB; a
    burst of sign-ins, each on a request thread of its own, hashed side by side (20 at once were
    2 GB in one process), each holding the connection its user's lookup took while they shared
    the CPU, until the pool ran dry: other users' requests, chat turns included, got 503 after
    the pool's timeout (an audit: 40 logins at once, 20 got 503, and so did another user's
    history). Outside a transaction the connection goes back to the pool first (the request
    takes one again for its next query)."""
    if getattr(_hashing, "held", False):
        yield
        return
    if getattr(connection, "pool", None) is not None and not connection.in_atomic_block:
        connection.close()
    slots = _slots()
    # Bounded: a burst larger than the server hashes in PASSWORD_HASH_WAIT_SECONDS is told to come
    # back (503, Retry-After) instead of queueing a thread each, for clients long gone.
    if not slots.acquire(timeout=settings.PASSWORD_HASH_WAIT_SECONDS):
        logger.warning("auth.hashing_busy", waited=settings.PASSWORD_HASH_WAIT_SECONDS)
        raise SignInBusy()
    _hashing.held = True
    try:
        yield
    finally:
        _hashing.held = False
        slots.release()


class GatedHashing:
    """A hasher whose hashes go through `password_hashing`."""

    def encode(self, *args: Any, **kwargs: Any) -> str:
        with password_hashing():
            return super().encode(*args, **kwargs)  # type: ignore[misc]

    def verify(self, *args: Any, **kwargs: Any) -> bool:
        with password_hashing():
            return super().verify(*args, **kwargs)  # type: ignore[misc]


class Argon2PasswordHasher(GatedHashing, hashers.Argon2PasswordHasher):
    pass


class PBKDF2PasswordHasher(GatedHashing, hashers.PBKDF2PasswordHasher):
    pass


class BCryptSHA256PasswordHasher(GatedHashing, hashers.BCryptSHA256PasswordHasher):
    pass


class LegacyBCryptPasswordHasher(GatedHashing, hashers.BCryptPasswordHasher):
    """`bcrypt$$2b$…` hashes, checked on the password's first 72 bytes as passlib did."""

    def verify(self, password: str, encoded: str) -> bool:
        algorithm, hashed = encoded.split("$", 1)
        with password_hashing():
            return algorithm == self.algorithm and _bcrypt_verify(password, hashed)
