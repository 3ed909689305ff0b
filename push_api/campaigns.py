"""Campaign endpoints (server key): create, read, list, cancel. The fan-out runs in
the campaign worker; these only record, queue and read."""

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from dispatcher.campaigns import services
from dispatcher.campaigns.services import CampaignRequest
from push_api.auth import require_server_key
from push_api.campaign_schemas import (
    CampaignCreatedOut,
    CampaignIn,
    CampaignListArgs,
    CampaignListOut,
    CampaignOut,
)
from push_api.deps import deps
from push_api.notifications import IDEMPOTENCY_HEADER

CREATED_OUT = CampaignCreatedOut()  # made once (see push_api.notifications.SENT_OUT)

blp = Blueprint("campaigns", __name__, url_prefix="/v1", description="Campaigns (server key)")


@blp.route("/campaigns")
class Campaigns(MethodView):
    @blp.arguments(CampaignIn())
    @blp.response(202, CampaignCreatedOut)
    @blp.alt_response(413, description="title + body + data over 4,096 bytes")
    @blp.alt_response(503, description="not recorded: a dependency is down")
    def post(self, req: CampaignRequest):
        """A send to an audience, now or at `send_at`: answered at once, whatever the
        audience's size; the fan-out runs in the background. Idempotency-Key as for
        sends."""
        app = require_server_key()
        d = deps()
        return d.idempotency.once(
            app.id,
            request.headers.get(IDEMPOTENCY_HEADER),
            lambda _resend: (
                CREATED_OUT.dump(services.create(app.id, req, c=d.campaigns)),
                202,
            ),
        )

    @blp.arguments(CampaignListArgs, location="query")
    @blp.response(200, CampaignListOut)
    def get(self, args: dict):
        """The app's campaigns, newest first; `next_cursor` fetches the next page."""
        app = require_server_key()
        return services.page(
            app.id, args.get("status"), args["limit"], args.get("cursor"), c=deps().campaigns
        )


@blp.route("/campaigns/<campaign_id>")
class Campaign(MethodView):
    @blp.response(200, CampaignOut)
    @blp.alt_response(404, description="no such campaign in this app")
    def get(self, campaign_id: str):
        """Where the campaign stands: status, targets, published, capped, and what
        became of its messages."""
        app = require_server_key()
        return services.get(app.id, campaign_id, c=deps().campaigns)

    @blp.response(200, CampaignOut)
    @blp.alt_response(404, description="no such campaign in this app")
    def delete(self, campaign_id: str):
        """Cancel: before it starts nothing is sent; while it runs it stops after the
        chunk in hand (what was published stays). A finished one is left as it is."""
        app = require_server_key()
        return services.cancel(app.id, campaign_id, c=deps().campaigns)
