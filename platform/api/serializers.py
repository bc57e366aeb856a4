"""Small input and output serializers, one pair per operation where they differ."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors.base import get_kind
from events.models import AuditRecord, Event
from tenants.models import Connector, Membership, slug_validator
from tenants.services import invitation_url
from upstream.models import UpstreamConnection

# --- output -------------------------------------------------------------------------------------


class MembershipBriefOut(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    role = serializers.CharField()


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    is_operator = serializers.BooleanField(source="is_superuser")
    memberships = MembershipBriefOut(many=True)


class ApiKeyOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyCreatedOut(ApiKeyOut):
    key = serializers.CharField(help_text="The key itself: shown this once, never again.")


class TenantOut(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    created = serializers.DateTimeField()
    role = serializers.CharField(help_text="Your role: operator, admin or member.")


class MemberOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    role = serializers.CharField()
    invited = serializers.SerializerMethodField(help_text="Has not chosen a password yet.")
    created = serializers.DateTimeField()

    def get_invited(self, membership: Membership) -> bool:
        return not membership.user.has_usable_password()


class InvitationOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.CharField()
    role = serializers.CharField()
    sent = serializers.DateTimeField()
    expires = serializers.DateTimeField()
    expired = serializers.BooleanField()
    link = serializers.SerializerMethodField(
        help_text="The invitee's link (also emailed); resending replaces it."
    )

    def get_link(self, invitation) -> str:
        return invitation_url(invitation)


class ConnectorStatsOut(serializers.Serializer):
    health = serializers.CharField(help_text="ok, warning or off")
    health_label = serializers.CharField()
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="What needs attention, in words"
    )
    upstream = serializers.DictField(child=serializers.IntegerField())
    last_refresh_at = serializers.DateTimeField(allow_null=True)
    clients_connected = serializers.IntegerField()
    calls_24h = serializers.IntegerField()
    errors_24h = serializers.IntegerField()


class ConnectorOut(serializers.Serializer):
    id = serializers.IntegerField()
    tenant = serializers.CharField(source="tenant.slug")
    kind = serializers.CharField()
    slug = serializers.CharField()
    name = serializers.CharField(source="display_name")
    url = serializers.CharField()
    enabled = serializers.BooleanField()
    mode = serializers.CharField()
    settings = serializers.SerializerMethodField(
        help_text="The kind's settings; a secret shows only whether it is set."
    )
    tool_policy = serializers.JSONField()
    audit_arguments = serializers.CharField()
    created = serializers.DateTimeField()

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_settings(self, connector: Connector) -> dict:
        try:
            schema = get_kind(connector.kind).settings_schema
        except KeyError:  # a kind no longer installed: show nothing rather than secrets
            return {}
        return schema.public(connector.settings)


class ConnectorDetailOut(ConnectorOut):
    stats = ConnectorStatsOut()


class ConnectionOut(serializers.Serializer):
    """An upstream connection's state; its tokens are never part of any answer."""

    id = serializers.IntegerField()
    user = serializers.CharField(source="user.username", allow_null=True, default=None)
    shared = serializers.SerializerMethodField()
    provider = serializers.CharField()
    external_account_id = serializers.CharField()
    external_account_name = serializers.CharField()
    status = serializers.CharField()
    access_expires_at = serializers.DateTimeField()
    refresh_expires_at = serializers.DateTimeField(allow_null=True)
    last_refresh_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    failure_count = serializers.IntegerField()

    def get_shared(self, connection: UpstreamConnection) -> bool:
        return connection.user_id is None


class TokenOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["access", "refresh"])
    username = serializers.CharField()
    created = serializers.DateTimeField()
    expires = serializers.DateTimeField(allow_null=True)


class ClientOut(serializers.Serializer):
    application_id = serializers.IntegerField()
    client_id = serializers.CharField()
    name = serializers.CharField()
    registration = serializers.CharField()
    redirect_hosts = serializers.ListField(child=serializers.CharField())
    users = serializers.ListField(child=serializers.CharField())
    first_use = serializers.DateTimeField(allow_null=True)
    last_use = serializers.DateTimeField(allow_null=True)
    tokens = TokenOut(many=True)


class RevokedOut(serializers.Serializer):
    tokens_revoked = serializers.IntegerField()


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    created = serializers.DateTimeField()
    kind = serializers.CharField()
    outcome = serializers.CharField()
    client_id = serializers.CharField()
    user = serializers.CharField(source="user.username", allow_null=True, default=None)
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    detail = serializers.DictField()


class TraceStepOut(serializers.Serializer):
    step = serializers.CharField()
    label = serializers.CharField()
    error = serializers.CharField()
    summary = serializers.CharField()
    event = EventOut()


