"""Everything the console holds, and what it is set up with.

`ConsoleSetup` is what `identity simulate serve` knows: where the ISV is (identity's base URL),
the auth centre's own address (each tenant's `domainName`), the seller's keys, the development
sender's file and whether the console answers other machines. `Console` is the running state:
the world it changes (shared with the auth centre), the auth centre's issuer (to end a member's
sign-ins), the syncs it sent, password resets in progress and the signed-in sessions, plus
which of its enterprises are not bound to the app yet. An enterprise of the scenario file counts
as bound: `serve --provision` or `identity demo` binds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from identity.simulator.console.access import Sessions
from identity.simulator.console.deliveries import Call, Delivery, Link, Outbox, deliver
from identity.simulator.console.passwords import Messages
from identity.simulator.console.resets import Resets
from identity.simulator.console.world import NotAllowed
from identity.simulator.oauth import Issuer
from identity.simulator.scenario import Scenario, TenantSpec, World
from identity.simulator.wire import DeliveryError, Keys


@dataclass(frozen=True)
class ConsoleSetup:
    identity: str
    auth_centre: str
    keys: Keys
    notify_file: Path | None = None
    anywhere: bool = False
    """Answer clients that are not on this machine too (`--console-anywhere`)."""


def setup_from(
    identity: str,
    auth_centre: str,
    keys: Callable[[], Keys],
    notify_file: Path | None,
    anywhere: bool,
) -> tuple[ConsoleSetup, str | None]:
    """The setup, and a warning when the seller's keys cannot be read: the console serves
    anyway and says on each delivery which key is missing."""
    try:
        found, warning = keys(), None
    except DeliveryError as exc:
        found, warning = Keys(None, None), f"the console cannot sign syncs: {exc}"
    return ConsoleSetup(identity, auth_centre, found, notify_file, anywhere), warning


@dataclass(frozen=True)
class Done:
    """What an action did, for the page after it: a sentence, the delivery it made, and for an
    import each row's result (`line`, `account`, `added`, `zh`, `en`)."""

    zh: str
    en: str
    delivery: Delivery | None = None
    imported: list[dict[str, Any]] | None = None


@dataclass
class Console:
    world: World
    issuer: Issuer
    setup: ConsoleSetup
    messages: Messages
    outbox: Outbox = field(default_factory=Outbox)
    resets: Resets = field(init=False)
    sessions: Sessions = field(init=False)
    unbound: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.resets = Resets(self.issuer.clock)
        self.sessions = Sessions(self.issuer.clock)

    @property
    def scenario(self) -> Scenario:
        return self.world.scenario

    @property
    def link(self) -> Link:
        return Link(
            self.setup.identity, self.setup.keys, self.scenario.app_id, self.setup.auth_centre
        )

    def enterprise(self, code: str) -> TenantSpec:
        """One of the buyer's enterprises, by its code."""
        for tenant in self.scenario.buyer_tenants:
            if tenant.tenant_code == code:
                return tenant
        raise NotAllowed(f"没有企业 {code}", f"You manage no enterprise {code}")

    def bound(self, tenant: TenantSpec) -> bool:
        return tenant.tenant_id not in self.unbound

    async def send(self, tenant: TenantSpec, zh: str, en: str, calls: list[Call]) -> Done:
        """Deliver `calls` about `tenant` (as the change left it), when there are any."""
        if not calls:
            return Done(zh, en)
        delivery = self.outbox.add(tenant, zh, en, calls)
        await deliver(self.outbox, self.link, delivery)
        return Done(zh, en, delivery)
