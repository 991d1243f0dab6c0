"""One run of the kit: its options, what the case modules share, and how a case is judged.

A case is opened by name (`Run.case`): the catalogue gives its section and expectations, and a
case whose needs the run cannot meet is recorded as skipped there and then (None is returned,
and nothing is sent). An open case then looks at one or more answers (`Case.expect`,
`Case.expect_sign_in`); the first problem fails it, and "got" says what came back and what was
wrong. A case that never looked at anything fails too: the kit must not pass what it did not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric import rsa

from identity.marketplace.orders import AccessKey
from identity.simulator.conformance.catalogue import SKIP_REASONS, Need, Spec
from identity.simulator.conformance.checks import Check, answer_problem
from identity.simulator.conformance.exchange import Line, Reply
from identity.simulator.conformance.probe import AuthCentre, SignIn
from identity.simulator.conformance.subjects import Subjects
from identity.simulator.wire import SyncClock

DEFAULT_TIME_LIMIT = 20.0
"""The marketplace waits 20 s for an answer (§0.3)."""
DEFAULT_BODY_LIMIT = 1024 * 1024
"""The largest real call (authSync of 500 members) is about 250 KB (§3.3)."""
DEFAULT_DOMAIN = "https://auth-centre.conformance.example.com"
"""The tenants' `domainName` when the kit serves no auth centre: any origin will do."""


@dataclass(frozen=True)
class Options:
    target: str
    basic_key: str
    kit_key: str
    app_id: str
    public_key: rsa.RSAPublicKey | None = None
    sso_callback: str | None = None
    probe_url: str | None = None
    v1_key: str | None = None
    order_key: AccessKey | None = None
    auth_centre_host: str = "127.0.0.1"
    auth_centre_port: int = 0
    auth_centre_url: str | None = None
    time_limit: float = DEFAULT_TIME_LIMIT
    body_limit: int = DEFAULT_BODY_LIMIT

    @property
    def serves_auth_centre(self) -> bool:
        return self.sso_callback is not None or self.order_key is not None

    def unmet(self, needs: tuple[Need, ...]) -> Need | None:
        have = {
            Need.PUBLIC_KEY: self.public_key is not None,
            Need.PROBE: self.sso_callback is not None and self.public_key is not None,
            Need.V1: bool(self.v1_key),
            Need.ORDERS: self.order_key is not None,
        }
        return next((need for need in needs if not have[need]), None)


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Result:
    spec: Spec
    status: Status
    got: str
    seconds: float = 0.0


@dataclass
class Case:
    spec: Spec
    time_limit: float
    got: str = ""
    problem: str | None = None
    looked: int = 0
    seconds: float = 0.0

    def expect(self, reply: Reply, *checks: Check, plain: bool = False) -> bool:
        """The answer against the transport rules (unless `plain`: the checks cover them),
        then `checks`; False once the case has failed."""
        self.looked += 1
        self.seconds += reply.seconds
        if self.problem is not None:
            return False
        problem = None if plain else answer_problem(reply, self.time_limit)
        for check in checks:
            problem = problem or check(reply)
        self.got = reply.summary() if problem is None else _joined(reply.summary(), problem)
        self.problem = problem
        return problem is None

    def expect_all(self, replies: list[Reply], *checks: Check) -> bool:
        """Answers to calls sent at once: each checked; the case took as long as the slowest."""
        passed = [self.expect(reply, *checks) for reply in replies]
        self.seconds -= sum(r.seconds for r in replies) - max(
            (r.seconds for r in replies), default=0
        )
        return all(passed)

    def expect_sign_in(self, sign_in: SignIn, verdict: str) -> bool:
        self.looked += 1
        self.seconds += sign_in.seconds
        if self.problem is not None:
            return False
        problem = None if sign_in.verdict == verdict else f"expected {verdict}"
        if sign_in.error is None and sign_in.seconds > self.time_limit:
            problem = f"answered after {sign_in.seconds:.1f} s, over the time limit"
        self.got = sign_in.summary() if problem is None else f"{sign_in.summary()}: {problem}"
        self.problem = problem
        return problem is None

    def fail(self, problem: str) -> None:
        """A problem the kit saw elsewhere than in an answer (what the endpoint asked of it)."""
        self.looked += 1
        if self.problem is None:
            self.problem = self.got = problem

    def result(self) -> Result:
        if self.looked == 0:
            return Result(self.spec, Status.FAILED, "nothing was checked", self.seconds)
        status = Status.PASSED if self.problem is None else Status.FAILED
        return Result(self.spec, status, self.got, self.seconds)


def _joined(summary: str, problem: str) -> str:
    return problem if summary == problem else f"{summary}: {problem}"


@dataclass
class Run:
    options: Options
    catalogue: dict[str, Spec]
    line: Line
    subjects: Subjects
    centre: AuthCentre | None = None
    clock: SyncClock = field(default_factory=SyncClock)
    entries: list[Case | Result] = field(default_factory=list)
    instances: dict[str, str] = field(default_factory=dict)
    """instanceIds the endpoint gave, by the tenant key they were bought for."""

    def case(self, name: str) -> Case | None:
        """Open a case, or record it skipped (and return None) when a need is unmet."""
        spec = self.catalogue[name]
        unmet = self.options.unmet(spec.needs)
        if unmet is not None:
            self.entries.append(Result(spec, Status.SKIPPED, SKIP_REASONS[unmet]))
            return None
        opened = Case(spec, self.options.time_limit)
        self.entries.append(opened)
        return opened

    def stamp(self) -> str:
        """A sync time, `yyyyMMddHHmmssSSS` GMT+8, later than every one before (§3.0, §7)."""
        return self.clock.now()

    @property
    def domain(self) -> str:
        """Every run tenant's `domainName` (§3.1): the kit's auth centre when it serves one."""
        return self.centre.url if self.centre is not None else DEFAULT_DOMAIN

    def instance(self, key: str) -> str:
        """The instanceId the endpoint gave for a tenant's order, or (none given) a stand-in
        that lets the later cases run and fail on their own."""
        return self.instances.get(key) or self.subjects.tenant(key).order.business_id or ""

    async def sign_in(self, tenant_key: str, user_name: str) -> SignIn:
        assert self.centre is not None  # PROBE cases run only with a callback
        tenant = self.subjects.tenant(tenant_key)
        return await self.centre.sign_in(tenant, tenant.member(user_name))

    def results(self) -> list[Result]:
        return [e.result() if isinstance(e, Case) else e for e in self.entries]
