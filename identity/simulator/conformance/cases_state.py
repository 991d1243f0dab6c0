"""What the endpoint lets members do after each sync and lifecycle call: the calls' answers
(always checked), and sign-in probes (`probe`) that show the state they left (run with
--sso-callback). Then the end of the enterprise (release, unbinding), and the seller's own test
tenant, whose syncs carry an empty instanceId (§0.4)."""

from __future__ import annotations

from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import Need, spec
from identity.simulator.conformance.checks import accepted, lists
from identity.simulator.conformance.probe import ADMITTED, REFUSED
from identity.simulator.conformance.session import Run
from identity.simulator.conformance.subjects import (
    MAIN,
    SELLER,
    all_org_sync,
    application_sync,
    auth_sync,
    basic,
    members_of,
    tenant_sync,
)

P = Need.PROBE


SPECS = [
    spec("state.authorised-admitted", "§5.2 step 7", "sign-in probe: the authorised, enabled "
         "admin", "admitted", C.ACCESS, P),
    spec("authSync.disable", "§3.3, §6", "authSync flag 2 with enable \"false\"", "000000",
         C.DIRECTORY),
    spec("state.disabled-refused", "§3.3, §6", "sign-in probe: the disabled member", "refused",
         C.ACCESS, P),
    spec("authSync.enable", "§3.3, §6", "authSync flag 2 with enable \"true\"", "000000",
         C.DIRECTORY),
    spec("state.enabled-admitted", "§3.3, §6", "sign-in probe: the member enabled again",
         "admitted", C.ACCESS, P),
    spec("authSync.older-after-newer", "§7, §3.3", "authSync flag 2 disabling a member, then "
         "an older one (earlier currentSyncTime and timeStamp) enabling them",
         "both 000000 (the older one acknowledged)", C.DIRECTORY),
    spec("state.older-sync-ignored", "§7", "sign-in probe: that member",
         "refused: the newer sync holds", C.ACCESS, P),
    spec("authSync.cancel", "§3.3", "authSync flag 3 (authorisation cancelled)", "000000",
         C.DIRECTORY),
    spec("state.cancelled-refused", "§3.3", "sign-in probe: the member whose authorisation was "
         "cancelled", "refused", C.ACCESS, P),
    spec("authSync.delete", "§3.3, §6", "authSync flag 0 of a disabled member", "000000",
         C.DIRECTORY),
    spec("authSync.delete-again", "§3.0, §3.3", "the same member deleted again", "000000",
         C.DIRECTORY),
    spec("state.deleted-refused", "§3.3", "sign-in probe: the deleted member", "refused",
         C.ACCESS, P),
    spec("state.debug-call-changes-nothing", "§3.0", "a debug authSync (testFlag 1) deleting the "
         "admin, then a sign-in probe of the admin", "000000, and the admin still admitted",
         C.ACCESS, P),
    spec("updateInstanceStatus.freeze", "§4.5, §4.3", "updateInstanceStatus FREEZE, then "
         "queryInstance", "000000; queryInstance still lists the frozen instance", C.LIFECYCLE),
    spec("updateInstanceStatus.freeze-again", "§4.5", "FREEZE of the frozen instance", "000000",
         C.LIFECYCLE),
    spec("state.frozen-refused", "§4.5", "sign-in probe: the admin of the frozen instance",
         "refused", C.ACCESS, P),
    spec("updateInstanceStatus.unfreeze", "§4.5", "updateInstanceStatus UNFREEZE", "000000",
         C.LIFECYCLE),
    spec("state.unfrozen-admitted", "§4.5", "sign-in probe: the admin, instance unfrozen",
         "admitted", C.ACCESS, P),
    spec("releaseInstance", "§4.6", "releaseInstance", "000000", C.LIFECYCLE),
    spec("releaseInstance.again", "§4.6", "releaseInstance of the released instance", "000000",
         C.LIFECYCLE),
    spec("state.released-refused", "§4.6", "sign-in probe: the admin of the released instance",
         "refused", C.ACCESS, P),
    spec("applicationSync.delete", "§3.2", "applicationSync flag 0", "000000", C.DIRECTORY,
         Need.PUBLIC_KEY),
    spec("tenantSync.delete", "§3.1", "tenantSync flag 0", "000000", C.DIRECTORY),
    spec("tenantSync.delete-again", "§3.0, §3.1", "tenantSync flag 0 of the deleted enterprise",
         "000000", C.DIRECTORY),
    spec("seller.tenantSync", "§0.4, §3.0", "tenantSync flag 1 of the seller's test tenant: "
         "instanceId and orderId empty", "000000", C.DIRECTORY),
    spec("seller.applicationSync", "§0.4, §3.0", "its applicationSync flag 1, instanceId empty",
         "000000", C.DIRECTORY, Need.PUBLIC_KEY),
    spec("seller.allOrgSync", "§0.4, §3.0", "its allOrgSync, instanceId empty", "000000",
         C.DIRECTORY),
    spec("seller.authSync", "§0.4, §3.0", "authSync flag 1 of its test account, instanceId "
         "empty", "000000", C.DIRECTORY),
    spec("state.seller-test-account-admitted", "§0.4, §3.0, §5.1", "sign-in probe: the seller's "
         "test account", "admitted (the seller's test login)", C.ACCESS, P),
]  # fmt: skip


