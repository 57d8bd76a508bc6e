"""CPU per call of an LLM adapter, in-process, with the provider fake in its own process:
`python -m bench.adapter_cpu [--calls 300]`. Less noisy than the end-to-end benchmark for
before/after comparisons of llm/ changes (it counts this process's CPU time only)."""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from bench.server import ROOT

SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number"}},
    "required": ["score"],
    "additionalProperties": False,
}


async def measure(calls: int, provider_name: str, model: str) -> dict[str, float]:
    from llm import ChatMessage, ChatOptions, resolve_provider

    provider = resolve_provider(provider_name, model).provider
    messages = [ChatMessage("user", "Hello there!")]
    options = ChatOptions(model=model, system_prompt="You are Lia.")

    async def stream() -> None:
        async for _ in provider.stream(messages, options):
            pass

    async def json_call() -> None:
        await provider.complete_json(messages, options, SCHEMA)

    results = {}
    for label, call in (("stream_cpu_ms", stream), ("json_cpu_ms", json_call)):
        for _ in range(20):  # warm-up: client, connection pool
            await call()
        started = time.process_time()
        for _ in range(calls):
            await call()
        results[label] = round((time.process_time() - started) / calls * 1000, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--provider", default="openai", choices=["openai", "gemini"])
    args = parser.parse_args()
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.fake", "--chunks", str(args.chunks), "--delay", "0"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        urls = json.loads(fake.stdout.readline() if fake.stdout else b"{}")
        os.environ["DJANGO_SETTINGS_MODULE"] = "lia.settings.test"
        import django

        django.setup()
        from django.conf import settings

        settings.LLM_PROVIDERS = {
            "openai": {
                "BACKEND": "llm.providers.openai.OpenAIProvider",
                "API_KEY": "sk-bench",
                "KEY_REQUIRED": True,
                "BASE_URL": urls["openai_base_url"],
            },
            "gemini": {
                "BACKEND": "llm.providers.gemini.GeminiProvider",
                "API_KEY": "g-bench",
                "KEY_REQUIRED": True,
                "BASE_URL": urls["url"],
                "OPTIONS": {},
            },
        }
        model = "gpt-4o-mini" if args.provider == "openai" else "gemini-2.5-flash"
        print(json.dumps(asyncio.run(measure(args.calls, args.provider, model))))
    finally:
        if fake.stdin:
            fake.stdin.close()
        fake.wait(10)


if __name__ == "__main__":
    main()
