# Lia: multi-stage build, non-root runtime, uvicorn (or daphne: WEB_SERVER) serving the ASGI app.
# docker build -t lia . && docker run -p 8000:8000 --env-file .env lia

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/base.txt /tmp/requirements/base.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements/base.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=lia.settings.base \
    DJANGO_DEBUG=false
RUN useradd --system --uid 10001 --create-home --home-dir /home/lia lia
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=lia:lia . .
# Static files (the admin's) are collected at build time and served by servestatic.
RUN DJANGO_DEBUG=true python manage.py collectstatic --noinput && chown -R lia:lia /app/staticfiles
USER lia
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"
ENTRYPOINT ["bin/docker-entrypoint"]
# One uvicorn worker per CPU core (WEB_WORKERS; WEB_SERVER=daphne for daphne), each on its own
# SO_REUSEPORT socket of port 8000 with a listen backlog of 1024 (README "Performance"). SIGTERM
# stops them all, storing open streams' replies.
CMD ["python", "manage.py", "serve"]
