"""Single sign-on pages: start at a tenant's provider (by tenant or by email), the callback,
and linking a signed-in local account. Thin: the rules are in ``flow`` and ``services``."""

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from identity import selectors
from identity.flow import SignInFailed, sign_in_start, sign_in_verify
from identity.services import SignInRefused, sign_in_apply

SESSION_PROVIDER_KEY = "sso_provider_id"
BACKEND = "identity.backends.PasswordPolicyBackend"


def _page(request, title: str, message: str, status: int):
    return render(
        request, "authserver/message.html", {"title": title, "message": message}, status=status
    )


def _no_provider(request):
    return _page(
        request,
        "No single sign-on here",
        "This tenant has no identity provider turned on. Sign in with your password.",
        404,
    )


def _start(request, provider, *, next_url: str, link_user=None):
    try:
        return sign_in_start(request, provider, next_url=next_url, link_user=link_user)
    except SignInFailed as failure:
        return _page(request, failure.title, failure.message, failure.status)


@require_GET
def start(request, tenant: str):
    """Off to the tenant's provider; back at ``next`` once signed in."""
    provider = selectors.provider_for_tenant(tenant_slug=tenant)
    if provider is None:
        return _no_provider(request)
    return _start(request, provider, next_url=request.GET.get("next", ""))


@require_POST
def start_by_email(request):
    """The sign-in page's "Sign in with your company account": the provider by email domain."""
    email = request.POST.get("email", "")
    provider = selectors.provider_for_email(email=email) if "@" in email else None
    if provider is None:
        return _page(
            request,
            "No single sign-on for this address",
            f"No tenant signs in {email or 'this address'} through its identity provider. "
            "Go back and sign in with your password.",
            404,
        )
    return _start(request, provider, next_url=request.POST.get("next", ""))


@login_required
@require_http_methods(["GET", "POST"])
def link(request, tenant: str):
    """A signed-in local account asks to sign in through the tenant's provider from now on:
    GET asks, POST goes to the provider; its answer links the account it names."""
    provider = selectors.provider_for_tenant(tenant_slug=tenant)
    if provider is None:
        return _no_provider(request)
    if request.method == "GET":
        return render(request, "identity/link.html", {"provider": provider})
    return _start(request, provider, next_url="/dashboard/", link_user=request.user)


@require_GET
def callback(request, tenant: str):
    provider = selectors.provider_for_tenant(tenant_slug=tenant)
    if provider is None:
        return _no_provider(request)
    try:
        verified = sign_in_verify(request, provider)
    except SignInFailed as failure:
        return _page(request, failure.title, failure.message, failure.status)
    link_user = None
    if verified.link_user_id is not None:
        if request.user.pk != verified.link_user_id:
            return _page(
                request,
                "Sign in again to link",
                "The account that asked for this link is no longer signed in here.",
                400,
            )
        link_user = request.user
    try:
        outcome = sign_in_apply(provider=provider, claims=verified.claims, link_user=link_user)
    except SignInRefused as refusal:
        return _page(request, refusal.title, refusal.message, 403)
    login(request, outcome.user, backend=BACKEND)
    request.session[SESSION_PROVIDER_KEY] = provider.pk
    return redirect(verified.next_url)
