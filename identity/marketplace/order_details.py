"""The order behind an instance, read from the marketplace's query-order API (`orders`).

newInstance names only the order and its line. When a Huawei Cloud access key is configured
(`IDENTITY_MARKETPLACE_AK`/`_SK`), the order is asked for before the instance is provisioned:

- confirmed within the deadline: the instance is created with its order (`confirmed`) and the
  call answered `000000`;
- refused (the API knows no such order, or it is another line or product): nothing is
  provisioned; the call is answered `000005` and audited;
- not known in time (the API slow, down, or refusing our own key): the instance is created
  `pending` and the call answered `000004` with its id, at once. The worker asks again
  (`confirm_due`), the first time within 30 s, then backing off, for at most the marketplace's
  three hours of retries. Meanwhile queryInstance leaves the instance out of its answer: the
  marketplace takes an instance it is told about as provisioned, and `000003` would say it does
  not exist. A retried newInstance for the same line asks again.

The order's `orderInfo` is kept encrypted with the instance (its buyer is personal data); the
product and the expiry of the instance's line are also kept in the clear, as refreshInstance
and upgradeInstance keep them. An instance made before a key was configured, or by a debug
call, has no order state (NULL) and is treated as confirmed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.crypto import Cipher, Context
from identity.db import Database, utcnow
from identity.marketplace.orders import AccessKey, Kind, OrderApi, Outcome
from identity.marketplace.schemas import parse_expire_time
from identity.models import ACTIVE, Instance, TenantInstance
from identity.settings import Settings

log = structlog.get_logger("identity.marketplace")

CONFIRMED, PENDING, REFUSED, GIVEN_UP = "confirmed", "pending", "refused", "given_up"
FIRST_RETRY = timedelta(seconds=20)
LONGEST_WAIT = timedelta(minutes=20)
RETRY_FOR = timedelta(hours=3)
"""The marketplace retries a newInstance for three hours, then unsubscribes the order."""
LEASE = timedelta(minutes=2)
"""How long a worker holds a pending instance while it asks: another worker skips it."""
BATCH = 20


def api_for(settings: Settings) -> OrderApi | None:
    """The query-order API with the configured access key, or None without one."""
    if not (settings.marketplace_ak and settings.marketplace_sk):
        return None
    key = AccessKey(settings.marketplace_ak, settings.marketplace_sk.get_secret_value())
    return OrderApi(key, settings.order_api_urls, settings.marketplace_api_timeout_seconds)


def context(instance_id: str) -> Context:
    return ("instances", instance_id, "order")


def line_of(order: dict[str, Any], order_line_id: str) -> dict[str, Any]:
    return next(
        line
        for line in order.get("orderLine", [])
        if isinstance(line, dict) and line.get("orderLineId") == order_line_id
    )


def _product_and_expiry(line: dict[str, Any]) -> tuple[str | None, datetime | None]:
    products = line.get("productInfo")
    product = products[0].get("productId") if isinstance(products, list) and products else None
    try:
        expiry = parse_expire_time(str(line.get("expireTime") or ""))
    except ValueError:
        expiry = None
    return (product[:64] if isinstance(product, str) else None), expiry


async def confirm(
    session: AsyncSession, cipher: Cipher, instance_id: str, order_line_id: str,
    order: dict[str, Any],
) -> None:  # fmt: skip
    """The instance's order is known: kept (encrypted), with its line's product and expiry."""
    product, expiry = _product_and_expiry(line_of(order, order_line_id))
    sealed = cipher.encrypt(json.dumps(order, ensure_ascii=False), context(instance_id))
    values: dict[str, Any] = {"order_state": CONFIRMED, "order_enc": sealed,
                              "order_error": None, "order_next_at": None}  # fmt: skip
    if product:
        values["product_id"] = product
    if expiry:
        values["expire_time"] = expiry
    await session.execute(
        update(Instance).where(Instance.instance_id == instance_id).values(values)
    )


async def postpone(
    session: AsyncSession, instance_id: str, attempts: int, outcome: Outcome, now: datetime
) -> None:
    """Not known yet: ask again later, each wait twice the last, up to `LONGEST_WAIT`."""
    wait = min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_WAIT)
    await session.execute(
        update(Instance)
        .where(Instance.instance_id == instance_id)
        .values(
            order_state=PENDING,
            order_attempts=attempts,
            order_next_at=now + wait,
            order_error=outcome.detail[:255],
        )
    )
    _report(instance_id, outcome)


async def conclude(session: AsyncSession, instance_id: str, state: str, detail: str) -> None:
    """Refused by the API, or given up on after the marketplace's retries ended."""
    await session.execute(
        update(Instance)
        .where(Instance.instance_id == instance_id)
        .values(order_state=state, order_next_at=None, order_error=detail[:255])
    )
    log.warning("marketplace.order_" + state, instance_id=instance_id, detail=detail)


