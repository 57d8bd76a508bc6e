from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from health import views

# Read-only probes: Django's CSRF check (there for the admin's forms) would answer an unknown
# method with a 403 instead of the 405 every other route gives.
urlpatterns = [
    path("health", csrf_exempt(views.health), name="health"),
    path("health/live", csrf_exempt(views.live), name="health-live"),
    path("health/ready", csrf_exempt(views.ready), name="health-ready"),
]
