from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from health import views

# csrf_exempt: they answer GET only, so any other method gets the JSON 405 (not a CSRF 403).
urlpatterns = [
    path("health", csrf_exempt(views.health), name="health"),
    path("health/live", csrf_exempt(views.live), name="health-live"),
    path("health/ready", csrf_exempt(views.ready), name="health-ready"),
]
