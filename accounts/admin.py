from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.admin_deletion import DeletionCountsDependants
from accounts.models import RevokedToken, User
from accounts.services import user_deactivate, user_sessions_end


class LiaUserCreationForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "username")


class LiaUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DeletionCountsDependants, DjangoUserAdmin):
    form = LiaUserChangeForm
    add_form = LiaUserCreationForm
    list_display = ("id", "email", "username", "is_active", "is_staff", "created_at", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("email", "username")
    ordering = ("-created_at",)
    readonly_fields = ("created_at", "last_login", "tokens_valid_after")
    fieldsets = (
        (None, {"fields": ("email", "username", "password")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("created_at", "last_login", "tokens_valid_after")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "username", "password1", "password2")}),)
    actions = ["end_sessions"]
    # A user's revoked tokens go with them: their admin deletes no row (that would revive a
    # logged-out token), and listed one by one they made every user who had ever logged out
    # undeletable, a superuser's "permission to delete: revoked token" missing (a 403).
    counted_dependants = (RevokedToken,)
    # Who may do what in the admin. Only superusers grant them, and only superusers change staff
    # accounts: otherwise the change_user permission was a superuser's (its holder ticked
    # is_superuser on their own account, or set a superuser's password and signed in as them).
    privilege_fields = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, *self.privilege_fields)

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return super().has_change_permission(request, obj) and self._may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self._may_manage(request, obj)

    @staticmethod
    def _may_manage(request: HttpRequest, obj: User | None) -> bool:
        return obj is None or request.user.is_superuser or not (obj.is_staff or obj.is_superuser)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            user_deactivate(user=obj)  # its tokens stay refused even if it is reactivated later

    # Staff who may change users, not those who may only look at them (found by an audit).
    @admin.action(description="End all sessions (every token issued so far)", permissions=["change"])
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        if not request.user.is_superuser and queryset.filter(Q(is_staff=True) | Q(is_superuser=True)).exists():
            # As changing them: staff accounts are superusers' to manage (has_change_permission),
            # and ending their sessions signs them out of the admin too.
            self.message_user(request, "Only superusers may end the sessions of staff accounts.", messages.ERROR)
            return
        count = user_sessions_end(users=queryset)
        if queryset.filter(pk=request.user.pk).exists():
            # Their other sessions end; the one acting stays, as after changing their password here.
            request.user.refresh_from_db(fields=["tokens_valid_after"])
            update_session_auth_hash(request, request.user)
        self.message_user(request, f"Ended the sessions of {count} user(s).", messages.SUCCESS)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """A group's permissions are its members': only superusers make, change or delete groups, as
    only they grant permissions to users (UserAdmin). Staff holding change_group through a group
    of theirs gave it every permission (found by a security audit). Viewing is as permitted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_superuser


@admin.register(RevokedToken)
class RevokedTokenAdmin(admin.ModelAdmin):
    """The denylist, to look at only: deleting a row would bring its logged-out token back to
    life (found by an audit), and adding one by hand has no token to name. Rows leave on their
    own once their token has expired; staff end sessions with the users' "End sessions" action."""

    list_display = ("jti", "user", "revoked_at", "expires_at")
    search_fields = ("jti", "user__email")
    readonly_fields = ("jti", "user", "revoked_at", "expires_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RevokedToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RevokedToken | None = None) -> bool:
        return False
