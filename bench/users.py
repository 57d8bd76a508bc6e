"""Bulk-create benchmark users (`python -m bench.users --count N --prefix P`, under the server's
environment) and print their access tokens as JSON.

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
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lia.settings.base")
    import django

    django.setup()
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


if __name__ == "__main__":
    main()
