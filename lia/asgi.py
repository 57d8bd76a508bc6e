"""ASGI entry point: `daphne lia.asgi:application`.

Django is set up before anything imports models (the order cookiecutter-django uses), then
static files are served in front of it without entering Django.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lia.settings.base")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from servestatic import ServeStaticASGI  # noqa: E402

application = ServeStaticASGI(django_application, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
