"""The calling app (server key): its settings and its FCM / APNs credentials."""

from flask.views import MethodView
from flask_smorest import Blueprint

from dispatcher.platforms import credentials
from push_api.auth import require_server_key
from push_api.deps import deps
from push_api.schemas import ApnsCredentialsIn, AppPatch, AppViewOut, FcmCredentialsIn

blp = Blueprint("app", __name__, url_prefix="/v1", description="The calling app (server key)")


@blp.route("/app")
class App(MethodView):
    @blp.response(200, AppViewOut)
    def get(self):
        """The app, its settings, and which platform credentials are set (never a key)."""
        app = require_server_key()
        return credentials.view_app(app.id, store=deps().store)

    @blp.arguments(AppPatch())
    @blp.response(200, AppViewOut)
    def patch(self, body: dict):
        """Change settings: marketing_cap_per_day, push_content."""
        app = require_server_key()
        return credentials.change_settings(app.id, body["settings"], store=deps().store)


@blp.route("/app/credentials/fcm")
class Fcm(MethodView):
    @blp.arguments(FcmCredentialsIn())
    @blp.response(200, AppViewOut)
    @blp.alt_response(422, description="not a service account key file; the body names why")
    def put(self, body: dict):
        """Set the Firebase service account that sends this app's FCM pushes."""
        app = require_server_key()
        d = deps()
        return credentials.put_fcm(app.id, body["service_account"], store=d.store, sealer=d.sealer)


@blp.route("/app/credentials/apns")
class Apns(MethodView):
    @blp.arguments(ApnsCredentialsIn())
    @blp.response(200, AppViewOut)
    @blp.alt_response(422, description="a field missing, or not a P-256 .p8 key")
    def put(self, body: dict):
        """Set the APNs token-auth key (.p8), team, key id, bundle id and environment."""
        app = require_server_key()
        d = deps()
        return credentials.put_apns(app.id, body, store=d.store, sealer=d.sealer)


@blp.route("/app/credentials/<any(fcm, apns):provider>")
class Credentials(MethodView):
    @blp.response(204)
    def delete(self, provider: str):
        """Remove the app's credentials for that platform: no more pushes through it."""
        app = require_server_key()
        credentials.delete(app.id, provider, store=deps().store)
