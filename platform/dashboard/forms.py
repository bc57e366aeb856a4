"""Input checks of the dashboard's forms; the writes themselves are services."""

from django import forms

from connectors.base import BooleanSetting, ChoiceSetting, Setting, all_kinds, get_kind
from events.models import AuditRecord, Event
from tenants.models import Connector, Membership, slug_validator


class TenantCreateForm(forms.Form):
    slug = forms.CharField(
        max_length=50,
        validators=[slug_validator],
        help_text="Part of every connector URL: lowercase letters, digits and hyphens.",
    )
    name = forms.CharField(max_length=200, required=False)


class TenantUpdateForm(forms.Form):
    name = forms.CharField(max_length=200)


class ConnectorCreateForm(forms.Form):
    kind = forms.ChoiceField()
    slug = forms.CharField(
        max_length=50,
        required=False,
        validators=[slug_validator],
        help_text="Defaults to the kind; appears in the URL.",
    )
    name = forms.CharField(max_length=200, required=False)
    mode = forms.ChoiceField(choices=Connector.Mode.choices, initial=Connector.Mode.PER_USER)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(slug, k.title) for slug, k in sorted(all_kinds().items())]


class ConnectorUpdateForm(forms.Form):
    """Name, mode and the kind's settings, one form field per field of its settings schema."""

    name = forms.CharField(max_length=200)
    mode = forms.ChoiceField(choices=Connector.Mode.choices)

    def __init__(self, *args, connector: Connector, **kwargs):
        super().__init__(*args, **kwargs)
        self.setting_keys = []
        for setting in get_kind(connector.kind).settings_schema.fields:
            self.fields[f"setting_{setting.name}"] = _form_field(setting)
            self.setting_keys.append(setting.name)

    def settings_value(self) -> dict:
        return {key: self.cleaned_data[f"setting_{key}"] for key in self.setting_keys}

    @staticmethod
    def initial_settings(connector: Connector) -> dict:
        shown = get_kind(connector.kind).settings_schema.public(connector.settings)
        schema = {s.name: s for s in get_kind(connector.kind).settings_schema.fields}
        return {f"setting_{k}": v for k, v in shown.items() if not schema[k].secret}


def _form_field(setting: Setting) -> forms.Field:
    """The form field of one setting; the schema itself checks the value on save."""
    common = {"label": setting.title, "help_text": setting.help}
    if isinstance(setting, BooleanSetting):
        return forms.BooleanField(required=False, **common)
    if isinstance(setting, ChoiceSetting):
        return forms.ChoiceField(choices=setting.choices, required=setting.required, **common)
    if setting.secret:
        help_text = (setting.help + " " if setting.help else "") + "Leave empty to keep it."
        return forms.CharField(
            required=False,
            widget=forms.PasswordInput(render_value=False),
            label=setting.title,
            help_text=help_text,
        )
    return forms.CharField(required=False, **common)


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(
        choices=Membership.Role.choices, initial=Membership.Role.MEMBER, required=False
    )

    def clean_role(self) -> str:
        return self.cleaned_data["role"] or Membership.Role.MEMBER


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class TraceFilterForm(forms.Form):
    client = forms.CharField(required=False, max_length=255, label="Client")
    kind = forms.CharField(required=False, max_length=50, label="Event kind")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "any outcome"), *Event.Outcome.choices], label="Outcome"
    )


class AuditFilterForm(forms.Form):
    """The audit log's filters (dashboard); the API takes the same names."""

    q = forms.CharField(required=False, max_length=200, label="Search")
    connector = forms.IntegerField(required=False, min_value=1, label="Connector")
    member = forms.CharField(required=False, max_length=150, label="Member")
    client = forms.CharField(required=False, max_length=255, label="Client")
    tool = forms.CharField(required=False, max_length=200, label="Tool")
    outcome = forms.ChoiceField(
        required=False,
        choices=[("", "any outcome"), *AuditRecord.Outcome.choices],
        label="Outcome",
    )
    since = forms.DateTimeField(required=False, label="From")
    until = forms.DateTimeField(required=False, label="Until")

    def filters(self) -> dict:
        data = self.cleaned_data
        return {
            "search": data.get("q") or "",
            "connector_id": data.get("connector"),
            "member": data.get("member") or "",
            "client_id": data.get("client") or "",
            "tool": data.get("tool") or "",
            "outcome": data.get("outcome") or "",
            "since": data.get("since"),
            "until": data.get("until"),
        }


class ToolPolicyForm(forms.Form):
    """A connector's tool policy (tenants.policy) and audit setting; one tool name per line."""

    off = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    admins_only = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    audit_arguments = forms.ChoiceField(choices=Connector.AuditArguments.choices)

    @staticmethod
    def initial_for(connector: Connector) -> dict:
        policy = connector.tool_policy or {}
        return {
            "off": "\n".join(policy.get("off", [])),
            "admins_only": "\n".join(policy.get("admins_only", [])),
            "audit_arguments": connector.audit_arguments,
        }

    def policy_value(self) -> dict:
        def names(field: str) -> list[str]:
            return [line.strip() for line in self.cleaned_data[field].splitlines() if line.strip()]

        return {"off": names("off"), "admins_only": names("admins_only")}
