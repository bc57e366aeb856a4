"""From a provider's ID token claims to a role in the tenant: admin, member, or none."""

from collections.abc import Iterable

ADMIN, MEMBER, NONE = "admin", "member", "none"
ROLES = (ADMIN, MEMBER, NONE)


class RuleError(ValueError):
    """A role rule or domain list that cannot be used; the message says why."""


def rules_clean(rules: object) -> list[dict]:
    """Validated rules: a list of {"claim", "value", "role"}, role one of admin/member/none."""
    if not isinstance(rules, list):
        raise RuleError("role rules must be a list")
    cleaned = []
    for n, rule in enumerate(rules, start=1):
        if not isinstance(rule, dict) or set(rule) != {"claim", "value", "role"}:
            raise RuleError(f"rule {n} must have exactly claim, value and role")
        claim, value, role = rule["claim"], rule["value"], rule["role"]
        if not isinstance(claim, str) or not claim.strip():
            raise RuleError(f"rule {n}: claim must be a claim name such as groups")
        if not isinstance(value, str | bool) or value == "":
            raise RuleError(f"rule {n}: value must be a string (or true/false)")
        if role not in ROLES:
            raise RuleError(f"rule {n}: role must be admin, member or none")
        cleaned.append({"claim": claim.strip(), "value": value, "role": role})
    return cleaned


def rules_from_text(text: str) -> list[dict]:
    """Rules written one a line as ``claim=value:role`` (the CLI's and the dashboard's form),
    e.g. ``groups=acme-admins:admin``."""
    rules = []
    for line in text.replace(",", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            claim_value, role = line.rsplit(":", 1)
            claim, value = claim_value.split("=", 1)
        except ValueError:
            raise RuleError(f"{line!r}: write a rule as claim=value:role") from None
        rules.append({"claim": claim.strip(), "value": value.strip(), "role": role.strip()})
    return rules


def rules_as_text(rules: list[dict]) -> str:
    return "\n".join(f"{r['claim']}={r['value']}:{r['role']}" for r in rules)


def domains_clean(domains: Iterable[str]) -> list[str]:
    """Lowercased email domains without '@' or duplicates."""
    cleaned = []
    for domain in domains:
        domain = domain.strip().lower().lstrip("@")
        if not domain:
            continue
        if "@" in domain or "." not in domain or " " in domain:
            raise RuleError(f"{domain!r} is not an email domain such as example.com")
        if domain not in cleaned:
            cleaned.append(domain)
    return cleaned


def _matches(claims: dict, claim: str, value) -> bool:
    present = claims.get(claim)
    if isinstance(present, list):
        return value in present
    return present == value


def role_for_claims(claims: dict, *, rules: list[dict], default_role: str) -> str:
    """The role the rules give these claims. A matching ``none`` rule wins (an explicit
    refusal, such as a contractors group), then admin, then member; with no match, the
    provider's default role."""
    matched = {rule["role"] for rule in rules if _matches(claims, rule["claim"], rule["value"])}
    for role in (NONE, ADMIN, MEMBER):
        if role in matched:
            return role
    return default_role


def email_domain_allowed(email: str, allowed_domains: list[str]) -> bool:
    """Any domain when the list is empty; otherwise the email's domain exactly."""
    if not allowed_domains:
        return True
    return email.rsplit("@", 1)[-1].lower() in allowed_domains
