"""The error hierarchy. Each error carries a stable code; each surface renders it once.

Every error of ours is an `IdentityError`: the marketplace's below (rendered as KooGallery's
`{resultCode, resultMsg}`, contract §1.2), the login's `Refusal` (the bilingual page), the
provider's `OAuthError` (RFC 6749 `{"error", "error_description"}`) and `AuthorizePage` (its
error page), the admin wing's `AdminError` (`{"error", "message"}` or a page, by surface), and
`identity.web.FormRefused` (a form that cannot be read, which each surface turns into its
own). How each is dispatched to its renderer is said in `identity.web`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError


class ResultCode(StrEnum):
    """KooGallery V2 result codes (contract §1.2)."""

    SUCCESS = "000000"
    AUTH_FAILED = "000001"
    INVALID_PARAM = "000002"
    INSTANCE_NOT_FOUND = "000003"
    IN_PROGRESS = "000004"
    """newInstance only: accepted, provisioning goes on; the marketplace polls queryInstance."""
    INTERNAL = "000005"
    SECRET_INVALID = "000101"  # noqa: S105 - a result code


class IdentityError(Exception):
    """Base of every domain error. `code` is stable; `message` is safe to show the caller."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MarketplaceError(IdentityError):
    result_code: ResultCode = ResultCode.INTERNAL


class SignatureError(MarketplaceError):
    code = "signature_invalid"
    result_code = ResultCode.AUTH_FAILED


class InvalidParameter(MarketplaceError):
    code = "invalid_parameter"
    result_code = ResultCode.INVALID_PARAM


class InstanceNotFound(MarketplaceError):
    code = "instance_not_found"
    result_code = ResultCode.INSTANCE_NOT_FOUND


class OrderNotConfirmed(MarketplaceError):
    """The query-order API answered that newInstance's order is not what the call says."""

    code = "order_not_confirmed"
    result_code = ResultCode.INTERNAL


class SecretUndecryptable(MarketplaceError):
    code = "client_secret_undecryptable"
    result_code = ResultCode.SECRET_INVALID


def describe_validation(exc: ValidationError, *, limit: int, whole: str) -> str:
    """The first `limit` problems of a pydantic validation, each naming its field as a path
    (`userList[3].enable: …`); `whole` names the document when the problem is at its top."""
    problems = []
    for err in exc.errors()[:limit]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        problems.append(f"{where.lstrip('.') or whole}: {err['msg']}")
    return "; ".join(problems)
