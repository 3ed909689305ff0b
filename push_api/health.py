"""GET /healthz (the process answers) and GET /readyz (its dependencies answer too)."""

import redis
from flask.views import MethodView
from flask_smorest import Blueprint

from push_api.deps import deps
from push_api.errors import RETRY_AFTER_DEPENDENCY_S, body
from pushbox_core.errors import PushboxError

blp = Blueprint("health", __name__, description="Health")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200)
    def get(self):
        """The process is up."""
        return {"status": "ok"}


def _checks() -> dict[str, str]:
    d = deps()
    probes = {
        "mysql": lambda: d.db.query_one("SELECT 1"),
        "rabbitmq": lambda: d.rabbit.call(
            lambda ch: ch.exchange_declare("amq.direct", passive=True), attempts=2
        ),
        "redis": d.redis.ping,
    }
    status = {}
    for name, probe in probes.items():
        try:
            probe()
            status[name] = "ok"
        except (PushboxError, redis.RedisError, OSError):
            status[name] = "down"
    return status


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200)
    @blp.alt_response(503, description="a dependency is down; the body names it")
    def get(self):
        """MySQL, RabbitMQ and Redis all answer."""
        checks = _checks()
        down = [name for name, state in checks.items() if state != "ok"]
        if not down:
            return {"status": "ok", "checks": checks}
        message = f"unavailable: {', '.join(down)}"
        headers = {"Retry-After": str(RETRY_AFTER_DEPENDENCY_S)}
        return body(503, message, "dependency_down", checks=checks), 503, headers
