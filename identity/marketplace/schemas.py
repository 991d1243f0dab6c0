"""Wire shapes of the KooGallery V2 callbacks (contract §3, §4), validated strictly.

Kit numbers stay numbers and basic values stay strings: a wrong JSON type is a 000002 naming the
field. Leniency is only where the contract documents variants: the V1 `extension` user shape,
`enable` as a string, `userList` as a JSON string, and the `orgInfoList` forms and aliases.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, TypeVar

import json5
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from identity.errors import InvalidParameter, describe_validation

MAX_USERS_PER_SYNC = 500
MAX_QUERY_IDS = 100

NO_NUL = r"^[^\x00]*$"
"""PostgreSQL cannot store NUL in text: every stored string refuses it here (000002), in
pydantic-core's regex engine rather than a Python callback per field."""
Id64 = Annotated[str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=64)]
OptId64 = Annotated[str, StringConstraints(pattern=NO_NUL, max_length=64)]
Str64 = Annotated[str, StringConstraints(pattern=NO_NUL, max_length=64)]
GMT8 = timezone(timedelta(hours=8))
MAX_SYNC_TIME_AHEAD = timedelta(days=1)


def _not_ahead(value: str) -> str:
    """A sync time is stored on every row it writes, and a later sync must be at least as new
    to apply (§7): one from the far future would freeze the row until then. A day ahead of our
    clock tolerates any plausible skew."""
    limit = (datetime.now(GMT8) + MAX_SYNC_TIME_AHEAD).strftime("%Y%m%d%H%M%S%f")[:17]
    if value > limit:
        raise ValueError("is more than a day ahead of this service's clock")
    return value


SyncTime = Annotated[str, StringConstraints(pattern=r"^\d{17}$"), AfterValidator(_not_ahead)]
"""yyyyMMddHHmmssSSS, GMT+8 (§3.0); fixed width, so strings compare in time order."""


class Wire(BaseModel):
    model_config = ConfigDict(
        strict=True, alias_generator=to_camel, validate_by_name=False, extra="ignore", frozen=True
    )


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate, turning the first problems into one 000002 message that names the fields."""
    if not isinstance(data, dict):
        raise InvalidParameter("body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidParameter(describe_validation(exc, limit=3, whole="body")) from None


# --- Kit (联营SaaS同步) --------------------------------------------------------------------


class KitCall(Wire):
    instance_id: OptId64
    tenant_id: Id64
    test_flag: Literal[0, 1]
    time_stamp: SyncTime

    @field_validator("test_flag", "flag", mode="before", check_fields=False)
    @classmethod
    def _numbers_not_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a JSON number, not a boolean")
        return value

    @property
    def test(self) -> bool:
        return self.test_flag == 1


class TenantSync(KitCall):
    order_id: OptId64
    tenant_code: Id64
    name: Annotated[str, StringConstraints(pattern=NO_NUL, max_length=255)]
    domain_name: Annotated[str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=255)]
    flag: Literal[0, 1, 2]


class ApplicationSync(KitCall):
    app_id: Id64
    client_id: Id64
    client_secret: Annotated[str, StringConstraints(pattern=NO_NUL, max_length=8192)]
    flag: Literal[0, 1, 2]


def _to_bool(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


class User(Wire):
    user_name: Id64
    name: Str64
    org_code: Str64
    role: Literal["user", "admin"]
    enable: bool
    position: Str64 | None = None
    employee_code: Str64 | None = None
    employee_type: Annotated[int, Field(ge=0, le=99_999_999_999)] | None = None
    """Integer(11) (§3.3)."""
    mobile: Annotated[str, StringConstraints(pattern=NO_NUL, max_length=32)] | None = None
    email: Annotated[str, StringConstraints(pattern=NO_NUL, max_length=128)] | None = None
    work_place: Annotated[str, StringConstraints(pattern=NO_NUL, max_length=256)] | None = None
    entry_date: Annotated[str, StringConstraints(pattern=NO_NUL, max_length=20)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten_v1_extension(cls, data: Any) -> Any:
        """V1 carried entryDate, employeeType and workPlace in a nested `extension` (§3.3)."""
        if isinstance(data, dict) and isinstance(data.get("extension"), dict):
            merged = {k: v for k, v in data["extension"].items() if v is not None}
            merged.update({k: v for k, v in data.items() if k != "extension" and v is not None})
            return merged
        return data

    @field_validator("enable", mode="before")
    @classmethod
    def _enable_string(cls, value: Any) -> Any:
        return _to_bool(value)

    @field_validator("employee_type", mode="before")
    @classmethod
    def _employee_type_string(cls, value: Any) -> Any:
        if value == "":
            return None
        if isinstance(value, str) and value.isdigit():
            return int(value)
        return value


class AuthSync(KitCall):
    app_id: Id64
    user_list: Annotated[list[User], Field(max_length=MAX_USERS_PER_SYNC)]
    current_sync_time: SyncTime | None = None
    flag: Literal[0, 1, 2, 3]

    @field_validator("user_list", mode="before")
    @classmethod
    def _v1_string(cls, value: Any) -> Any:
        """V1 sends userList as a string holding JSON."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except (ValueError, RecursionError):
                raise ValueError("is a string that is not a JSON list") from None
        return value

    @property
    def sync_time(self) -> str:
        return self.current_sync_time or self.time_stamp


class SingleOrgSync(KitCall):
    org_code: Id64
    org_name: Annotated[str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=128)]
    parent_code: OptId64 | None = None
    flag: Literal[0, 1, 2]