class AttemptOut(serializers.Serializer):
    client_id = serializers.CharField()
    client_name = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["connected", "failed", "stopped", "in_progress", "passed"],
        help_text="A test run (test_run) is passed, failed, in_progress or stopped.",
    )
    test_run = serializers.SerializerMethodField(
        help_text="A dashboard Test connection run, not a client's attempt."
    )
    reached = serializers.CharField()
    stopped_at = serializers.CharField()
    hint = serializers.CharField()
    started = serializers.DateTimeField()
    last = serializers.DateTimeField()
    steps = TraceStepOut(many=True)

    def get_test_run(self, attempt) -> bool:
        return attempt.test_run is not None


# --- input --------------------------------------------------------------------------------------


class ApiKeyIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class TenantCreateIn(serializers.Serializer):
    slug = serializers.CharField(max_length=50, validators=[slug_validator])
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class TenantUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False)


class MemberInviteIn(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)


class MemberUpdateIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class ConnectorCreateIn(serializers.Serializer):
    kind = serializers.CharField(max_length=50)
    slug = serializers.CharField(max_length=50, required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=Connector.Mode.choices, default=Connector.Mode.PER_USER)
    settings = serializers.DictField(required=False)


class ConnectorUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False)
    mode = serializers.ChoiceField(choices=Connector.Mode.choices, required=False)
    settings = serializers.DictField(required=False)
    tool_policy = serializers.DictField(
        required=False,
        help_text='{"off": [tool names], "admins_only": [tool names]}: a tool named in neither '
        "is callable by every member",
    )
    audit_arguments = serializers.ChoiceField(
        choices=Connector.AuditArguments.choices, required=False
    )


class EventFilterIn(serializers.Serializer):
    kind = serializers.CharField(max_length=50, required=False, allow_blank=True)
    outcome = serializers.ChoiceField(choices=Event.Outcome.choices, required=False)
    client_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    since = serializers.DateTimeField(required=False)


class TraceFilterIn(serializers.Serializer):
    client_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    kind = serializers.CharField(max_length=50, required=False, allow_blank=True)
    outcome = serializers.ChoiceField(choices=Event.Outcome.choices, required=False)


# --- single sign-on -----------------------------------------------------------------------------


class RoleRuleSerializer(serializers.Serializer):
    claim = serializers.CharField(help_text="An ID token claim, such as groups, roles or hd.")
    value = serializers.CharField(help_text="Matches the claim, or one item of a list claim.")
    role = serializers.ChoiceField(choices=["admin", "member", "none"])


class IdentityProviderIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text='Shown as "Sign in with <name>".')
    issuer = serializers.CharField(max_length=300)
    client_id = serializers.CharField(max_length=300)
    client_secret = serializers.CharField(
        required=False, allow_blank=True, write_only=True, help_text="Omit to keep the stored one."
    )
    scopes = serializers.CharField(required=False, default="openid email profile")
    allowed_domains = serializers.ListField(child=serializers.CharField(), required=False)
    role_rules = RoleRuleSerializer(many=True, required=False)
    default_role = serializers.ChoiceField(choices=["member", "none"], default="none")
    local_passwords_allowed = serializers.BooleanField(default=True)
    enabled = serializers.BooleanField(default=True)


class IdentityProviderOut(serializers.Serializer):
    name = serializers.CharField()
    issuer = serializers.CharField()
    client_id = serializers.CharField()
    client_secret_set = serializers.BooleanField()
    redirect_uri = serializers.CharField(help_text="Register this at the provider.")
    scopes = serializers.CharField()
    allowed_domains = serializers.ListField(child=serializers.CharField())
    role_rules = RoleRuleSerializer(many=True)
    default_role = serializers.CharField()
    local_passwords_allowed = serializers.BooleanField()
    enabled = serializers.BooleanField()


class AuditFilterIn(serializers.Serializer):
    q = serializers.CharField(max_length=200, required=False, allow_blank=True)
    connector = serializers.IntegerField(min_value=1, required=False)
    member = serializers.CharField(max_length=150, required=False, allow_blank=True)
    client_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    tool = serializers.CharField(max_length=200, required=False, allow_blank=True)
    outcome = serializers.ChoiceField(choices=AuditRecord.Outcome.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class AuditExportIn(AuditFilterIn):
    type = serializers.ChoiceField(choices=["csv", "jsonl"], default="jsonl")


class AuditRecordOut(serializers.Serializer):
    id = serializers.IntegerField()
    time = serializers.DateTimeField(source="created")
    connector = serializers.IntegerField(source="connector_id")
    member = serializers.CharField(source="username")
    client_id = serializers.CharField()
    tool = serializers.CharField()
    outcome = serializers.CharField()
    latency_ms = serializers.IntegerField()
    upstream_request_id = serializers.CharField()
    arguments_kept = serializers.CharField(help_text="full (secrets redacted) or digest")
    arguments = serializers.JSONField()
    error = serializers.CharField()
