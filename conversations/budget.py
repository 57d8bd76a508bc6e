"""The per-user daily token budget (CHAT_DAILY_TOKEN_BUDGET; RELIABILITY 17).

The window is the UTC calendar day, not a rolling 24 hours. A day is what operators budget and
providers bill in, a user can be told exactly when the budget comes back (midnight UTC), and the
check stays one aggregate query: a rolling window would need a second query, over the day's
replies, to find when enough of them age out. The price is that a user may spend up to twice the
budget across a midnight; as a cost cap that is still bounded.

A turn is refused once the day's spending has reached the budget; a turn that starts under it
may end over it (a reply's size is only known when it ends), and the next one is then refused.
"""

import math
from datetime import UTC, timedelta

import structlog
from django.conf import settings
from django.utils import timezone

from conversations.exceptions import TokenBudgetSpent
from conversations.selectors import user_tokens_spent

logger = structlog.get_logger("lia.chat")


def daily_token_budget_check(*, user_id: int) -> None:
    """Raise TokenBudgetSpent (429, with the seconds until midnight UTC) when the user has spent
    today's budget. Costs no query at all when no budget is configured."""
    budget = settings.CHAT_DAILY_TOKEN_BUDGET
    if budget <= 0:
        return
    now = timezone.now()
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    spent = user_tokens_spent(user_id=user_id, since=day_start)
    if spent < budget:
        return
    retry_after = max(1, math.ceil((day_start + timedelta(days=1) - now).total_seconds()))
    logger.warning("ratelimit.rejected", scope="chat_tokens", retry_after=retry_after, spent=spent, budget=budget)
    raise TokenBudgetSpent(retry_after)
