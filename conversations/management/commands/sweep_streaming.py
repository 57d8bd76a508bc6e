from typing import Any

from django.core.management.base import BaseCommand

from accounts.management.database import database_required
from conversations.services import streaming_messages_sweep


class Command(BaseCommand):
    help = (
        "Mark replies left 'streaming' by a process that died (their checkpoint heartbeat stopped) "
        "as interrupted. Safe to run at any time; the Docker entry point runs it at start-up."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with database_required():
            count = streaming_messages_sweep()
        self.stdout.write(
            self.style.SUCCESS(f"Marked {count} orphaned streaming repl{'y' if count == 1 else 'ies'} as interrupted.")
        )
