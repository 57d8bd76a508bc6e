"""Settings for Lia served by a real server in the live-server and fault tests (lia.testing).

The test settings (fixed keys, fast hashing, no HTTPS redirect, providers without real keys),
except for the values each live server is started with through the environment that
`lia.testing.servers.LiveLia` controls completely: the LLM providers (pointed at the test's
FakeLLMServer), the rate limits and their Redis cool-down, the cache key prefix (shared by the
workers of one test, unique per test) and the health-check timeout. DATABASE_URL and REDIS_URL
come from the environment as everywhere.
"""

from .base import LLM_PROVIDERS as ENV_LLM_PROVIDERS
from .base import env
from .test import *  # noqa: F403
from .test import CACHES, REDIS_URL

LLM_PROVIDERS = {
    "gemini": ENV_LLM_PROVIDERS["gemini"],
    "openai": ENV_LLM_PROVIDERS["openai"],
    "offline": {"BACKEND": "llm.providers.offline.OfflineProvider", "OPTIONS": {"DELAY_MS": 1, "THOUGHTS": False}},
}

# Generous provider timeouts: these servers start cold on a busy CI machine, and their tests
# are about Lia's dependencies, not about slow providers (llm's own tests cover those).
LLM_FIRST_TOKEN_TIMEOUT = 30.0
LLM_IDLE_TIMEOUT = 30.0
LLM_TOTAL_TIMEOUT = 120.0

RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE = env.int("RATE_LIMIT_AUTH_REQUESTS_PER_MINUTE", default=10)
RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE = env.int("RATE_LIMIT_CHAT_REQUESTS_PER_MINUTE", default=20)
RATE_LIMIT_REDIS_RETRY_SECONDS = env.float("RATE_LIMIT_REDIS_RETRY_SECONDS", default=30.0)
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=5.0)
CHAT_SWEEP_IN_SERVER = env.bool("CHAT_SWEEP_IN_SERVER", default=True)  # as in production

if REDIS_URL:
    CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default=CACHES["default"]["KEY_PREFIX"])
