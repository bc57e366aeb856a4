"""``manage.py sso``: an operator's view of tenants' identity providers.

sso set TENANT --name Okta --issuer URL --client-id ID --client-secret-file PATH ...
sso show TENANT
sso remove TENANT
sso link TENANT USERNAME     (the next sign-in with that user's email claims the account)
sso reencrypt                (client secrets under the newest UPSTREAM_ENCRYPTION_KEYS key)
"""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from identity.mapping import RuleError, rules_from_text
from identity.models import IdentityProvider
from identity.selectors import provider_summary
from identity.services import (
    IdentityError,
    identity_link_by_operator,
    provider_delete,
    provider_save,
    providers_reencrypt,
)
from tenants.services import TenantError, tenant_get


class Command(BaseCommand):
    help = "Manage tenants' OpenID Connect identity providers (single sign-on)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        put = sub.add_parser("set", help="add or replace a tenant's provider")
        put.add_argument("tenant")
        put.add_argument("--name", required=True, help='shown as "Sign in with NAME"')
        put.add_argument("--issuer", required=True)
        put.add_argument("--client-id", required=True)
        put.add_argument("--client-secret-file", help="a file holding the client secret")
        put.add_argument("--scopes", default="openid email profile")
        put.add_argument("--domain", action="append", default=[], help="allowed email domain")
        put.add_argument(
            "--rule", action="append", default=[], help="claim=value:role (admin, member, none)"
        )
        put.add_argument("--default-role", choices=["member", "none"], default="none")
        put.add_argument("--no-passwords", action="store_true", help="members sign in only here")
        put.add_argument("--disabled", action="store_true")
        for name in ("show", "remove"):
            sub.add_parser(name).add_argument("tenant")
        link = sub.add_parser("link", help="let a sign-in claim an existing account")
        link.add_argument("tenant")
        link.add_argument("username")
        sub.add_parser("reencrypt")

    def handle(self, *args, action, **options):
        try:
            if action == "reencrypt":
                self.stdout.write(f"re-encrypted {providers_reencrypt()} client secret(s)")
                return
            tenant = tenant_get(slug=options["tenant"])
            if action == "set":
                self._set(tenant, options)
            provider = IdentityProvider.objects.filter(tenant=tenant).first()
            if provider is None:
                raise CommandError(f"tenant {tenant.slug} has no identity provider")
            if action == "remove":
                provider_delete(provider=provider)
                self.stdout.write(f"removed the identity provider of {tenant.slug}")
            elif action == "link":
                user = get_user_model().objects.filter(username=options["username"]).first()
                if user is None:
                    raise CommandError(f"unknown user {options['username']!r}")
                identity_link_by_operator(provider=provider, user=user)
                self.stdout.write(
                    f"{user.username} will be signed in to by the next {provider.name} sign-in "
                    f"with the email {user.email}"
                )
            else:
                self._show(provider)
        except (TenantError, IdentityError, RuleError) as exc:
            raise CommandError(str(exc)) from exc

    def _set(self, tenant, options) -> None:
        secret = None
        if options["client_secret_file"]:
            secret = Path(options["client_secret_file"]).read_text().strip()
        provider_save(
            tenant=tenant,
            name=options["name"],
            issuer=options["issuer"],
            client_id=options["client_id"],
            client_secret=secret,
            scopes=options["scopes"],
            allowed_domains=options["domain"],
            role_rules=rules_from_text("\n".join(options["rule"])),
            default_role=options["default_role"],
            local_passwords_allowed=not options["no_passwords"],
            enabled=not options["disabled"],
        )

    def _show(self, provider: IdentityProvider) -> None:
        self.stdout.write(json.dumps(provider_summary(provider), indent=2))
