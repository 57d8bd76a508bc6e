from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.database import database_required
from accounts.models import User
from accounts.services import user_sessions_end


class Command(BaseCommand):
    help = (
        "Refuse every token issued so far to the given users (by email), or to everyone with --all. "
        "They can log in again. For a leaked token, a breach, or a password reset that must also end "
        "tokens issued by the FastAPI backend."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("emails", nargs="*", help="Users' email addresses (matched case-insensitively).")
        parser.add_argument("--all", action="store_true", help="End every user's sessions.")

    def handle(self, *args: Any, emails: list[str], all: bool, **options: Any) -> None:
        if all == bool(emails):
            raise CommandError("Give the users' email addresses, or --all (not both).")
        with database_required():
            users = User.objects.all()
            if not all:
                found = {}
                for email in emails:
                    try:
                        found[email] = User.objects.get_by_natural_key(email).pk
                    except User.DoesNotExist:
                        raise CommandError(f"No user with the email {email!r}.") from None
                users = users.filter(pk__in=found.values())
            count = user_sessions_end(users=users)
        self.stdout.write(self.style.SUCCESS(f"Ended the sessions of {count} user(s)."))
