from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm

from accounts.models import RevokedToken, User


class LiaUserCreationForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "username")


class LiaUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
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


@admin.register(RevokedToken)
class RevokedTokenAdmin(admin.ModelAdmin):
    list_display = ("jti", "user", "revoked_at", "expires_at")
    search_fields = ("jti", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("jti", "user", "revoked_at", "expires_at")
