"""Whether a connector can serve a member right now, as the apps above the authorization server
know it (the upstream app: is the tenant's shared account connected?).

The authorization server warns the member on the consent page and sends the client
``error=temporarily_unavailable`` (RFC 6749 4.1.2.1) instead of issuing a code that cannot work.
It cannot import those apps (they sit above it), so they answer through this signal: a receiver
returns the reason, in words for the member, or an empty string.
"""

from django.dispatch import Signal

# send(sender=Connector, connector=..., user=...) -> [(receiver, reason), ...]
connector_unavailable = Signal()


def connector_unavailable_reason(*, connector, user) -> str:
    """Why ``user`` cannot use ``connector`` now (something they cannot fix on the way), or ""."""
    answers = connector_unavailable.send(sender=type(connector), connector=connector, user=user)
    return next((reason for _, reason in answers if reason), "")
