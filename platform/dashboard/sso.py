"""The tenant's single sign-on settings page: a thin face over ``identity.services``."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from identity.mapping import RuleError, rules_as_text, rules_from_text
from identity.models import IdentityProvider
from identity.oidc import redirect_uri_for
from identity.selectors import provider_of
from identity.services import IdentityError, provider_delete, provider_save
from tenants.access import tenant_access


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100)
    issuer = forms.CharField(max_length=300)
    client_id = forms.CharField(max_length=300)
    client_secret = forms.CharField(required=False, widget=forms.PasswordInput)
    scopes = forms.CharField(max_length=300, initial="openid email profile")
    allowed_domains = forms.CharField(required=False, widget=forms.Textarea)
    role_rules = forms.CharField(required=False, widget=forms.Textarea)
    default_role = forms.ChoiceField(choices=IdentityProvider.DefaultRole.choices)
    local_passwords_allowed = forms.BooleanField(required=False)
    enabled = forms.BooleanField(required=False)


def _initial(provider: IdentityProvider | None) -> dict:
    if provider is None:
        return {"local_passwords_allowed": True, "enabled": True, "default_role": "none"}
    return {
        "name": provider.name,
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "scopes": provider.scopes,
        "allowed_domains": "\n".join(provider.allowed_domains),
        "role_rules": rules_as_text(provider.role_rules),
        "default_role": provider.default_role,
        "local_passwords_allowed": provider.local_passwords_allowed,
        "enabled": provider.enabled,
    }


def _render(request, access, form, status=200):
    provider = provider_of(tenant=access.tenant)
    return render(
        request,
        "dashboard/sso.html",
        {
            "tenant": access.tenant,
            "provider": provider,
            "form": form,
            "redirect_uri": redirect_uri_for(access.tenant.slug),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def sso_settings(request, slug: str):
    access = tenant_access(request.user, slug, admin=True)
    if request.method == "GET":
        return _render(
            request, access, ProviderForm(initial=_initial(provider_of(tenant=access.tenant)))
        )
    form = ProviderForm(request.POST)
    if not form.is_valid():
        return _render(request, access, form, status=400)
    data = form.cleaned_data
    try:
        provider_save(
            tenant=access.tenant,
            name=data["name"],
            issuer=data["issuer"],
            client_id=data["client_id"],
            client_secret=data["client_secret"] or None,
            scopes=data["scopes"],
            allowed_domains=data["allowed_domains"].replace(",", "\n").splitlines(),
            role_rules=rules_from_text(data["role_rules"]),
            default_role=data["default_role"],
            local_passwords_allowed=data["local_passwords_allowed"],
            enabled=data["enabled"],
        )
    except (IdentityError, RuleError) as exc:
        form.add_error(None, str(exc))
        return _render(request, access, form, status=400)
    messages.success(request, "Single sign-on saved.")
    return redirect("dashboard-sso", slug=slug)


@login_required
@require_POST
def sso_remove(request, slug: str):
    access = tenant_access(request.user, slug, admin=True)
    provider = provider_of(tenant=access.tenant)
    if provider is not None:
        provider_delete(provider=provider)
        messages.success(request, "Single sign-on removed; members sign in with passwords.")
    return redirect("dashboard-sso", slug=slug)
