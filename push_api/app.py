"""create_app(settings): the Flask app, its API docs and its collaborators."""

from __future__ import annotations

import logging
import os
import socket

from flask import Flask
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from dispatcher.bootstrap import bootstrap
from push_api import (
    app_settings,
    apps,
    campaigns,
    console,
    devices,
    errors,
    health,
    metrics,
    notifications,
    stream,
)
from pushbox_core.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("pushbox")
    app.config.update(
        API_TITLE="Pushbox",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
    )
    # nginx sets X-Forwarded-For; the address it saw is the client's
    # and X-Forwarded-Proto: https when it terminated TLS (the console's cookie is
    # then Secure)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    api = Api(app)
    for blp in (
        health.blp,
        apps.blp,
        app_settings.blp,
        devices.blp,
        notifications.blp,
        campaigns.blp,
    ):
        api.register_blueprint(blp)
    app.config["SOCK_SERVER_OPTIONS"] = stream.SERVER_OPTIONS
    app.register_blueprint(stream.blp)  # a WebSocket: not in the OpenAPI document
    app.register_blueprint(metrics.blp)
    metrics.count_requests(app)
    console.register(app, settings)
    errors.register(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["pushbox"] = bootstrap(settings, role="api")
    instance = os.environ.get("PUSH_INSTANCE_NAME") or f"{socket.gethostname()}:{os.getpid()}"

    @app.after_request
    def name_instance(response):  # which instance answered: for operators and tests
        response.headers["X-Pushbox-Instance"] = instance
        return response

    logging.getLogger("pika").setLevel(logging.WARNING)
    return app
