"""The admin's delete confirmation for objects with many dependants (a user's or a conversation's
messages): Django's page loads and lists every object the deletion takes with it, so a user with
20 000 messages was a 780 KB page of "Message: user #…" lines and 20 000 objects loaded in the
request (found by an audit). Here the dependants that have no admin page of their own and that
nothing else refers to are counted, with one query per batch, and shown in the summary only."""

from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.utils import NestedObjects, quote
from django.db import router
from django.db.models import Model, QuerySet
from django.db.models.deletion import Collector
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

# What the confirmation page shows: the nested list, the count per kind, the missing delete
# permissions, the protected objects (Django's get_deleted_objects).
Deletion = tuple[list[Any], dict[str, int], set[str], list[Any]]


class CountingCollector(NestedObjects):
    def __init__(self, *args: Any, admin_site: AdminSite, counted: tuple[type[Model], ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admin_site = admin_site
        self.counted = counted  # registered models counted all the same (DeletionCountsDependants)

    def can_fast_delete(self, objs: Any, from_field: Any = None) -> bool:
        # NestedObjects loads everything (it lists it); these are left as querysets, as the
        # deletion itself leaves them (Collector's own rule: no signals, nothing refers to them).
        if isinstance(objs, type):  # a model: its objects that refer to those collected
            model = objs
        elif isinstance(objs, QuerySet):
            model = objs.model
        else:
            return False
        countable = model in self.counted or not self.admin_site.is_registered(model)
        return countable and Collector.can_fast_delete(self, objs, from_field)


def deleted_objects(
    objs: Any, request: HttpRequest, admin_site: AdminSite, counted: tuple[type[Model], ...] = ()
) -> Deletion:
    """django.contrib.admin.utils.get_deleted_objects, with CountingCollector."""
    if not objs:
        return [], {}, set(), []
    collector = CountingCollector(
        using=router.db_for_write(objs[0]._meta.model), origin=objs, admin_site=admin_site, counted=counted
    )
    collector.collect(objs)
    perms_needed: set[str] = set()

    def format_callback(obj: Model) -> str:
        opts = obj._meta
        no_edit_link = f"{capfirst(opts.verbose_name)}: {obj}"
        if not admin_site.is_registered(type(obj)):
            return no_edit_link
        if not admin_site.get_model_admin(type(obj)).has_delete_permission(request, obj):
            perms_needed.add(str(opts.verbose_name))
        try:
            url = reverse(f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change", None, (quote(obj.pk),))
        except NoReverseMatch:
            return no_edit_link
        return format_html('{}: <a href="{}">{}</a>', capfirst(opts.verbose_name), url, obj)

    to_delete = collector.nested(format_callback)
    protected = [format_callback(obj) for obj in collector.protected]
    model_count = {str(model._meta.verbose_name_plural): len(found) for model, found in collector.model_objs.items()}
    for fast_delete in collector.fast_deletes:
        name = str(fast_delete.model._meta.verbose_name_plural)
        model_count[name] = model_count.get(name, 0) + fast_delete.count()
    return to_delete, {name: count for name, count in model_count.items() if count}, perms_needed, protected


class DeletionCountsDependants:
    """A ModelAdmin whose delete confirmation counts the dependants it doesn't list."""

    admin_site: AdminSite
    # Registered models whose rows go with the objects deleted, counted rather than listed and
    # checked one by one: those their own admin never deletes (the revoked-token denylist).
    counted_dependants: tuple[type[Model], ...] = ()

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Deletion:
        return deleted_objects(objs, request, self.admin_site, self.counted_dependants)
