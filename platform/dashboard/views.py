"""Server-rendered dashboard pages. Each view loads what it shows through ``tenants.access``
(404 for outsiders, 403 for members asking for admin actions) and writes through services."""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import password_validators_help_texts
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from oauth2_provider.models import Application

from authserver.selectors import connected_clients
from authserver.services import mcp_client_revoke
from config.proxy import client_address
from connectors.base import declared_tools, get_kind
from dashboard.accounts import emails_print_to_console
from dashboard.forms import (
    AuditFilterForm,
    ConnectorCreateForm,
    ConnectorUpdateForm,
    InviteForm,
    RoleForm,
    TenantCreateForm,
    TenantUpdateForm,
    ToolPolicyForm,
    TraceFilterForm,
)
from events.audit import EXPORT_TYPES, audit_export_lines
from events.selectors import audit_records_of, event_kinds
from events.trace import connect_trace
from tenants import services as tenant_services
from tenants.access import (
    OPERATOR,
    connector_access,
    connector_for,
    tenant_access,
    tenants_visible_to,
)
from tenants.api_keys import api_key_create, api_keys_of
from tenants.api_keys import api_key_revoke as revoke_api_key
from tenants.models import Connector, Invitation, Membership
from tenants.selectors import connector_holds_upstream, invitations_pending, members_of
from tenants.services import TenantError, connector_create, invitation_url, tenant_create
from upstream.health import (
    connector_stats,
    tenant_stats,
    upstream_connections_of,
    upstream_status_counts,
)
from upstream.models import UpstreamConnection
from upstream.services import upstream_connection_disconnect, upstream_connection_for
from upstream.views import upstream_hop_start

__all__ = ["connector_for"]  # kept importable from here for older callers


def _bool(value: str | None) -> bool:
    return value in ("1", "true", "on", "yes")


# --- overview and tenants ---------------------------------------------------------------------


@login_required
@require_GET
def overview(request):
    """Operators see every tenant; everyone else the connectors of their tenants."""
    if request.user.is_superuser:
        return render(
            request,
            "dashboard/overview_operator.html",
            {"tenants": tenant_stats(tenants_visible_to(request.user)), "form": TenantCreateForm()},
        )
    tenants = []
    for tenant in tenants_visible_to(request.user):
        access = tenant_access(request.user, tenant.slug)
        tenants.append(_tenant_context(request, access))
    return render(request, "dashboard/overview.html", {"tenants": tenants})


def _kind_title(slug: str) -> str:
    try:
        return get_kind(slug).title
    except KeyError:  # a kind no longer installed
        return slug


def _tenant_context(request, access) -> dict:
    connectors = list(
        Connector.objects.select_related("tenant").filter(tenant=access.tenant).order_by("slug")
    )
    stats = connector_stats(connectors, user=None if access.manages else request.user)
    rows = [
        {
            "connector": c,
            "stats": stats[c.pk],
            "upstream": upstream_status_counts(stats[c.pk].upstream),
            "kind_title": _kind_title(c.kind),
        }
        for c in connectors
    ]
    return {"tenant": access.tenant, "role": access.role, "manages": access.manages, "rows": rows}


@login_required
@require_POST
def tenant_new(request):
    if not request.user.is_superuser:
        raise PermissionDenied("only operators create tenants")
    form = TenantCreateForm(request.POST)
    if form.is_valid():
        try:
            tenant = tenant_create(slug=form.cleaned_data["slug"], name=form.cleaned_data["name"])
        except TenantError as exc:
            form.add_error("slug", str(exc))
        else:
            messages.success(request, f"Tenant {tenant.name} created.")
            return redirect("dashboard-tenant", slug=tenant.slug)
    return render(
        request,
        "dashboard/overview_operator.html",
        {"tenants": tenant_stats(tenants_visible_to(request.user)), "form": form},
        status=400,
    )


@login_required
@require_GET
def tenant_detail(request, slug: str):
    access = tenant_access(request.user, slug)
    context = _tenant_context(request, access)
    context["connector_form"] = ConnectorCreateForm()
    context["rename_form"] = TenantUpdateForm(initial={"name": access.tenant.name})
    context["is_operator"] = access.role == OPERATOR
    return render(request, "dashboard/tenant.html", context)


