import asyncio
import sys
import time
from datetime import UTC, datetime
from datetime import time as day_start
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts.management.database import database_required
from conversations.models import Conversation, Message
from conversations.rescoring import conversation_rescore_sentiment
from conversations.selectors import parse_conversation_id
from sentiment import METHODS, NLP_API_METHOD, method_configured


def _since(value: str) -> datetime:
    try:
        parsed = parse_datetime(value)
        day = parse_date(value) if parsed is None else None
    except ValueError as error:  # well-formed but impossible, as 2024-13-45: "month must be in 1..12"
        raise CommandError(f"--since: {value!r} is not a valid date or datetime ({error})") from None
    if parsed is None:
        if day is None:
            raise CommandError(f"--since: {value!r} is not a date (YYYY-MM-DD) or a datetime")
        parsed = datetime.combine(day, day_start())
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


class Command(BaseCommand):
    help = (
        "Recompute stored sentiment: the user message of every completed turn of the selected conversations "
        "by a method (default: the method it was scored with, else `local`), then each conversation's "
        "running sentiment. As in the chat, a turn that failed or was interrupted is not counted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--method", choices=METHODS, help="score every message with this method")
        parser.add_argument("--conversation", help="only this conversation (UUID)")
        parser.add_argument("--since", help="only conversations active since this date (YYYY-MM-DD or ISO datetime)")
        parser.add_argument("--batch-size", type=int, default=100, help="conversations read per query (default 100)")

    def handle(self, *args: Any, **options: Any) -> None:
        with database_required():
            self.rescore(**options)

    def rescore(self, **options: Any) -> None:
        conversations = Conversation.objects.order_by("created_at", "id")
        if options["conversation"]:
            conversation_id = parse_conversation_id(options["conversation"])
            if conversation_id is None:
                raise CommandError("--conversation must be a conversation UUID")
            conversations = conversations.filter(pk=conversation_id)
        if options["since"]:
            conversations = conversations.filter(updated_at__gte=_since(options["since"]))
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        total = conversations.count()
        if options["conversation"] and total == 0:
            raise CommandError("no such conversation")
        self.refuse_unconfigured_nlp_api(conversations, options["method"])

        started = time.monotonic()
        messages = fallbacks = skipped = done = 0
        for conversation in conversations.iterator(chunk_size=options["batch_size"]):
            outcome = asyncio.run(conversation_rescore_sentiment(conversation=conversation, method=options["method"]))
            messages += outcome.messages
            fallbacks += outcome.fallbacks
            skipped += outcome.skipped
            done += 1
            self._progress(done, total)
        if total:
            self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Rescored {messages} message(s) in {done - skipped} conversation(s) in "
                f"{time.monotonic() - started:.1f}s; {fallbacks} analysis failure(s) stored as neutral; "
                f"{skipped} conversation(s) changed meanwhile and were left for a next run."
            )
        )

    def refuse_unconfigured_nlp_api(self, conversations: Any, method: str | None) -> None:
        """Without Cloud NL, nlp_api answers every message with the neutral "not configured"
        result: re-scoring with it replaced the stored sentiment of every selected message, and
        each conversation's running sentiment, with neutral (found by an audit)."""
        if method_configured(method or NLP_API_METHOD):  # no --method: each message's own, nlp_api among them
            return
        unconfigured = (
            "Google Cloud Natural Language is not configured here (GOOGLE_NL_API_KEY, "
            "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_NL_API_ENDPOINT), so nlp_api would store the neutral "
            "'not configured' result in place of every sentiment it re-scores"
        )
        if method == NLP_API_METHOD:
            raise CommandError(f"--method nlp_api: {unconfigured}.")
        scored_by_nlp_api = Message.objects.filter(
            conversation__in=conversations, role=Message.Role.USER, sentiment_data__message__source=NLP_API_METHOD
        )
        if scored_by_nlp_api.exists():
            raise CommandError(
                f"Some messages were scored with nlp_api, and {unconfigured}. Configure it, or choose "
                "another method for them with --method."
            )

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if getattr(self.stdout, "isatty", lambda: False)() or sys.stdout.isatty():
            self.stdout.write(f"\r{bar}", ending="")
        elif done == total or done % 50 == 0:
            self.stdout.write(bar)
