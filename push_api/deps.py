"""The collaborators of this API process (built by dispatcher.bootstrap in create_app)."""

from __future__ import annotations

from flask import current_app

from dispatcher.bootstrap import Pushbox


def deps() -> Pushbox:
    return current_app.extensions["pushbox"]