@login_required
@require_POST
def tenant_update(request, slug: str):
    access = tenant_access(request.user, slug, admin=True)
    if "enabled" in request.POST:
        if access.role != OPERATOR:
            raise PermissionDenied("only operators turn tenants on and off")
        tenant_services.tenant_update(tenant=access.tenant, enabled=_bool(request.POST["enabled"]))
        state = "enabled" if access.tenant.enabled else "disabled"
        messages.success(request, f"Tenant {access.tenant.name} {state}.")
        return redirect("dashboard-tenant", slug=slug)
    form = TenantUpdateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A tenant needs a name.")
        return redirect("dashboard-tenant", slug=slug)
    tenant_services.tenant_update(tenant=access.tenant, name=form.cleaned_data["name"])
    messages.success(request, "Tenant renamed.")
    return redirect("dashboard-tenant", slug=slug)


@login_required
@require_POST
def connector_new(request, slug: str):
    access = tenant_access(request.user, slug, admin=True)
    form = ConnectorCreateForm(request.POST)
    if form.is_valid():
        try:
            connector = connector_create(
                tenant=access.tenant,
                kind=form.cleaned_data["kind"],
                slug=form.cleaned_data["slug"],
                mode=form.cleaned_data["mode"],
                name=form.cleaned_data["name"],
            )
        except TenantError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Connector {connector.display_name} created.")
            return redirect("dashboard-connector", connector_id=connector.pk)
    context = _tenant_context(request, access)
    context.update(
        connector_form=form,
        rename_form=TenantUpdateForm(initial={"name": access.tenant.name}),
        is_operator=access.role == OPERATOR,
    )
    return render(request, "dashboard/tenant.html", context, status=400)


# --- members ----------------------------------------------------------------------------------


def _members_page(request, access, form, status=200):
    return render(
        request,
        "dashboard/members.html",
        {
            "tenant": access.tenant,
            "members": members_of(access.tenant),
            "invitations": [
                (invitation, invitation_url(invitation))
                for invitation in invitations_pending(access.tenant)
            ],
            "form": form,
            "roles": Membership.Role.choices,
            "password_rules": password_validators_help_texts(),
        },
        status=status,
    )


@login_required
@require_GET
def members(request, slug: str):
    access = tenant_access(request.user, slug, admin=True)
    return _members_page(request, access, InviteForm())


def _invitation_sent_message(invitation) -> str:
    """What the admin is told: the same whether or not the address has an account; honest
    about where the email went."""
    if emails_print_to_console():
        where = (
            "This server prints emails to its console instead of sending them (EMAIL_BACKEND): "
            "copy the link under Pending invitations and send it to them yourself."
        )
    else:
        where = "We emailed them a link to accept it."
    return f"Invitation for {invitation.email} as {invitation.role} sent. {where}"


@login_required
@require_POST
def member_invite(request, slug: str):
    access = tenant_access(request.user, slug, admin=True)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = tenant_services.member_invite(
                tenant=access.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
        except TenantError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, _invitation_sent_message(invitation))
            return redirect("dashboard-members", slug=slug)
    return _members_page(request, access, form, status=400)


def _invitation(access, invitation_id: int) -> Invitation:
    return get_object_or_404(
        Invitation, pk=invitation_id, tenant=access.tenant, accepted__isnull=True
    )


@login_required
@require_POST
def invitation_resend(request, slug: str, invitation_id: int):
    access = tenant_access(request.user, slug, admin=True)
    invitation = tenant_services.invitation_resend(invitation=_invitation(access, invitation_id))
    messages.success(
        request, _invitation_sent_message(invitation) + " The earlier link no longer works."
    )
    return redirect("dashboard-members", slug=slug)


@login_required
@require_POST
def invitation_revoke(request, slug: str, invitation_id: int):
    access = tenant_access(request.user, slug, admin=True)
    invitation = _invitation(access, invitation_id)
    tenant_services.invitation_revoke(invitation=invitation)
    messages.success(
        request, f"Invitation for {invitation.email} revoked; its link no longer works."
    )
    return redirect("dashboard-members", slug=slug)


