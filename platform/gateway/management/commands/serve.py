"""``manage.py serve``: migrate, then serve the whole platform on PUBLIC_URL's port."""

from urllib.parse import urlsplit

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the platform with the embedded default: migrate, then serve web and MCP."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, help="port (default: PUBLIC_URL's port)")

    def handle(self, *args, host, port, **options):
        public = urlsplit(settings.PUBLIC_URL)
        port = port or public.port or (443 if public.scheme == "https" else 80)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write(f"Platform on {settings.PUBLIC_URL} (listening on {host}:{port})")
        self.stdout.write(f"Admin: {settings.PUBLIC_URL}/admin/")
        self.stdout.flush()
        uvicorn.run(
            "config.asgi:application",
            host=host,
            port=port,
            proxy_headers=True,
            log_level="warning",
            lifespan="on",
        )
