"""``manage.py tenant create|list|add-member``: the operator's tenant commands."""

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Membership, Tenant
from tenants.services import TenantError, member_add, tenant_create, tenant_get


class Command(BaseCommand):
    help = "Create and list tenants, add members to them (list them with `member list`)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a tenant")
        create.add_argument("slug")
        create.add_argument("--name", default="")
        sub.add_parser("list", help="list tenants")
        add = sub.add_parser(
            "add-member",
            help="add a user to a tenant (creates the user); an existing user's role, password "
            "or email change only with --update",
        )
        add.add_argument("slug")
        add.add_argument("username")
        add.add_argument("--password")
        add.add_argument("--email", default="")
        add.add_argument("--role", choices=Membership.Role.values, default=None)
        add.add_argument(
            "--update",
            action="store_true",
            help="allow changing an existing user's role, password or email",
        )

    def handle(self, *args, action, **options):
        try:
            getattr(self, "_" + action.replace("-", "_"))(**options)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc

    def _create(self, *, slug, name, **_):
        tenant = tenant_create(slug=slug, name=name)
        self.stdout.write(f"created tenant {tenant.slug}")

    def _list(self, **_):
        for tenant in Tenant.objects.order_by("slug"):
            state = "enabled" if tenant.enabled else "disabled"
            self.stdout.write(f"{tenant.slug}\t{tenant.name}\t{state}")

    def _add_member(self, *, slug, username, role, password, email, update, **_):
        membership = member_add(
            tenant=tenant_get(slug=slug),
            username=username,
            role=role,
            password=password,
            email=email,
            update=update,
        )
        self.stdout.write(
            f"{membership.user.username} is {membership.role} of {membership.tenant.slug}"
        )
