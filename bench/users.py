"""Bulk-create benchmark users (`python -m bench.users --count N --prefix P`, under the server's
environment) and print their access tokens as JSON; or, with `--conversations K` (and no
`--count`), give every user whose name starts with P K past conversations of one finished turn
each, so a level runs against a database with history (`python -m bench --prefill K`).

Registering through the API costs one Argon2 hash (~0.25 s of both cores here) per user, several
minutes for the 1,000-stream level; the runner registers a few users through the API (to prove
that path) and creates the rest here, all sharing one Argon2 hash of the same password, with the
same token issuer the API uses.
"""

import argparse
import json
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--password")
    parser.add_argument("--conversations", type=int, help="past conversations per user (instead of creating users)")
    args = parser.parse_args()
    if (args.count is None) == (args.conversations is None) or (args.count is not None and not args.password):
        parser.error("give either --count and --password, or --conversations")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lia.settings.base")
    import django

    django.setup()
    if args.conversations is not None:
        sys.stdout.write(json.dumps({"conversations": prefill(args.prefix, args.conversations)}))
        return
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from accounts.models import User
    from accounts.tokens import token_issue

    password = make_password(args.password)
    now = timezone.now()
    users = [
        User(email=f"{args.prefix}_{i}@example.com", username=f"{args.prefix}_{i}", password=password, created_at=now)
        for i in range(args.count)
    ]
    created = User.objects.bulk_create(users, batch_size=500)
    if any(user.pk is None for user in created):  # SQLite before 3.35 returns no ids
        created = list(User.objects.filter(username__startswith=f"{args.prefix}_").order_by("pk"))
    sys.stdout.write(json.dumps([token_issue(user=user).value for user in created]))


def prefill(prefix: str, per_user: int) -> int:
    """`per_user` past conversations (a user message and its finished reply each) for every user
    named `prefix*`, spread over the last 30 days; then ANALYZE, as autovacuum would in time."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from conversations.models import Conversation, Message, TurnStatus

    now = timezone.now()
    times = [now - timedelta(days=30) * (i + 1) / (per_user + 1) for i in range(per_user)]
    created = 0
    for user_id in User.objects.filter(username__startswith=prefix).values_list("pk", flat=True):
        conversations = Conversation.objects.bulk_create(
            [
                Conversation(user_id=user_id, title=f"Past conversation {i}", created_at=at, updated_at=at)
                for i, at in enumerate(times)
            ],
            batch_size=1000,
        )
        Message.objects.bulk_create(
            [
                message
                for conversation in conversations
                for message in (
                    Message(
                        conversation=conversation,
                        role=Message.Role.USER,
                        content="What is a good name for a cat?",
                        created_at=conversation.created_at,
                        updated_at=conversation.created_at,
                    ),
                    Message(
                        conversation=conversation,
                        role=Message.Role.ASSISTANT,
                        content="Maybe Miso, Pixel or Biscuit. " * 8,
                        status=TurnStatus.COMPLETE,
                        created_at=conversation.created_at,
                        updated_at=conversation.created_at,
                    ),
                )
            ],
            batch_size=1000,
        )
        created += len(conversations)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return created


if __name__ == "__main__":
    main()
