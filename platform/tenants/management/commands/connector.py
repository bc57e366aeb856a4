"""``manage.py connector create TENANT_SLUG KIND [--slug S] [--mode per_user|shared] [...]``.

Every setting of every installed kind's settings schema is an option (``upstream_url`` is
``--upstream-url``), e.g. ``connector create acme remote_mcp --upstream-url URL
--upstream-auth header --header-name X-API-Key``; the kind's schema checks the values.
``manage.py connector list [TENANT_SLUG]`` lists connectors.
"""

from django.core.management.base import BaseCommand, CommandError

from connectors.base import BooleanSetting, all_kinds
from tenants.models import Connector
from tenants.services import TenantError, connector_create, tenant_get


def _settings_options() -> dict[str, object]:
    """Each setting name of the installed kinds, with one of its Setting objects."""
    options = {}
    for kind in all_kinds().values():
        for setting in kind.settings_schema.fields:
            options.setdefault(setting.name, setting)
    return options


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
        for name, setting in _settings_options().items():
            create.add_argument(
                "--" + name.replace("_", "-"),
                dest=f"setting_{name}",
                default=None,
                metavar="true|false" if isinstance(setting, BooleanSetting) else "VALUE",
                help=setting.help or setting.title,
            )
        listing = sub.add_parser("list", help="list connectors (of one tenant, or all)")
        listing.add_argument("tenant", nargs="?")

    def handle(self, *args, action, **options):
        if action == "list":
            return self._list(options["tenant"])
        settings = {}
        for key, value in options.items():
            if not key.startswith("setting_") or value is None:
                continue
            name = key.removeprefix("setting_")
            if isinstance(_settings_options()[name], BooleanSetting):
                if value.lower() not in ("true", "false"):
                    raise CommandError(f"--{name.replace('_', '-')} takes true or false")
                value = value.lower() == "true"
            settings[name] = value
        try:
            connector = connector_create(
                tenant=tenant_get(slug=options["tenant"]),
                kind=options["kind"],
                slug=options["slug"],
                mode=options["mode"],
                name=options["name"],
                settings=settings,
            )
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created connector {connector} ({connector.kind}, {connector.mode})")
        self.stdout.write(connector.url)

    def _list(self, tenant_slug: str | None) -> None:
        connectors = Connector.objects.select_related("tenant").order_by("tenant__slug", "slug")
        try:
            if tenant_slug:
                connectors = connectors.filter(tenant=tenant_get(slug=tenant_slug))
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        for c in connectors:
            state = "enabled" if c.enabled else "disabled"
            self.stdout.write(f"{c}\t{c.kind}\t{c.mode}\t{state}\t{c.url}")
