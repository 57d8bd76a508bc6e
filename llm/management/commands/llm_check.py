import argparse
import asyncio
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from llm.catalogue import default_model
from llm.exceptions import LLMError
from llm.interface import ChatMessage, ChatOptions, Finish, TextDelta, ThoughtDelta
from llm.registry import is_configured, offline_fallback_enabled, provider_configs, resolve_provider

DEFAULT_PROMPT = "Say hello in one short sentence."
HEADINGS = {ThoughtDelta: "  thinking: ", TextDelta: "  reply: "}


def _positive(value: str) -> int:
    # ArgumentTypeError, not ValueError: argparse said "invalid _positive value: '0'", naming this
    # function (found by an audit).
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


class Command(BaseCommand):
    help = (
        "Stream a reply from each configured LLM provider (or --provider NAME) and print the latency "
        "to the first token and tokens/s. Exits non-zero if any provider fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", action="append", dest="providers", metavar="NAME", help="repeatable")
        parser.add_argument("--model", help="default: the provider's first catalogued model")
        parser.add_argument("--prompt", default=DEFAULT_PROMPT)
        parser.add_argument("--max-tokens", type=_positive, default=256)

    def handle(self, *args: Any, **options: Any) -> None:
        configs = provider_configs()
        names = options["providers"]
        # What a server in this environment would do differs by mode (README "LLM providers").
        mode = "development (DJANGO_DEBUG=true)" if settings.DEBUG else "production"
        fallback = "key-less providers answered offline" if offline_fallback_enabled() else "no offline fallback"
        self.stdout.write(f"Settings: {mode}, {fallback}.")
        if names:
            unknown = [name for name in names if name not in configs]
            if unknown:
                raise CommandError(f"Unknown provider(s): {', '.join(unknown)}. Known: {', '.join(configs)}.")
        else:
            names = [name for name, config in configs.items() if is_configured(config)]
            for name in configs:
                if name not in names:
                    self.stdout.write(f"{name}: skipped (no API key)")
        failures = asyncio.run(self._check_all(names, options))
        summary = f"{len(names)} provider(s) checked, {len(names) - failures} ok"
        default = settings.DEFAULT_LLM_PROVIDER
        checked_all = not options["providers"]
        if (
            checked_all
            and default in configs
            and not is_configured(configs[default])
            and not offline_fallback_enabled()
        ):
            # Found by an audit: "1 ok" (the offline provider) while every turn failed.
            self.stdout.write(
                self.style.ERROR(
                    f"{default}: FAILED: the default provider has no API key; every chat turn sent to it fails"
                )
            )
            failures += 1
            summary += ", the default provider unusable"
        if failures:
            raise CommandError(f"{summary}, {failures} failed")
        self.stdout.write(self.style.SUCCESS(summary))

    async def _check_all(self, names: list[str], options: dict[str, Any]) -> int:
        failures = 0
        for name in names:
            if not await self._check(name, options):
                failures += 1
        return failures

    async def _check(self, name: str, options: dict[str, Any]) -> bool:
        model = options["model"] or default_model(name) or ""
        label = f"{name} ({model or 'no model'})"
        if not model:
            self.stdout.write(self.style.ERROR(f"{label}: FAILED: no model; pass --model"))
            return False
        chat = ChatOptions(model=model, max_tokens=options["max_tokens"])
        started = time.perf_counter()
        first: float | None = None
        pieces = 0
        finish: Finish | None = None
        previous: type | None = None
        try:
            resolved = resolve_provider(name, model, offered_only=False)  # the operator's choice
            served = f", served by {resolved.served_by}" if resolved.served_by != name else ""
            self.stdout.write(f"{label}{served}:")
            async for delta in resolved.provider.stream([ChatMessage("user", options["prompt"])], chat):
                if first is None:
                    first = time.perf_counter()
                kind = type(delta)
                if kind is not previous and kind in HEADINGS:
                    self.stdout.write(("\n" if previous else "") + HEADINGS[kind], ending="")
                    previous = kind
                if isinstance(delta, ThoughtDelta):
                    self.stdout.write(self.style.NOTICE(delta.text), ending="")
                elif isinstance(delta, TextDelta):
                    pieces += 1
                    self.stdout.write(delta.text, ending="")
                elif isinstance(delta, Finish):
                    finish = delta
                self.stdout.flush()
        except LLMError as error:
            self.stdout.write("")
            self.stdout.write(self.style.ERROR(f"{label}: FAILED: {type(error).__name__}: {error}"))
            return False
        ended = time.perf_counter()
        tokens = (finish.usage.completion_tokens if finish and finish.usage else None) or pieces
        first = first or ended
        rate = tokens / (ended - first) if ended > first else float("inf")
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"{label}: ok, first token {1000 * (first - started):.0f} ms, {tokens} tokens in "
                f"{ended - started:.2f} s ({rate:.1f} tokens/s), finish {finish.finish_reason if finish else '?'}"
            )
        )
        return True
