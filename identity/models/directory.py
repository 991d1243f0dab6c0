"""The mirrored directory: tenants, instances and their bindings, app credentials,
departments, members and their authorisations (identity.directory)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from identity.models.base import ACTIVE, Base, Timestamps


class Tenant(Timestamps, Base):
    __tablename__ = "tenants"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_code: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))
    """Marketplace `timeStamp` (yyyyMMddHHmmssSSS, GMT+8) of the newest applied tenantSync."""


Index("ix_tenants_code_lower", func.lower(Tenant.tenant_code))
"""A tenant named by its code, whatever the case (a member's login, the directory report)."""


class Instance(Timestamps, Base):
    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("order_id", "order_line_id"),)
    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    order_line_id: Mapped[str] = mapped_column(String(64))
    business_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    expire_time: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_order_id: Mapped[str | None] = mapped_column(String(64))
    last_order_line_id: Mapped[str | None] = mapped_column(String(64))
    # The order read from the query-order API (identity.marketplace.order_details).
    order_state: Mapped[str | None] = mapped_column(String(16))
    order_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    order_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    order_next_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    order_error: Mapped[str | None] = mapped_column(String(255))


class TenantInstance(Timestamps, Base):
    """A tenant bound to an instance: multi-instance binding (§0.4), keyed like tenantSync's
    idempotency key (instanceId, tenantId) and tombstoned, never deleted, so that a stale add
    cannot bring an unbound instance back."""

    __tablename__ = "tenant_instances"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    order_id: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class AppCredential(Timestamps, Base):
    __tablename__ = "app_credentials"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), default="")
    client_id: Mapped[str] = mapped_column(String(64))
    client_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    """AES-GCM under the master key (identity.crypto); never the plaintext."""
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class Department(Timestamps, Base):
    __tablename__ = "departments"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    parent_code: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class Member(Timestamps, Base):
    """A person of the tenant's directory, unique by (tenantId, userName) (contract §3.3)."""

    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_name_c", "tenant_id", "name", "user_name"),
        # a name search (`q`) reads the index alone; on PostgreSQL `name` is in the "C"
        # collation there (the migrations build it), where a prefix is one range
    )
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    org_code: Mapped[str] = mapped_column(String(64))
    position: Mapped[str | None] = mapped_column(String(64))
    employee_code: Mapped[str | None] = mapped_column(String(64))
    employee_type: Mapped[int | None] = mapped_column(BigInteger)
    mobile: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(128))
    work_place: Mapped[str | None] = mapped_column(String(256))
    entry_date: Mapped[str | None] = mapped_column(String(20))
    huawei_user_id: Mapped[str | None] = mapped_column(String(128))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    """Set by identity at each sign-in (not a marketplace field); the admin console shows it."""
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))


class Authorisation(Timestamps, Base):
    """A member's right to use one app: role, enable flag, authorised/cancelled/deleted."""

    __tablename__ = "authorisations"
    __table_args__ = (
        Index(
            "ix_authorisations_not_enabled",
            "tenant_id",
            "user_name",
            "state",
            sqlite_where=text("enabled = 0"),
            postgresql_where=text("enabled = false"),
        ),  # the few not enabled: where the `disabled` filter of the member list starts
    )
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    last_sync_time: Mapped[str] = mapped_column(String(17))