class OrgInfo(Wire):
    org_code: Id64
    org_name: Annotated[str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=128)]
    parent_code: OptId64 | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """`name` (V1) and `OrgName` (one guide page) both mean orgName (§3.5)."""
        if isinstance(data, dict) and "orgName" not in data:
            for alias in ("OrgName", "name"):
                if alias in data:
                    return {**data, "orgName": data[alias]}
        return data


_STRING_OR_BARE_KEY = re.compile(
    r'"(?:[^"\\]++|\\.)*+"?|([{,]\s*+)([A-Za-z_$][\w$]*+)(\s*+:)', re.DOTALL
)
"""A string, or a bare key after `{` or `,`. Linear: every quantifier is possessive, and a string
left open runs to the end of the text, so the scan never restarts inside it (a backtracking
version re-scanned the rest of the text from every `\\"` of an unterminated string: quadratic)."""

JSON5_MAX_CHARS = 1024
"""The pure-Python JSON5 parser costs up to ~30 µs a character, on the event loop: 1 KiB is about
30 ms at worst. Larger strings must be JSON, or JSON with unquoted keys (the documented form)."""


def _quote_bare_keys(text: str) -> str:
    """`[{orgCode:"1"}]` -> `[{"orgCode":"1"}]`, leaving everything inside strings alone."""
    return _STRING_OR_BARE_KEY.sub(
        lambda m: m.group(0) if m.group(1) is None else f'{m.group(1)}"{m.group(2)}"{m.group(3)}',
        text,
    )


def _lenient_list(value: Any) -> Any:
    """orgInfoList as a JSON string, or as the V2 example's JS literal with unquoted keys.

    Both go through the C JSON parser in linear time, whatever the size. The pure-Python JSON5
    parser, for anything else JSON5 allows, only sees strings up to JSON5_MAX_CHARS.
    """
    if not isinstance(value, str):
        return value
    for loads in (json.loads, lambda t: json.loads(_quote_bare_keys(t))):
        try:
            return loads(value)
        except (ValueError, RecursionError):
            continue
    if len(value) > JSON5_MAX_CHARS:
        raise ValueError(
            "is a string that is neither JSON nor JSON with unquoted keys (other relaxed JSON5 "
            f"forms are accepted only up to {JSON5_MAX_CHARS} characters)"
        )
    try:
        return json5.loads(value)
    except (ValueError, RecursionError):
        raise ValueError("is a string that is neither JSON nor a relaxed JSON list") from None


class AllOrgSync(KitCall):
    org_info_list: list[OrgInfo]

    @model_validator(mode="before")
    @classmethod
    def _v1_field(cls, data: Any) -> Any:
        """V1 named the list `orgInfo` (a string of JSON)."""
        if isinstance(data, dict) and "orgInfoList" not in data and "orgInfo" in data:
            return {**data, "orgInfoList": data["orgInfo"]}
        return data

    @field_validator("org_info_list", mode="before")
    @classmethod
    def _string_forms(cls, value: Any) -> Any:
        return _lenient_list(value)


# --- Basic (order / instance) --------------------------------------------------------------


class BasicCall(Wire):
    activity: str
    test_flag: Literal["0", "1", ""] | None = None

    @property
    def test(self) -> bool:
        return self.test_flag == "1"


class NewInstance(BasicCall):
    order_id: Id64
    order_line_id: Id64
    business_id: Id64


class QueryInstance(BasicCall):
    instance_id: Annotated[
        str, StringConstraints(pattern=NO_NUL, min_length=1, max_length=MAX_QUERY_IDS * 65)
    ]

    @property
    def ids(self) -> list[str]:
        return _split_ids(self.instance_id)

    @field_validator("instance_id")
    @classmethod
    def _check_ids(cls, value: str) -> str:
        ids = _split_ids(value)
        if len(ids) > MAX_QUERY_IDS:
            raise ValueError(f"lists {len(ids)} ids; at most {MAX_QUERY_IDS}")
        if any(not i or len(i) > 64 for i in ids):
            raise ValueError("holds an empty or over-long id")
        return value


def _split_ids(value: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in value.split(",")))


_EXPIRE = re.compile(r"^\d{14}(\d{3})?$")


def parse_expire_time(value: str) -> datetime:
    """UTC yyyyMMddHHmmss; the official example has 17 digits, so milliseconds are accepted."""
    if not _EXPIRE.match(value):
        raise ValueError("expireTime must be yyyyMMddHHmmss or yyyyMMddHHmmssSSS")
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(
            microsecond=int(value[14:] or 0) * 1000
        )
    except ValueError:
        raise ValueError("expireTime is not a valid date") from None


class RefreshInstance(BasicCall):
    instance_id: Id64
    scene: Literal["TRIAL_TO_FORMAL", "RENEWAL", "UNSUBSCRIBE_RENEWAL_PERIOD", "RENEWAL_CHANGE"]
    order_id: Id64
    order_line_id: Id64
    product_id: OptId64 | None = None
    expire_time: str

    @field_validator("expire_time")
    @classmethod
    def _expire(cls, value: str) -> str:
        parse_expire_time(value)
        return value


class UpdateInstanceStatus(BasicCall):
    instance_id: Id64
    status: Literal["FREEZE", "UNFREEZE"]


class ReleaseInstance(BasicCall):
    instance_id: Id64
    order_id: OptId64 | None = None
    order_line_id: OptId64 | None = None


class UpgradeInstance(BasicCall):
    instance_id: Id64
    order_id: Id64
    order_line_id: Id64
