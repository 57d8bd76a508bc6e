"""Django's `createsuperuser`, knowing that Lia's emails and usernames are unique whatever their
case: by functional constraints on lower(), which Django's command doesn't recognise, so it let
a taken one through (prompting for the password twice first) to an IntegrityError traceback
(found by an audit, re-running a provisioning `createsuperuser --noinput`). It lives in lia, the
app listed before django.contrib.auth, so it is the one manage.py finds."""

import os
from typing import Any

from django.contrib.auth.management.commands import createsuperuser
from django.core.management.base import CommandError
from django.db import IntegrityError

from accounts.models import User

USERNAME_TAKEN = "Error: That username is already taken."


class Command(createsuperuser.Command):
    # The email (USERNAME_FIELD) is checked as Django checks a unique one: with
    # get_by_natural_key, which matches it case-insensitively.
    username_is_unique = True

    def get_input_data(self, field: Any, message: str, default: Any = None) -> Any:
        value = super().get_input_data(field, message, default)
        if field.name == "username" and value and User.objects.username_taken(value):
            self.stderr.write(USERNAME_TAKEN)
            return None  # asked again
        return value

    def handle(self, *args: Any, **options: Any) -> None:
        username = options.get("username")
        if not username and not options["interactive"]:
            username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        if username and User.objects.db_manager(options["database"]).username_taken(username):
            raise CommandError(USERNAME_TAKEN)
        try:
            super().handle(*args, **options)
        except IntegrityError as error:  # taken meanwhile
            raise CommandError("A user with this email or username already exists.") from error
