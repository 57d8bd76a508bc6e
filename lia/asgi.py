"""ASGI entry point: `daphne lia.asgi:application`.

Django is set up before anything imports models (the order cookiecutter-django uses). Collected
static files (the admin's; `manage.py collectstatic`, done in the Docker image) are served in
front of Django by servestatic, without entering the middleware stack. On shutdown (SIGTERM),
requests in flight end as if their client had gone away, so open chat streams store their
partial replies before the process exits (lia.shutdown).
"""

import os
from pathlib import Path

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lia.settings.base")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

from lia.shutdown import GracefulShutdown  # noqa: E402

# Within daphne's 10 s application_close_timeout; a stream's own final save gives up at 8 s.
SHUTDOWN_GRACE_SECONDS = 9.0

application = GracefulShutdown(django_application, grace=SHUTDOWN_GRACE_SECONDS)
if Path(settings.STATIC_ROOT).is_dir():
    application = ServeStaticASGI(application, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
