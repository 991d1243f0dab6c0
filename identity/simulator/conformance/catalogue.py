"""What a case is: its name, the contract section it checks, what it sends and expects, what it
needs to run, and what its failure would cost in the marketplace.

Each case module lists its own cases (`SPECS`); the runner joins them into one catalogue, which
is also what the report, the JUnit file and docs/conformance.md name. A case the run cannot do
(a key or an option missing) is skipped with the reason of its first missing need.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Need(StrEnum):
    """What a case needs beyond the target and its two access keys."""

    PUBLIC_KEY = "public-key"
    PROBE = "probe"
    V1 = "v1"
    ORDERS = "orders"


SKIP_REASONS = {
    Need.PUBLIC_KEY: "no --public-key: clientSecret cannot be encrypted for the endpoint (§2.7)",
    Need.PROBE: "no --sso-callback (and --public-key): who the endpoint lets in cannot be seen "
    "from a sync's answer, only by signing members in",
    Need.V1: "no --v1-key: the legacy V1 calls are not checked",
    Need.ORDERS: "no --order-ak/--order-sk: the order-details path (query-order API) is not "
    "checked",
}


class Consequence(StrEnum):
    """What the marketplace does when such a case fails, in its terms (§0.3, §4.9)."""

    DIAL = "dial"
    ORDERS = "orders"
    LIFECYCLE = "lifecycle"
    DIRECTORY = "directory"
    SECURITY = "security"
    ACCESS = "access"
    LEGACY = "legacy"


CONSEQUENCES = {
    Consequence.DIAL: "the dial test (拨测) replays debug calls like these twice a day and would "
    "fail: each failure is notified, five failing days in a row freeze trading and hide the "
    "product (§0.3)",
    Consequence.ORDERS: "purchases would fail: KooGallery retries newInstance for 3 h, then the "
    "order fails and is unsubscribed; later binding fails at tenantSync (§0.4, §4.2, §4.9)",
    Consequence.LIFECYCLE: "renewals, upgrades, freezes or releases would fail: retried for 1-3 h, "
    "then a manual restart; losses from a missed freeze are the seller's (§4.4-§4.7, §4.9)",
    Consequence.DIRECTORY: "binding an enterprise or syncing its directory would fail; kit calls "
    "are not retried, the enterprise admin must re-run them and the seller is told (§3.0)",
    Consequence.SECURITY: "forged, replayed or malformed calls would be accepted, or real ones "
    "refused (§1.2, §2)",
    Consequence.ACCESS: "members would be let in who must be refused, or refused who must be let "
    "in (§3.3, §4.5, §5.2 step 7)",
    Consequence.LEGACY: "products still on the V1 contract would fail its calls (§0.2, §2.5, "
    "§2.6, §4.8)",
}


@dataclass(frozen=True)
class Spec:
    name: str
    section: str
    sent: str
    expected: str
    consequence: Consequence
    needs: tuple[Need, ...] = ()

    @property
    def group(self) -> str:
        """The JUnit class name: what comes before the first dot."""
        return self.name.split(".", 1)[0]


def spec(
    name: str, section: str, sent: str, expected: str, consequence: Consequence, *needs: Need
) -> Spec:
    return Spec(name, section, sent, expected, consequence, needs)