@require_http_methods(["GET", "POST"])
def invitation_open(request, token: str):
    """The invitee's page. Signed in with the invited address: accept. Signed out: sign in to
    accept, or choose a password for a new account. The page is the same whether or not an
    account with the address exists."""
    try:
        invitation = tenant_services.invitation_from_token(token)
    except tenant_services.InvitationUnusable as exc:
        status = {"invalid": 404, "used": 410, "expired": 410}[exc.reason]
        return render(
            request,
            "dashboard/invitation.html",
            {"unusable": exc.reason, "invitation": exc.invitation},
            status=status,
        )
    context = {
        "invitation": invitation,
        "password_rules": password_validators_help_texts(),
        "login_url": f"{reverse('login')}?next={request.path}",
    }
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                membership = tenant_services.invitation_accept(
                    invitation=invitation, user=request.user
                )
            else:
                password = request.POST.get("new_password1", "")
                if password != request.POST.get("new_password2", ""):
                    raise TenantError("the two passwords differ")
                membership = tenant_services.invitation_accept_new_account(
                    invitation=invitation, password=password
                )
                auth_login(request, membership.user, backend=settings.AUTHENTICATION_BACKENDS[0])
        except TenantError as exc:
            context["error"] = str(exc)
            return render(request, "dashboard/invitation.html", context, status=400)
        messages.success(request, f"You joined {membership.tenant.name} as {membership.role}.")
        return redirect("dashboard-tenant", slug=membership.tenant.slug)
    return render(request, "dashboard/invitation.html", context)


def _membership(access, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, tenant=access.tenant
    )


@login_required
@require_POST
def member_role(request, slug: str, membership_id: int):
    access = tenant_access(request.user, slug, admin=True)
    membership = _membership(access, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose admin or member.")
    else:
        try:
            tenant_services.member_role_change(
                membership=membership, role=form.cleaned_data["role"]
            )
            messages.success(request, f"{membership.user.username} is now {membership.role}.")
        except TenantError as exc:
            messages.error(request, str(exc))
    return redirect("dashboard-members", slug=slug)


@login_required
@require_POST
def member_remove(request, slug: str, membership_id: int):
    access = tenant_access(request.user, slug, admin=True)
    membership = _membership(access, membership_id)
    try:
        tenant_services.member_remove(membership=membership)
    except TenantError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"{membership.user.username} removed; their MCP tokens and consents ended, and their "
            "own upstream connections are revoked.",
        )
    return redirect("dashboard-members", slug=slug)


# --- connectors -------------------------------------------------------------------------------


def _connector_context(request, access) -> dict:
    connector = access.connector
    own = None if access.manages else request.user
    stats = connector_stats([connector], user=own)[connector.pk]
    kind = get_kind(connector.kind)
    return {
        "connector": connector,
        "tenant": connector.tenant,
        "kind": kind,
        "manages": access.manages,
        "stats": stats,
        "upstream": upstream_status_counts(stats.upstream),
        "connections": upstream_connections_of(connector, user=own),
        "own_connection": upstream_connection_for(connector=connector, user_id=request.user.pk)
        if connector.mode == Connector.Mode.PER_USER
        else None,
        "clients": connected_clients(connector, user=own),
        "now": timezone.now(),
        "upstream_test_url": _upstream_test_url(connector),
        "holds_connections": connector_holds_upstream(connector),
    }


def _upstream_test_url(connector) -> str | None:
    """The upstream server of its own the connector fronts, which "Test upstream" checks."""
    kind = get_kind(connector.kind)
    return kind.doctor_url(connector.settings) if kind.doctor_url else None


@login_required
@require_GET
def connector_detail(request, connector_id: int):
    access = connector_access(request.user, connector_id)
    context = _connector_context(request, access)
    connector = access.connector
    context["settings_form"] = ConnectorUpdateForm(
        connector=connector,
        initial={
            "name": connector.display_name,
            "mode": connector.mode,
            **ConnectorUpdateForm.initial_settings(connector),
        },
    )
    context["policy_form"] = ToolPolicyForm(initial=ToolPolicyForm.initial_for(connector))
    context["known_tools"] = [t.name for t in async_to_sync(declared_tools)(connector.kind)]
    return render(request, "dashboard/connector.html", context)


@login_required
@require_POST
def connector_policy(request, connector_id: int):
    access = connector_access(request.user, connector_id, admin=True)
    form = ToolPolicyForm(request.POST)
    if form.is_valid():
        try:
            tenant_services.connector_update(
                connector=access.connector,
                tool_policy=form.policy_value(),
                audit_arguments=form.cleaned_data["audit_arguments"],
            )
        except TenantError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Tool policy saved; it applies to the next call.")
    else:
        messages.error(request, "Check the tool policy: " + form.errors.as_text())
    return redirect("dashboard-connector", connector_id=connector_id)


