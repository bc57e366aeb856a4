"""``manage.py connector create TENANT_SLUG KIND [--slug S] [--mode per_user|shared]``."""

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Connector
from tenants.services import TenantError, connector_create, tenant_get


class Command(BaseCommand):
    help = "Create connectors; prints the connector URL to paste into an MCP client."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a connector in a tenant")
        create.add_argument("tenant")
        create.add_argument("kind")
        create.add_argument("--slug", default="")
        create.add_argument("--name", default="")
        create.add_argument(
            "--mode", choices=Connector.Mode.values, default=Connector.Mode.PER_USER
        )

    def handle(self, *args, action, **options):
        try:
            connector = connector_create(
                tenant=tenant_get(slug=options["tenant"]),
                kind=options["kind"],
                slug=options["slug"],
                mode=options["mode"],
                name=options["name"],
            )
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created connector {connector} ({connector.kind}, {connector.mode})")
        self.stdout.write(connector.url)
