"""gunicorn settings for push_api: gevent workers, so that long-polling syncs wait on
greenlets instead of tying up threads."""

import os

worker_class = "gevent"
workers = int(os.environ.get("PUSH_API_WORKERS", "1"))
worker_connections = int(os.environ.get("PUSH_API_WORKER_CONNECTIONS", "10000"))
timeout = 60
graceful_timeout = 10
keepalive = 75
accesslog = None
