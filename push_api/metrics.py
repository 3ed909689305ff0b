"""GET /metrics (Prometheus text for every API process and worker of the stack) and the
request hooks that count every answer by URL rule, method and status.

Who may scrape: a client on the loopback interface, or anyone with the admin token.
The check is here, not in nginx: the app already holds the admin token and compares
it in constant time, and nginx sets X-Forwarded-For to the address it saw (never
passing on the client's own), so `request.remote_addr` is the scraper's address
behind nginx too (ProxyFix, create_app). The API instances listen on loopback only
(docker compose: on the internal network only)."""

from __future__ import annotations

import ipaddress
import time

from flask import Blueprint, Flask, Response, g, request

from push_api.auth import bearer
from push_api.deps import deps
from pushbox_core import metrics
from pushbox_core.errors import Forbidden, PushboxError, Unauthorized
from pushbox_core.keys import same_key

blp = Blueprint("metrics", __name__)

UNMATCHED = "unmatched"  # a URL no rule took (404): one label, not one per URL


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def require_scraper() -> None:
    if _loopback(request.remote_addr):
        return
    admin = deps().settings.admin_token
    if not request.headers.get("Authorization"):
        raise Unauthorized("metrics: send the admin token, or scrape from loopback")
    if not (admin and same_key(bearer(), admin)):
        raise Forbidden("metrics need the admin token")


@blp.route("/metrics")
def scrape():
    require_scraper()
    try:  # counted when scraped: the record is MySQL, wherever the jobs ran
        counts = deps().campaigns.store.counts_by_status()
        metrics.set_campaigns(
            {s: counts.get(s, 0) for s in ("scheduled", "running", "done", "cancelled", "failed")}
        )
    except PushboxError:
        metrics.dependency_failed("mysql")
    return Response(
        metrics.collect(deps().settings.metrics_dir or None), 200, mimetype=metrics.CONTENT_TYPE
    )


def count_requests(app: Flask) -> None:
    """Every answer, counted and timed by the URL rule that took it."""

    @app.before_request
    def start_clock() -> None:
        g.pushbox_started = time.perf_counter()

    @app.after_request
    def count(response):
        rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        metrics.HTTP_REQUESTS.labels(rule, request.method, str(response.status_code)).inc()
        started = g.get("pushbox_started")
        if started is not None:
            seconds = time.perf_counter() - started
            metrics.HTTP_SECONDS.labels(rule, request.method).observe(seconds)
        return response
