"""Pure rules of notification-svc: which channels to try, in which order, how long to wait.

No I/O and no framework here: the consumers, the dispatcher and the webhooks apply these.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rn623_rulebook.contact_data import InvalidField, is_mobile, normalize_phone

CHANNELS = ("whatsapp", "sms", "email")

# A delivery's status only moves forward: a late "sent" callback never undoes "delivered".
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}
TERMINAL = frozenset({"failed", "cancelled"})
PROVEN = frozenset({"delivered", "read"})


@dataclass(frozen=True)
class Contacts:
    """Where the beneficiary can be reached (personal data: never logged)."""

    email: str | None = None
    phone: str | None = None
    whatsapp: str | None = None

    def address(self, channel: str) -> str | None:
        """The address for ``channel``: WhatsApp falls back to the phone number."""
        if channel == "email":
            return self.email
        if channel == "sms":
            return self.phone
        if channel == "whatsapp":
            return self.whatsapp or self.phone
        return None


def messaging_number(raw: str | None) -> str | None:
    """The number SMS and WhatsApp can reach, in E.164 with the Brazilian mobile ninth
    digit; None for a Brazilian landline or a number that is not one."""
    if not raw:
        return None
    try:
        e164 = normalize_phone(raw)
    except InvalidField:
        return None
    if e164.startswith("+55") and not is_mobile(e164):
        return None  # a landline: no SMS, no WhatsApp
    return e164


def plan_channels(
    preferred: Iterable[str], order: Iterable[str], contacts: Contacts
) -> tuple[str, ...]:
    """The channels to try, in order: the beneficiary's preferences first, then the
    operator's order; only channels with an address, each once."""
    plan: list[str] = []
    for channel in (*preferred, *order):
        if channel in CHANNELS and channel not in plan and contacts.address(channel):
            plan.append(channel)
    return tuple(plan)


def advances(current: str, new: str) -> bool:
    """Whether a delivery in ``current`` status moves to ``new`` (never backwards, never
    out of a terminal status; a failure is accepted until delivery is proven)."""
    if current in TERMINAL:
        return False
    if new == "failed":
        return current not in PROVEN
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current, 99)


def beyond_acceptance(status: str) -> bool:
    """Whether a provider's status tells more than the record of its send will (delivered,
    read, failed). A "sent" callback that beats that record needs no applying later."""
    return status == "failed" or STATUS_RANK.get(status, -1) > STATUS_RANK["sent"]


def retry_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry number ``attempt`` (1 = first retry): exponential backoff with
    full jitter, never sooner than the provider's ``Retry-After``."""
    rand = rng or random
    if retry_after is not None:
        # the provider said when; a little jitter keeps the retries of a burst apart
        return max(0.0, retry_after) * (1 + rand.uniform(0, 0.1))
    ceiling = min(maximum, initial * 2 ** max(0, attempt - 1))
    return rand.uniform(initial / 2, max(initial / 2, ceiling))


def first_name(name: str | None) -> str | None:
    """The first word of a name, for a greeting."""
    if not name or not name.split():
        return None
    return name.split()[0].capitalize()


def providers_for(
    channel: str, configured: Mapping[str, Iterable[str]], available: Iterable[str]
) -> tuple[str, ...]:
    """The providers of ``channel`` in failover order, keeping only those available."""
    usable = set(available)
    return tuple(p for p in configured.get(channel, ()) if p in usable)
