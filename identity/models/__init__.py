"""Every ORM model, a module per feature, all on one `Base` (one metadata, which the
migrations and the tests read). Natural keys are primary keys or unique constraints:
idempotency comes from upserts on them (contract §3, §7), never from a look-up followed by an
insert. Import them from here: `from identity.models import Member`."""

from __future__ import annotations

from identity.models.admin import LocalPassword, LocalPasswordTry, PasswordReset, ResetLimit
from identity.models.base import ACTIVE, CANCELLED, DELETED, FROZEN, NAMING, RELEASED, Base
from identity.models.directory import (
    AppCredential,
    Authorisation,
    Department,
    Instance,
    Member,
    Tenant,
    TenantInstance,
)
from identity.models.events import DirectoryEvent, EventCursor, EventStream
from identity.models.marketplace import MarketplaceCall, Nonce
from identity.models.provider import (
    LogoutDelivery,
    OidcClient,
    OidcCode,
    OidcGrant,
    RefreshToken,
    SigningKey,
)
from identity.models.sessions import AccessRevocation, MemberSession, SessionApp, SessionEnding

__all__ = [
    "Base",
    "NAMING",
    "ACTIVE",
    "DELETED",
    "CANCELLED",
    "FROZEN",
    "RELEASED",
    "Tenant",
    "Instance",
    "TenantInstance",
    "AppCredential",
    "Department",
    "Member",
    "Authorisation",
    "MemberSession",
    "SessionApp",
    "SessionEnding",
    "AccessRevocation",
    "MarketplaceCall",
    "Nonce",
    "OidcClient",
    "SigningKey",
    "OidcGrant",
    "OidcCode",
    "RefreshToken",
    "LogoutDelivery",
    "DirectoryEvent",
    "EventCursor",
    "EventStream",
    "LocalPassword",
    "LocalPasswordTry",
    "PasswordReset",
    "ResetLimit",
]
