"""The management API, /api/v1/. Same access rules as the dashboard (``tenants.access``):
an outsider gets 404 for another tenant's objects, a member 403 for admin-only changes."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter
from oauth2_provider.models import Application
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.openapi import extend_schema
from api.pagination import Pagination
from authserver.selectors import connected_clients
from authserver.services import mcp_client_revoke, mcp_token_revoke
from events.audit import EXPORT_TYPES, audit_export_lines
from events.selectors import audit_records_of, events_of
from events.trace import connect_trace
from identity.selectors import provider_of, provider_summary
from identity.services import IdentityError, provider_delete, provider_save
from tenants.access import (
    OPERATOR,
    connector_access,
    connectors_visible_to,
    tenant_access,
    tenants_visible_to,
)
from tenants.api_keys import api_key_create, api_key_revoke, api_keys_of
from tenants.models import Connector, Invitation, Membership
from tenants.selectors import invitations_pending, members_of
from tenants.services import (
    connector_create,
    connector_update,
    invitation_resend,
    invitation_revoke,
    member_invite,
    member_remove,
    member_role_change,
    tenant_create,
    tenant_update,
)
from upstream.health import connector_stats, upstream_connections_of
from upstream.models import UpstreamConnection
from upstream.services import upstream_connection_disconnect


def _valid(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class _Base(APIView):
    def paginated(self, request: Request, items, serializer_class):
        paginator = Pagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


# --- you and your keys --------------------------------------------------------------------------


class MeView(_Base):
    @extend_schema(responses=s.MeOut, summary="Who the key or session belongs to")
    def get(self, request):
        user = request.user
        return Response(
            s.MeOut(
                {
                    "username": user.username,
                    "email": user.email,
                    "is_superuser": user.is_superuser,
                    "memberships": Membership.objects.select_related("tenant").filter(user=user),
                }
            ).data
        )


class ApiKeysView(_Base):
    @extend_schema(responses=s.ApiKeyOut(many=True), summary="Your API keys (never the keys)")
    def get(self, request):
        return self.paginated(request, api_keys_of(request.user), s.ApiKeyOut)

    @extend_schema(
        request=s.ApiKeyIn,
        responses={201: s.ApiKeyCreatedOut},
        summary="Create an API key; the answer holds the key, shown this once",
    )
    def post(self, request):
        data = _valid(s.ApiKeyIn, request.data)
        row, key = api_key_create(user=request.user, name=data["name"])
        body = s.ApiKeyOut(row).data
        body["key"] = key
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyView(_Base):
    @extend_schema(responses={204: None}, summary="Revoke one of your API keys")
    def delete(self, request, key_id: int):
        row = get_object_or_404(api_keys_of(request.user), pk=key_id)
        api_key_revoke(key=row)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- tenants and members ------------------------------------------------------------------------


def _tenant_out(tenant, role: str) -> dict:
    return s.TenantOut(
        {
            "slug": tenant.slug,
            "name": tenant.name,
            "enabled": tenant.enabled,
            "created": tenant.created,
            "role": role,
        }
    ).data


class TenantsView(_Base):
    @extend_schema(responses=s.TenantOut(many=True), summary="Tenants you can see")
    def get(self, request):
        tenants = list(tenants_visible_to(request.user))
        roles = dict(Membership.objects.filter(user=request.user).values_list("tenant_id", "role"))
        items = [
            {
                "slug": t.slug,
                "name": t.name,
                "enabled": t.enabled,
                "created": t.created,
                "role": OPERATOR if request.user.is_superuser else roles.get(t.pk),
            }
            for t in tenants
        ]
        return self.paginated(request, items, s.TenantOut)

    @extend_schema(
        request=s.TenantCreateIn,
        responses={201: s.TenantOut},
        summary="Create a tenant (operators)",
    )
    def post(self, request):
        if not request.user.is_superuser:
            raise PermissionDenied("only operators create tenants")
        data = _valid(s.TenantCreateIn, request.data)
        tenant = tenant_create(slug=data["slug"], name=data.get("name", ""))
        return Response(_tenant_out(tenant, OPERATOR), status=status.HTTP_201_CREATED)


class TenantView(_Base):
    @extend_schema(responses=s.TenantOut, summary="One tenant")
    def get(self, request, slug: str):
        access = tenant_access(request.user, slug)
        return Response(_tenant_out(access.tenant, access.role))

    @extend_schema(
        request=s.TenantUpdateIn,
        responses=s.TenantOut,
        summary="Rename (admins) or enable/disable (operators) a tenant",
    )
    def patch(self, request, slug: str):
        access = tenant_access(request.user, slug, admin=True)
        data = _valid(s.TenantUpdateIn, request.data)
        if "enabled" in data and access.role != OPERATOR:
            raise PermissionDenied("only operators turn tenants on and off")
        tenant_update(tenant=access.tenant, name=data.get("name"), enabled=data.get("enabled"))
        return Response(_tenant_out(access.tenant, access.role))


class MembersView(_Base):
    @extend_schema(responses=s.MemberOut(many=True), summary="Members of a tenant (admins)")
    def get(self, request, slug: str):
        access = tenant_access(request.user, slug, admin=True)
        return self.paginated(request, members_of(access.tenant), s.MemberOut)

    @extend_schema(
        request=s.MemberInviteIn,
        responses={201: s.InvitationOut},
        summary="Invite someone by email: a pending invitation they accept from its link "
        "(the answer is the same whether or not the address has an account)",
    )
    def post(self, request, slug: str):
        access = tenant_access(request.user, slug, admin=True)
        data = _valid(s.MemberInviteIn, request.data)
        invitation = member_invite(
            tenant=access.tenant, email=data["email"], role=data["role"], invited_by=request.user
        )
        return Response(s.InvitationOut(invitation).data, status=status.HTTP_201_CREATED)


class InvitationsView(_Base):
    @extend_schema(
        responses=s.InvitationOut(many=True), summary="Pending invitations of a tenant (admins)"
    )
    def get(self, request, slug: str):
        access = tenant_access(request.user, slug, admin=True)
        return self.paginated(request, invitations_pending(access.tenant), s.InvitationOut)


class InvitationView(_Base):
    def _invitation(self, request, slug: str, invitation_id: int) -> Invitation:
        access = tenant_access(request.user, slug, admin=True)
        return get_object_or_404(invitations_pending(access.tenant), pk=invitation_id)

    @extend_schema(request=None, responses=s.InvitationOut, summary="Resend with a new link")
    def post(self, request, slug: str, invitation_id: int):
        invitation = invitation_resend(invitation=self._invitation(request, slug, invitation_id))
        return Response(s.InvitationOut(invitation).data)

    @extend_schema(responses={204: None}, summary="Revoke (its link stops working)")
    def delete(self, request, slug: str, invitation_id: int):
        invitation_revoke(invitation=self._invitation(request, slug, invitation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberView(_Base):
    def _membership(self, request, slug: str, member_id: int) -> Membership:
        access = tenant_access(request.user, slug, admin=True)
        return get_object_or_404(
            Membership.objects.select_related("user"), pk=member_id, tenant=access.tenant
        )

    @extend_schema(request=s.MemberUpdateIn, responses=s.MemberOut, summary="Change a role")
    def patch(self, request, slug: str, member_id: int):
        membership = self._membership(request, slug, member_id)
        data = _valid(s.MemberUpdateIn, request.data)
        member_role_change(membership=membership, role=data["role"])
        return Response(s.MemberOut(membership).data)

    @extend_schema(
        responses={204: None},
        summary="Remove a member: their MCP tokens and own upstream connections end",
    )
    def delete(self, request, slug: str, member_id: int):
        membership = self._membership(request, slug, member_id)
        member_remove(membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- connectors ---------------------------------------------------------------------------------


def _connector_out(connector: Connector, stats=None) -> dict:
    body = s.ConnectorOut(connector).data
    if stats is not None:
        body["stats"] = s.ConnectorStatsOut(stats).data
    return body


class ConnectorsView(_Base):
    @extend_schema(
        parameters=[OpenApiParameter("tenant", str, description="Only this tenant's (slug)")],
        responses=s.ConnectorOut(many=True),
        summary="Connectors you can see",
    )
    def get(self, request):
        connectors = connectors_visible_to(request.user)
        if request.query_params.get("tenant"):
            connectors = connectors.filter(tenant__slug=request.query_params["tenant"])
        return self.paginated(request, connectors, s.ConnectorOut)


class TenantConnectorsView(_Base):
    @extend_schema(responses=s.ConnectorOut(many=True), summary="A tenant's connectors")
    def get(self, request, slug: str):
        access = tenant_access(request.user, slug)
        connectors = connectors_visible_to(request.user).filter(tenant=access.tenant)
        return self.paginated(request, connectors, s.ConnectorOut)

    @extend_schema(
        request=s.ConnectorCreateIn,
        responses={201: s.ConnectorOut},
        summary="Create a connector (admins)",
    )
    def post(self, request, slug: str):
        access = tenant_access(request.user, slug, admin=True)
        data = _valid(s.ConnectorCreateIn, request.data)
        connector = connector_create(
            tenant=access.tenant,
            kind=data["kind"],
            slug=data.get("slug", ""),
            mode=data["mode"],
            name=data.get("name", ""),
            settings=data.get("settings") or {},
        )
        return Response(_connector_out(connector), status=status.HTTP_201_CREATED)


class ConnectorView(_Base):
    @extend_schema(responses=s.ConnectorDetailOut, summary="A connector and its health")
    def get(self, request, connector_id: int):
        access = connector_access(request.user, connector_id)
        own = None if access.manages else request.user
        stats = connector_stats([access.connector], user=own)[access.connector.pk]
        return Response(_connector_out(access.connector, stats))

    @extend_schema(
        request=s.ConnectorUpdateIn,
        responses=s.ConnectorOut,
        summary="Rename, enable/disable, switch mode, change settings or the tool policy (admins)",
    )
    def patch(self, request, connector_id: int):
        access = connector_access(request.user, connector_id, admin=True)
        data = _valid(s.ConnectorUpdateIn, request.data)
        connector_update(
            connector=access.connector,
            name=data.get("name"),
            enabled=data.get("enabled"),
            mode=data.get("mode"),
            settings=data.get("settings"),
            tool_policy=data.get("tool_policy"),
            audit_arguments=data.get("audit_arguments"),
        )
        return Response(_connector_out(access.connector))


class ConnectionsView(_Base):
    @extend_schema(
        responses=s.ConnectionOut(many=True),
        summary="Upstream connections of a connector (members: the shared one and their own)",
    )
    def get(self, request, connector_id: int):
        access = connector_access(request.user, connector_id)
        connections = upstream_connections_of(
            access.connector, user=None if access.manages else request.user
        )
        return self.paginated(request, connections, s.ConnectionOut)


class ConnectionDisconnectView(_Base):
    @extend_schema(
        request=None,
        responses=s.ConnectionOut,
        summary="Disconnect an upstream connection (its member, or an admin)",
    )
    def post(self, request, connection_id: int):
        connection = (
            UpstreamConnection.objects.select_related("connector").filter(pk=connection_id).first()
        )
        if connection is None:
            raise Http404("no such connection")
        access = connector_access(request.user, connection.connector_id)
        if connection.user_id != request.user.pk and not access.manages:
            if connection.user_id is None:
                raise PermissionDenied("only the tenant's admins disconnect the shared account")
            raise Http404("no such connection")
        upstream_connection_disconnect(connection_id=connection.pk, actor=request.user)
        connection.refresh_from_db()
        return Response(s.ConnectionOut(connection).data)


class ClientsView(_Base):
    @extend_schema(
        responses=s.ClientOut(many=True),
        summary="Clients with live tokens for a connector (members: their own)",
    )
    def get(self, request, connector_id: int):
        access = connector_access(request.user, connector_id)
        clients = connected_clients(access.connector, user=None if access.manages else request.user)
        return self.paginated(request, clients, s.ClientOut)


class ClientRevokeView(_Base):
    @extend_schema(
        request=None,
        responses=s.RevokedOut,
        summary="Revoke a client's tokens for a connector (admins: everyone's; members: own)",
    )
    def post(self, request, connector_id: int, application_id: int):
        access = connector_access(request.user, connector_id)
        user = None if access.manages else request.user
        visible = {c.application_id for c in connected_clients(access.connector, user=user)}
        if application_id not in visible:
            raise Http404("no such client on this connector")
        application = Application.objects.get(pk=application_id)
        revoked = mcp_client_revoke(
            connector=access.connector, application=application, actor=request.user, user=user
        )
        return Response(s.RevokedOut({"tokens_revoked": revoked}).data)


class TokenView(_Base):
    @extend_schema(responses={204: None}, summary="Revoke one token (access or refresh)")
    def delete(self, request, connector_id: int, kind: str, token_id: int):
        access = connector_access(request.user, connector_id)
        if kind not in ("access", "refresh"):
            raise Http404("no such token")
        user = None if access.manages else request.user
        owned = {
            (t.kind, t.id) for c in connected_clients(access.connector, user=user) for t in c.tokens
        }
        if (kind, token_id) not in owned:
            raise Http404("no such token")
        mcp_token_revoke(
            connector=access.connector, token_id=token_id, kind=kind, actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventsView(_Base):
    @extend_schema(
        parameters=[s.EventFilterIn],
        responses=s.EventOut(many=True),
        summary="A connector's events, newest first (members: their own)",
    )
    def get(self, request, connector_id: int):
        access = connector_access(request.user, connector_id)
        filters = _valid(s.EventFilterIn, request.query_params)
        events = events_of(
            access.connector,
            user=None if access.manages else request.user,
            client_id=filters.get("client_id", ""),
            kind=filters.get("kind", ""),
            outcome=filters.get("outcome", ""),
            since=filters.get("since"),
        )
        return self.paginated(request, events, s.EventOut)


class TraceView(_Base):
    @extend_schema(
        parameters=[s.TraceFilterIn],
        responses=s.AttemptOut(many=True),
        summary="The connect trace: attempts per client, where each stopped, and hints",
    )
    def get(self, request, connector_id: int):
        access = connector_access(request.user, connector_id)
        filters = _valid(s.TraceFilterIn, request.query_params)
        trace = connect_trace(
            access.connector,
            user=None if access.manages else request.user,
            client_id=filters.get("client_id", ""),
            kind=filters.get("kind", ""),
            outcome=filters.get("outcome", ""),
        )
        return self.paginated(request, trace.attempts, s.AttemptOut)


# --- single sign-on -----------------------------------------------------------------------------


def _provider_out(provider) -> dict:
    return s.IdentityProviderOut(provider_summary(provider)).data


class IdentityProviderView(_Base):
    def _provider(self, request, slug: str):
        access = tenant_access(request.user, slug, admin=True)
        provider = provider_of(tenant=access.tenant)
        if provider is None:
            raise Http404("this tenant has no identity provider")
        return provider

    @extend_schema(responses=s.IdentityProviderOut, summary="The tenant's OpenID Connect provider")
    def get(self, request, slug: str):
        return Response(_provider_out(self._provider(request, slug)))

    @extend_schema(
        request=s.IdentityProviderIn,
        responses=s.IdentityProviderOut,
        summary="Add or replace the tenant's OpenID Connect provider (admins)",
    )
    def put(self, request, slug: str):
        access = tenant_access(request.user, slug, admin=True)
        data = _valid(s.IdentityProviderIn, request.data)
        try:
            provider = provider_save(
                tenant=access.tenant,
                name=data["name"],
                issuer=data["issuer"],
                client_id=data["client_id"],
                client_secret=data.get("client_secret"),
                scopes=data["scopes"],
                allowed_domains=data.get("allowed_domains", []),
                role_rules=[dict(rule) for rule in data.get("role_rules", [])],
                default_role=data["default_role"],
                local_passwords_allowed=data["local_passwords_allowed"],
                enabled=data["enabled"],
            )
        except IdentityError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_provider_out(provider))

    @extend_schema(responses={204: None}, summary="Remove the tenant's provider (admins)")
    def delete(self, request, slug: str):
        provider_delete(provider=self._provider(request, slug))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _audit_records(request, slug: str, filter_class):
    """(the records the query selects, the validated query); 404 first for outsiders."""
    access = tenant_access(request.user, slug)
    filters = _valid(filter_class, request.query_params)
    records = audit_records_of(
        access.tenant.pk,
        user=None if access.manages else request.user,
        search=filters.get("q", ""),
        connector_id=filters.get("connector"),
        member=filters.get("member", ""),
        client_id=filters.get("client_id", ""),
        tool=filters.get("tool", ""),
        outcome=filters.get("outcome", ""),
        since=filters.get("since"),
        until=filters.get("until"),
    )
    return records, filters


class AuditRecordsView(_Base):
    @extend_schema(
        parameters=[s.AuditFilterIn],
        responses=s.AuditRecordOut(many=True),
        summary="The tenant's tool-call audit log, newest first (members: their own calls)",
    )
    def get(self, request, slug: str):
        records, _ = _audit_records(request, slug, s.AuditFilterIn)
        return self.paginated(request, records, s.AuditRecordOut)


class AuditExportView(_Base):
    @extend_schema(
        parameters=[s.AuditExportIn],
        responses={(200, "text/csv"): str, (200, "application/x-ndjson"): str},
        summary="Export the audit records the filters select, as CSV or JSON lines",
    )
    def get(self, request, slug: str):
        records, filters = _audit_records(request, slug, s.AuditExportIn)
        export = filters["type"]
        response = StreamingHttpResponse(
            audit_export_lines(records, export), content_type=EXPORT_TYPES[export]
        )
        response["Content-Disposition"] = f'attachment; filename="audit-{slug}.{export}"'
        return response
