"""Input checks of the dashboard's forms; the writes themselves are services."""

from django import forms

from connectors.base import all_kinds
from events.models import Event
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
    """Name, mode and the kind's settings (booleans are checkboxes, the rest text)."""

    name = forms.CharField(max_length=200)
    mode = forms.ChoiceField(choices=Connector.Mode.choices)

    def __init__(self, *args, connector: Connector, **kwargs):
        super().__init__(*args, **kwargs)
        from connectors.base import get_kind

        self.setting_keys = []
        for key, default in get_kind(connector.kind).default_settings.items():
            label = key.replace("_", " ").capitalize()
            if isinstance(default, bool):
                field = forms.BooleanField(required=False, label=label)
            else:
                field = forms.CharField(required=False, label=label)
            self.fields[f"setting_{key}"] = field
            self.setting_keys.append(key)

    def settings_value(self) -> dict:
        return {key: self.cleaned_data[f"setting_{key}"] for key in self.setting_keys}


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
