"""ASGI entry point: `daphne lia.asgi:application`.

Django is set up before anything imports models (the order cookiecutter-django uses). Collected
static files (the admin's; `manage.py collectstatic`, done in the Docker image) are served in
front of Django by servestatic, without entering the middleware stack.
"""

import os
from pathlib import Path

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lia.settings.base")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

application = django_application
if Path(settings.STATIC_ROOT).is_dir():
    application = ServeStaticASGI(django_application, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
