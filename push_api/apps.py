"""POST /v1/apps: the admin creates an app and receives its keys (shown only once)."""

from flask.views import MethodView
from flask_smorest import Blueprint

from device_registry import services
from push_api.auth import require_admin
from push_api.deps import deps
from push_api.schemas import AppIn, AppOut

blp = Blueprint("apps", __name__, url_prefix="/v1", description="Apps (admin token)")


@blp.route("/apps")
class Apps(MethodView):
    @blp.arguments(AppIn())
    @blp.response(201, AppOut)
    @blp.alt_response(401, description="missing or wrong admin token")
    @blp.alt_response(403, description="a valid token that is not the admin token")
    def post(self, body: dict):
        """Create an app; its app key and server key are returned once and stored hashed."""
        require_admin()
        return services.add_app(body["name"], store=deps().store)