def _report(instance_id: str, outcome: Outcome) -> None:
    if outcome.kind is Kind.CREDENTIALS:
        log.error(
            "marketplace.order_api_refused_our_key",
            instance_id=instance_id,
            detail=outcome.detail,
            settings="IDENTITY_MARKETPLACE_AK, IDENTITY_MARKETPLACE_SK",
        )
    else:
        log.warning("marketplace.order_unconfirmed", instance_id=instance_id, detail=outcome.detail)


@dataclass(frozen=True)
class Due:
    instance_id: str
    order_id: str
    order_line_id: str
    attempts: int
    created_at: datetime


async def _claim_due(db: Database, now: datetime) -> list[Due]:
    """Pending instances whose next try is due, each leased to this worker (`LEASE`)."""
    async with db.transaction() as session:
        query = (
            select(
                Instance.instance_id,
                Instance.order_id,
                Instance.order_line_id,
                Instance.order_attempts,
                Instance.created_at,
            )
            .where(Instance.order_state == PENDING, Instance.order_next_at <= now)
            .order_by(Instance.order_next_at)
            .limit(BATCH)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        due = [Due(*row) for row in await session.execute(query)]
        if due:
            await session.execute(
                update(Instance)
                .where(Instance.instance_id.in_([d.instance_id for d in due]))
                .values(order_next_at=now + LEASE)
            )
    return due


async def confirm_due(
    db: Database, cipher: Cipher, api: OrderApi, counted: Any = None
) -> dict[str, int]:
    """Ask again for the orders of pending instances that are due; what became of them.
    `counted`: a counter of the API's answers, labelled by their kind."""
    counts = {CONFIRMED: 0, PENDING: 0, REFUSED: 0, GIVEN_UP: 0}
    for due in await _claim_due(db, utcnow()):
        outcome = await api.query(due.order_id, due.order_line_id)
        now = utcnow()
        async with db.transaction() as session:
            if outcome.kind is Kind.CONFIRMED:
                assert outcome.order is not None
                await confirm(session, cipher, due.instance_id, due.order_line_id, outcome.order)
                state = CONFIRMED
            elif outcome.kind is Kind.REFUSED:
                await conclude(session, due.instance_id, REFUSED, outcome.detail)
                state = REFUSED
            elif now - due.created_at >= RETRY_FOR:
                await conclude(session, due.instance_id, GIVEN_UP, outcome.detail)
                state = GIVEN_UP
            else:
                await postpone(session, due.instance_id, due.attempts + 1, outcome, now)
                state = PENDING
        if counted is not None:
            counted.labels(outcome.kind.value).inc()
        counts[state] += 1
    return counts


async def order_of(
    session: AsyncSession, cipher: Cipher, instance_id: str
) -> dict[str, Any] | None:
    """The instance's order as the API gave it, or None when none was read."""
    sealed = await session.scalar(
        select(Instance.order_enc).where(Instance.instance_id == instance_id)
    )
    if sealed is None:
        return None
    order: dict[str, Any] = json.loads(cipher.decrypt(sealed, context(instance_id)))
    return order


async def show_instance(
    session: AsyncSession, cipher: Cipher | None, instance_id: str
) -> dict[str, Any] | None:
    """One instance for an operator (`identity instances show`): its order as the API gave it
    when a master key is at hand (`order` null otherwise, or when none was read)."""
    instance = await session.get(Instance, instance_id)
    if instance is None:
        return None
    bound = await session.scalars(
        select(TenantInstance.tenant_id).where(
            TenantInstance.instance_id == instance_id, TenantInstance.state == ACTIVE
        )
    )
    return {
        "instanceId": instance.instance_id,
        "orderId": instance.order_id,
        "orderLineId": instance.order_line_id,
        "businessId": instance.business_id,
        "status": instance.status,
        "productId": instance.product_id,
        "expireTime": instance.expire_time.isoformat() if instance.expire_time else None,
        "tenants": list(bound),
        "orderState": instance.order_state,
        "orderError": instance.order_error,
        "order": await order_of(session, cipher, instance_id) if cipher else None,
    }
