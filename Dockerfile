# Pushbox application image: push_api (gunicorn + gevent), the dispatcher worker and
# the schema migrations all run from it; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # the source tree in /app comes first on the path, so that paths computed from
    # the packages (mysql/migrations next to pushbox_core) resolve inside /app
    PYTHONPATH=/app

WORKDIR /app

COPY . /app
RUN pip install . \
    && useradd --system --no-create-home --home-dir /app pushbox \
    && mkdir /metrics && chown pushbox /metrics

USER pushbox

# every process writes its metrics under /metrics (a volume shared by the containers)
ENTRYPOINT ["sh", "/app/scripts/container-start.sh"]

EXPOSE 8081

CMD ["gunicorn", "-c", "push_api/gunicorn_conf.py", "--bind", "0.0.0.0:8081", "push_api.wsgi:app"]
