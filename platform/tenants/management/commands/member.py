"""``manage.py member list TENANT_SLUG``: a tenant's members (add them with
``tenant add-member``)."""

from django.core.management.base import BaseCommand, CommandError

from tenants.selectors import members_of
from tenants.services import TenantError, tenant_get


class Command(BaseCommand):
    help = "List a tenant's members."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="list a tenant's members")
        listing.add_argument("tenant")

    def handle(self, *args, action, tenant, **options):
        try:
            memberships = members_of(tenant_get(slug=tenant))
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        for membership in memberships:
            user = membership.user
            self.stdout.write(f"{user.username}\t{user.email or '-'}\t{membership.role}")