@login_required
@require_GET
def connector_status(request, connector_id: int):
    """What the connector page refreshes without a reload: health and connection statuses."""
    access = connector_access(request.user, connector_id)
    context = _connector_context(request, access)
    stats = context["stats"]
    return JsonResponse(
        {
            "enabled": stats.enabled,
            "health": stats.health,
            "health_label": stats.health_label,
            "reasons": stats.reasons,
            "calls_24h": stats.calls_24h,
            "errors_24h": stats.errors_24h,
            "clients_connected": stats.clients_connected,
            "last_refresh_at": stats.last_refresh_at.isoformat() if stats.last_refresh_at else None,
            "upstream": stats.upstream,
            "connections": [
                {
                    "id": c.pk,
                    "status": c.status,
                    "status_label": c.get_status_display(),
                    "last_refresh_at": c.last_refresh_at.isoformat() if c.last_refresh_at else None,
                    "access_expires_at": c.access_expires_at.isoformat(),
                    "last_error": c.last_error,
                }
                for c in context["connections"]
            ],
        }
    )


@login_required
@require_POST
def connector_update(request, connector_id: int):
    access = connector_access(request.user, connector_id, admin=True)
    connector = access.connector
    if "enabled" in request.POST:
        tenant_services.connector_update(
            connector=connector, enabled=_bool(request.POST["enabled"])
        )
        state = "enabled" if connector.enabled else "disabled"
        messages.success(request, f"Connector {connector.display_name} {state}.")
        return redirect("dashboard-connector", connector_id=connector.pk)
    form = ConnectorUpdateForm(request.POST, connector=connector)
    if form.is_valid():
        try:
            tenant_services.connector_update(
                connector=connector,
                name=form.cleaned_data["name"],
                mode=form.cleaned_data["mode"],
                settings=form.settings_value(),
            )
        except TenantError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Connector settings saved.")
    else:
        messages.error(request, "Check the connector settings: " + form.errors.as_text())
    return redirect("dashboard-connector", connector_id=connector.pk)


@login_required
@require_POST
def client_revoke(request, connector_id: int, application_id: int):
    """Admins disconnect a client for everyone; members only their own use of it."""
    access = connector_access(request.user, connector_id)
    application = get_object_or_404(Application, pk=application_id)
    user = None if access.manages else request.user
    visible = {c.application_id for c in connected_clients(access.connector, user=user)}
    if application.pk not in visible:
        raise Http404("no such client on this connector")
    revoked = mcp_client_revoke(
        connector=access.connector, application=application, actor=request.user, user=user
    )
    messages.success(
        request,
        f"{application.name or 'The client'} is disconnected ({revoked} tokens ended); its next "
        "request gets 401 and it has to connect again.",
    )
    return redirect("dashboard-connector", connector_id=connector_id)


@login_required
@require_GET
def connector_trace(request, connector_id: int):
    access = connector_access(request.user, connector_id)
    form = TraceFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    trace = connect_trace(
        access.connector,
        user=None if access.manages else request.user,
        client_id=filters.get("client", ""),
        kind=filters.get("kind", ""),
        outcome=filters.get("outcome", ""),
    )
    clients = sorted({(a.client_id, a.client_name) for a in trace.attempts if a.client_id})
    template = (
        "dashboard/_trace_attempts.html" if request.GET.get("partial") else "dashboard/trace.html"
    )
    return render(
        request,
        template,
        {
            "connector": access.connector,
            "tenant": access.connector.tenant,
            "manages": access.manages,
            "trace": trace,
            "form": form,
            "clients": clients,
            "kinds": event_kinds(access.connector),
            "now": timezone.now(),
        },
    )


@login_required
@require_GET
def audit_log(request, slug: str):
    """The tenant's tool-call audit log: admins see every call, members their own.

    ``?export=csv`` or ``?export=jsonl`` downloads what the filters select."""
    access = tenant_access(request.user, slug)
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        records = audit_records_of(access.tenant.pk).none()
    else:
        records = audit_records_of(
            access.tenant.pk,
            user=None if access.manages else request.user,
            **form.filters(),
        )
    export = request.GET.get("export", "")
    if export:
        if export not in EXPORT_TYPES:
            return render(
                request,
                "dashboard/audit.html",
                {"tenant": access.tenant, "form": form, "export_error": export},
                status=400,
            )
        response = StreamingHttpResponse(
            audit_export_lines(records, export), content_type=EXPORT_TYPES[export]
        )
        filename = f"audit-{access.tenant.slug}-{timezone.now():%Y%m%dT%H%M%S}.{export}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    page = Paginator(records, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "dashboard/audit.html",
        {
            "tenant": access.tenant,
            "manages": access.manages,
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "connectors": Connector.objects.filter(tenant=access.tenant).order_by("slug"),
        },
    )