async def _members(run: Run, name: str, flag: int, user: str, enable: bool | None) -> None:
    """One authSync about one member of the main tenant, as the case `name`."""
    tenant, app_id = run.subjects.main, run.subjects.app_id
    if case := run.case(name):
        body = auth_sync(
            tenant, run.instance(MAIN), run.stamp(), app_id, members_of(tenant, user), flag,
            enable=enable,
        )  # fmt: skip
        case.expect(await run.line.kit("authSync", body), accepted)


async def _probe_case(run: Run, name: str, user: str, verdict: str, tenant: str = MAIN) -> None:
    if case := run.case(name):
        case.expect_sign_in(await run.sign_in(tenant, user), verdict)


async def run_state(run: Run) -> None:
    await _probe_case(run, "state.authorised-admitted", "alice", ADMITTED)
    await _members(run, "authSync.disable", 2, "carol", False)
    await _probe_case(run, "state.disabled-refused", "carol", REFUSED)
    await _members(run, "authSync.enable", 2, "carol", True)
    await _probe_case(run, "state.enabled-admitted", "carol", ADMITTED)
    await _older_after_newer(run)
    await _probe_case(run, "state.older-sync-ignored", "dave", REFUSED)
    await _members(run, "authSync.cancel", 3, "bob", None)
    await _probe_case(run, "state.cancelled-refused", "bob", REFUSED)
    await _members(run, "authSync.delete", 0, "carol", False)
    await _members(run, "authSync.delete-again", 0, "carol", False)
    await _probe_case(run, "state.deleted-refused", "carol", REFUSED)
    await _debug_changes_nothing(run)
    await _lifecycle(run)
    await _seller(run)


async def _older_after_newer(run: Run) -> None:
    """Kit calls are asynchronous; one may arrive after a newer one and must not undo it (§7)."""
    if case := run.case("authSync.older-after-newer"):
        tenant, app_id, instance = run.subjects.main, run.subjects.app_id, run.instance(MAIN)
        dave = members_of(tenant, "dave")
        older, newer = run.stamp(), run.stamp()
        disable = auth_sync(tenant, instance, newer, app_id, dave, 2, enable=False)
        enable = auth_sync(tenant, instance, older, app_id, dave, 2, enable=True)
        if case.expect(await run.line.kit("authSync", disable), accepted):
            case.expect(await run.line.kit("authSync", enable), accepted)


async def _debug_changes_nothing(run: Run) -> None:
    """A debug call (testFlag 1) naming a real tenant must not touch it (§3.0)."""
    if case := run.case("state.debug-call-changes-nothing"):
        tenant, app_id = run.subjects.main, run.subjects.app_id
        alice = members_of(tenant, "alice")
        body = auth_sync(tenant, run.instance(MAIN), run.stamp(), app_id, alice, 0, test=1)
        if case.expect(await run.line.kit("authSync", body), accepted):
            case.expect_sign_in(await run.sign_in(MAIN, "alice"), ADMITTED)


async def _lifecycle(run: Run) -> None:
    instance = run.instance(MAIN)
    freeze = basic("updateInstanceStatus", instance, status="FREEZE")
    steps = [
        ("updateInstanceStatus.freeze", freeze, "state.frozen-refused", REFUSED),
        ("updateInstanceStatus.freeze-again", freeze, None, ""),
        ("updateInstanceStatus.unfreeze", basic("updateInstanceStatus", instance,
         status="UNFREEZE"), "state.unfrozen-admitted", ADMITTED),
        ("releaseInstance", basic("releaseInstance", instance), None, ""),
        ("releaseInstance.again", basic("releaseInstance", instance), "state.released-refused",
         REFUSED),
    ]  # fmt: skip
    for name, body, probe, verdict in steps:
        if case := run.case(name):
            done = case.expect(await run.line.basic(body), accepted)
            if done and name == "updateInstanceStatus.freeze":  # frozen, not gone (§4.5)
                query = basic("queryInstance", instance)
                case.expect(await run.line.basic(query), accepted, lists(instance))
        if probe is not None:
            await _probe_case(run, probe, "alice", verdict)
    tenant = run.subjects.main
    if case := run.case("applicationSync.delete"):
        key = run.options.public_key
        body = application_sync(tenant, instance, run.stamp(), run.subjects.app_id, key, 0)
        case.expect(await run.line.kit("applicationSync", body), accepted)
    for name in ("tenantSync.delete", "tenantSync.delete-again"):
        if case := run.case(name):
            body = tenant_sync(tenant, instance, run.stamp(), run.domain, 0)
            case.expect(await run.line.kit("tenantSync", body), accepted)


async def _seller(run: Run) -> None:
    """The seller's credential and test account: the syncs of §0.4 with instanceId empty, which
    must be kept, since the seller test-logs-in with that tenant (§3.0, §5.1)."""
    tenant, line, app_id = run.subjects.tenant(SELLER), run.line, run.subjects.app_id
    if case := run.case("seller.tenantSync"):
        case.expect(
            await line.kit("tenantSync", tenant_sync(tenant, "", run.stamp(), run.domain, 1)),
            accepted,
        )
    if case := run.case("seller.applicationSync"):
        body = application_sync(tenant, "", run.stamp(), app_id, run.options.public_key)
        case.expect(await line.kit("applicationSync", body), accepted)
    if case := run.case("seller.allOrgSync"):
        case.expect(await line.kit("allOrgSync", all_org_sync(tenant, "", run.stamp())), accepted)
    if case := run.case("seller.authSync"):
        body = auth_sync(tenant, "", run.stamp(), app_id, members_of(tenant, "alice"), 1)
        case.expect(await line.kit("authSync", body), accepted)
    await _probe_case(run, "state.seller-test-account-admitted", "alice", ADMITTED, SELLER)
