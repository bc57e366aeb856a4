"""``manage.py tenant create SLUG`` and ``manage.py tenant add-member SLUG USERNAME``."""

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Membership
from tenants.services import TenantError, member_add, tenant_create, tenant_get


class Command(BaseCommand):
    help = "Create tenants and add members to them."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a tenant")
        create.add_argument("slug")
        create.add_argument("--name", default="")
        add = sub.add_parser("add-member", help="add a user to a tenant (creates the user)")
        add.add_argument("slug")
        add.add_argument("username")
        add.add_argument("--password")
        add.add_argument("--email", default="")
        add.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.MEMBER)

    def handle(self, *args, action, **options):
        try:
            if action == "create":
                tenant = tenant_create(slug=options["slug"], name=options["name"])
                self.stdout.write(f"created tenant {tenant.slug}")
            else:
                membership = member_add(
                    tenant=tenant_get(slug=options["slug"]),
                    username=options["username"],
                    role=options["role"],
                    password=options["password"],
                    email=options["email"],
                )
                self.stdout.write(
                    f"{membership.user.username} is {membership.role} of {membership.tenant.slug}"
                )
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
