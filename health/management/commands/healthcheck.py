import asyncio
import json

from django.core.management.base import BaseCommand, CommandError

from health.probes import probe_cache, probe_database


class Command(BaseCommand):
    help = "Probe the database and the cache as /health does; exit non-zero if the database fails."

    def handle(self, *args: object, **options: object) -> None:
        async def probe_all() -> tuple:
            return await asyncio.gather(probe_database(), probe_cache())

        database, cache = asyncio.run(probe_all())
        for name, result in (("database", database), ("cache", cache)):
            self.stdout.write(f"{name}: {json.dumps(result.as_dict())}")
        if database.status != "healthy":
            raise CommandError("database unhealthy")
        self.stdout.write(self.style.SUCCESS("healthy" if cache.status == "healthy" else "degraded (cache)"))
