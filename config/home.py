"""The admin home page: what each person came to do, gathered from several apps.

Each section is shown to the people whose permissions let them act on it, never by group name (a
permission held directly, through any group, or as a superuser counts alike):

- **review**: versions in review, oldest first, for those who may review (`prompts.review_promptversion`);
  their own versions apart, as waiting for someone else (four-eyes: nobody reviews their own version);
- **releases**: approved versions waiting for release (`prompts.selectors.releases_waiting` defines it),
  for those who may release (`prompts.release_promptversion`);
- **rotations**: active provider keys due for rotation within 14 days or overdue, for those who may
  rotate them (`keys.change_providerkey`);
- **caps**: caps that spent CAPS_NEAR_PERCENT or more of their limit this period, as the usage dashboard
  computes them (`usage.dashboard.budget_burn`), for those who may change the caps of keys or API clients;
- **alerts**: open (unacknowledged) budget and monitor alerts addressed to the person, that is notified
  to them (`usage.selectors.ALERT_ADDRESSEES`), for everyone;
- **chain** and **evidence**: the audit chain's state as its signed checkpoints left it (not verified on
  each view: `audit.selectors.audit_chain_state`) and a one-click package of each evidence type for the
  last full quarter, for those who may download evidence (`audit.export_evidence`).

It lives in `config`, the top layer, because it reads prompts, keys, usage and audit at once; each app's
query is that app's selector, and this module only decides who sees what and bounds the lists. The admin
index template (templates/admin/index.html) reads it through the `home_sections` tag (config.home_tags),
so the admin keeps Django's own index view and URL.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from audit.evidence import Period, evidence_types
from audit.selectors import audit_chain_state
from keys.selectors import keys_needing_rotation, rotation_state
from prompts.selectors import releases_waiting, versions_in_review
from usage.dashboard import budget_burn
from usage.models import BudgetAlert, MonitorAlert
from usage.selectors import open_alerts_addressed_to

# Rows shown per list; the rest are counted and linked.
LIMIT = 10
# A cap is near its limit from this share of it spent (the default budget-alert threshold).
CAPS_NEAR_PERCENT = 80

# Section → the permissions that let a person act on it (any one of them suffices).
SECTION_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "review": ("prompts.review_promptversion",),
    "releases": ("prompts.release_promptversion",),
    "rotations": ("keys.change_providerkey",),
    "caps": ("keys.change_providerkey", "keys.change_apiclient"),
    "chain": ("audit.export_evidence",),
    "evidence": ("audit.export_evidence",),
}


class Quarter(Period):
    """A calendar quarter, as the evidence packages' period."""

    @property
    def name(self) -> str:
        return f"Q{(self.first_day.month - 1) // 3 + 1} {self.first_day.year}"


def last_full_quarter(today: date) -> Quarter:
    """The calendar quarter before the one `today` is in."""
    this_quarter = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    last_day = this_quarter - timedelta(days=1)
    return Quarter(first_day=date(last_day.year, (last_day.month - 1) // 3 * 3 + 1, 1), last_day=last_day)


def sections_visible(user: User | AnonymousUser) -> set[str]:
    """The sections this person may act on; "alerts" for every active staff member."""
    if not (user.is_active and user.is_staff):
        return set()
    visible = {"alerts"}
    visible |= {name for name, perms in SECTION_PERMISSIONS.items() if any(user.has_perm(perm) for perm in perms)}
    return visible


def _review(user: User) -> dict[str, Any]:
    waiting = versions_in_review().exclude(author=user)
    yours = versions_in_review().filter(author=user)
    return {
        "waiting": list(waiting[:LIMIT]),
        "waiting_count": waiting.count(),
        "yours": list(yours[:LIMIT]),
    }


def _releases() -> dict[str, Any]:
    waiting = releases_waiting()
    return {"waiting": waiting[:LIMIT], "count": len(waiting)}


def _rotations() -> list[dict[str, Any]]:
    keys = sorted(keys_needing_rotation(), key=lambda key: key.next_due)
    return [{"key": key, "state": rotation_state(key), "due": key.next_due} for key in keys[:LIMIT]]


def _caps() -> list[dict[str, Any]]:
    return [row for row in budget_burn() if (row["percent"] or 0) >= CAPS_NEAR_PERCENT][:LIMIT]


def _alerts(user: User) -> dict[str, Any]:
    budget, budget_count = open_alerts_addressed_to(user=user, kind=BudgetAlert, limit=LIMIT)
    monitor, monitor_count = open_alerts_addressed_to(user=user, kind=MonitorAlert, limit=LIMIT)
    return {
        "budget": budget,
        "budget_count": budget_count,
        "monitor": monitor,
        "monitor_count": monitor_count,
        "can_open_budget": user.has_perm("usage.view_budgetalert"),
        "can_open_monitor": user.has_perm("usage.view_monitoralert"),
    }


def home_sections(*, user: User | AnonymousUser) -> dict[str, Any]:
    """Section name → its data, for the sections this person may act on only."""
    visible = sections_visible(user)
    if not visible:
        return {}
    assert isinstance(user, User)  # an active staff member is a signed-in account
    sections: dict[str, Any] = {"alerts": _alerts(user)}
    if "review" in visible:
        sections["review"] = _review(user)
    if "releases" in visible:
        sections["releases"] = _releases()
    if "rotations" in visible:
        sections["rotations"] = _rotations()
    if "caps" in visible:
        sections["caps"] = {"rows": _caps(), "percent": CAPS_NEAR_PERCENT}
    if "chain" in visible:
        sections["chain"] = audit_chain_state()
    if "evidence" in visible:
        sections["evidence"] = {
            "quarter": last_full_quarter(timezone.now().date()),
            "types": list(evidence_types().values()),
        }
    return sections
