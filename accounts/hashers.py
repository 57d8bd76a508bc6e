"""Password hashes carried over from the FastAPI backend (CONTRACT §5.2).

Its users' hashes are argon2id PHC strings (`$argon2id$…`) or bcrypt (`$2a$`/`$2b$`/`$2y$…`).
`django_hash_of` gives them the `algorithm$` prefix Django's hashers expect (accounts.User does
it when checking a password), so those users log in and their password is then re-hashed with
the preferred hasher. passlib, which the FastAPI backend used, hashed only the first 72 bytes
of a bcrypt password; LegacyBCryptPasswordHasher does the same where bcrypt 5 would raise.
"""

import bcrypt
from django.contrib.auth.hashers import BCryptPasswordHasher
from django.utils.crypto import constant_time_compare

BCRYPT_MAX_BYTES = 72
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


class LegacyBCryptPasswordHasher(BCryptPasswordHasher):
    """`bcrypt$$2b$…` hashes, checked on the password's first 72 bytes as passlib did."""

    def verify(self, password: str, encoded: str) -> bool:
        algorithm, hashed = encoded.split("$", 1)
        return algorithm == self.algorithm and _bcrypt_verify(password, hashed)