# --- personal API keys -----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    """Create (the key is shown on this one answer only) and list the user's API keys."""
    created = None
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name:
            messages.error(request, "Give the key a name, such as the script that will use it.")
        else:
            _row, created = api_key_create(user=request.user, name=name)
    return render(
        request,
        "dashboard/api_keys.html",
        {"keys": api_keys_of(request.user), "created": created},
    )


@login_required
@require_POST
def api_key_revoke(request, key_id: int):
    key = get_object_or_404(api_keys_of(request.user), pk=key_id)
    revoke_api_key(key=key)
    messages.success(request, f"Key {key.prefix}… revoked.")
    return redirect("dashboard-api-keys")


# --- upstream connections (the two first views; URLs unchanged) -------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def connector_connect(request, connector_id: int):
    """One button: connect (or reconnect) the upstream account: the tenant's shared one (admins)
    or, in per-user mode, the signed-in member's own."""
    shared = Connector.objects.filter(pk=connector_id, mode=Connector.Mode.SHARED).exists()
    connector = connector_for(request.user, connector_id, admin=shared)
    kind = get_kind(connector.kind)
    if not connector_holds_upstream(connector):
        raise Http404("this connector has no upstream account")
    if request.method == "POST":
        return upstream_hop_start(request, connector=connector, authorization=None)
    return render(
        request,
        "dashboard/connector_connect.html",
        {
            "connector": connector,
            "kind": kind,
            "shared": shared,
            "connection": upstream_connection_for(connector=connector, user_id=request.user.pk),
        },
    )


@login_required
@require_POST
def connection_disconnect(request, connection_id: int):
    """Disconnect an upstream connection: its own member, or an admin of the tenant."""
    connection = (
        UpstreamConnection.objects.select_related("connector__tenant")
        .filter(pk=connection_id)
        .first()
    )
    if connection is None:
        raise Http404("no such connection")
    if connection.user_id != request.user.pk:
        connector_for(request.user, connection.connector_id, admin=True)  # 404 for others
    upstream_connection_disconnect(connection_id=connection.pk, actor=request.user)
    kind = get_kind(connection.connector.kind)
    if request.POST.get("next") == "connector":
        messages.success(
            request, f"{kind.title} disconnected; the clients that used it must reconnect."
        )
        return redirect(reverse("dashboard-connector", args=[connection.connector_id]))
    return render(
        request,
        "authserver/message.html",
        {
            "title": f"{kind.title} disconnected",
            "message": f"The {kind.title} connection of {connection.connector.display_name} is "
            "revoked, at the provider too, and the clients that used it are signed out.",
        },
    )


@require_POST
async def connector_test(request, connector_id: int):
    """ "Test connection": the doctor's checks (``manage.py doctor``) against this connector.

    Async on purpose: the checks call this very server over HTTP, and a sync view would hold
    the one thread Django's ASGI handler runs sync views on while they wait for it.
    """
    return await _doctor_page(request, connector_id, upstream=False)


@require_POST
async def connector_test_upstream(request, connector_id: int):
    """ "Test upstream": the same checks against the server the connector fronts, to show
    what that server itself gets wrong (for clients that would connect to it directly)."""
    return await _doctor_page(request, connector_id, upstream=True)


async def _doctor_page(request, connector_id: int, *, upstream: bool):
    from asgiref.sync import sync_to_async

    from doctor.checks import run_checks
    from doctor.runs import connection_test
    from doctor.steps import steps_failed

    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    access = await sync_to_async(connector_access)(user, connector_id, admin=True)
    target = access.connector.url
    if upstream:
        target = await sync_to_async(_upstream_test_url)(access.connector)
        if not target:
            raise Http404("this connector fronts no server of its own")
        # The upstream's URL is a tenant's choice: the doctor connects there only as the
        # connector does (public addresses, or OUTBOUND_ALLOWED_NETWORKS).
        steps = await sync_to_async(run_checks, thread_sensitive=False)(target, guarded=True)
    else:
        steps = await sync_to_async(connection_test, thread_sensitive=False)(
            connector=access.connector, user=user, ip=client_address(request)
        )
    context = {
        "connector": access.connector,
        "tenant": access.connector.tenant,
        "steps": steps,
        "failed": steps_failed(steps),
        "target": target,
        "upstream": upstream,
    }
    return await sync_to_async(render)(request, "dashboard/connector_test.html", context)
