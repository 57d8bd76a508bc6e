#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lia.settings.base")
    # manage.py is the development entry point: DEBUG unless the environment says otherwise;
    # but not for `serve`, the production server (as the ASGI entry point has no such default):
    # it needs DJANGO_DEBUG=true said out loud to run with development secrets. Its --help serves
    # nothing (found by an audit: it asked for the production secrets, with a traceback).
    if sys.argv[1:2] != ["serve"] or {"-h", "--help"} & set(sys.argv[2:]):
        # A DJANGO_DEBUG in .env counts as the environment's, as the settings read it: read here
        # first, or the default below would win over it (found by an audit: DJANGO_DEBUG=false in
        # .env, and every command but serve ran in development mode).
        import environ

        dotenv = Path(__file__).resolve().parent / ".env"
        if dotenv.is_file():
            environ.Env.read_env(dotenv)  # never overrides the environment, as in the settings
        os.environ.setdefault("DJANGO_DEBUG", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
