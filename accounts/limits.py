"""The limits on signing in, wherever it happens (the API's register and login, the admin's login
form): how many attempts an address makes, and how many failed passwords an account takes."""

import hashlib
import ipaddress

import structlog
from django.conf import settings
from django.http import HttpRequest

from accounts.ratelimit import Decision, rate_limit_check, rate_limit_reserve
from accounts.validators import email_text

logger = structlog.get_logger("lia.accounts")

LOGIN_FAILURES_WINDOW_SECONDS = 3600
IPV6_SUBSCRIBER_PREFIX = 64


def address_key(address: str) -> str:
    """The rate-limit key of a client address. IPv6 is counted by its /64: one subscriber's
    network, where a client that has one address has 2^64 of them; an IPv4-mapped IPv6 address
    counts as its IPv4 one. Anything else (a unix socket's peer) counts as itself."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_SUBSCRIBER_PREFIX), strict=False))
    return str(parsed)


def sign_in_attempt(request: HttpRequest) -> Decision:
    """Register and login share one counter per client address (CONTRACT §4.5), the admin's
    login form included: staff passwords are no easier to guess than anyone's."""
    address = getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR", "")
    return rate_limit_check(scope="auth", key=address_key(address), limit=settings.RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE)


def account_key(email: str) -> str:
    """The account an email names, as every login path would find it: NFKC-normalised, as the
    admin's form normalises its username (a full-width `a` in `admin@` still signs in as `admin@`;
    found by a review, each such look-alike had a lock of its own), stripped and case-folded."""
    return email_text(email).strip().lower()


def login_failure_reserve(email: str) -> Decision:
    """Failed logins per account, whichever IPs they come from (RELIABILITY 11): past the limit an
    hour, the account's logins are refused without checking the password, so guessing is
    capped at RATE_LIMIT_LOGIN_FAILURES_PER_HOUR an hour. Each login is counted as a failure
    before its password is checked, in the same atomic step as the check (concurrent guesses all
    passed a look made before any of them failed); the caller refunds it (`rate_limit_refund`)
    if it succeeds or fails for another reason. Unknown emails are counted the same way (their
    answers must not differ). The key is a digest: no email address in the rate-limit store."""
    decision = rate_limit_reserve(
        scope="login-failures",
        key=hashlib.sha256(account_key(email).encode()).hexdigest()[:32],
        limit=settings.RATE_LIMIT_LOGIN_FAILURES_PER_HOUR,
        window=LOGIN_FAILURES_WINDOW_SECONDS,
    )
    if not decision.allowed:
        logger.warning("security.login_locked", retry_after=decision.retry_after)
    return decision
