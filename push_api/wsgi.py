"""What gunicorn serves: `gunicorn push_api.wsgi:app`."""

from push_api.app import create_app

app = create_app()
