"""A SCIM filter (RFC 7644 §3.4.2.2) as one SQL condition over the rows of `resources.users`
or `resources.groups`, so that paging and `totalResults` come from the database and stay right.

Each attribute a resource renders has an entry saying how it reads in SQL (`Attribute`); a
filter on anything else the schemas declare compares an absent value (RFC 7644 §3.4.2.1: no
value, so `eq` is false, `ne` true, `pr` false), since identity never holds it. What cannot be
translated faithfully is refused with `invalidFilter` naming it, never answered approximately.

Every condition is two-valued (a NULL column makes a comparison false, never unknown), so that
`not` negates exactly what the in-memory evaluator of scim2-models would. Strings compare
without case unless the attribute is `caseExact` (RFC 7643 §2.4), for ASCII letters only, on
both databases alike: SQLite's `lower` folds nothing else, nor does PostgreSQL's in the "C"
collation (`ascii_lower`), so a filter finds the same rows on either, and orders such strings by
code point on both.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from itertools import product
from typing import Any

from scim2_models import AttributeBinding, InvalidFilterException, ScimFilter
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from scim2_models.path.resolution import coerce_value
from sqlalchemy import (
    ColumnElement,
    DateTime,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from identity.models import Authorisation, Department, Member
from identity.scim import resources
from identity.scim.resources import USER_SCHEMA, Tenancy, key_of
from identity.web import holds_control

Condition = ColumnElement[bool]
Sql = ColumnElement[Any] | QueryableAttribute[Any]
Compare = Callable[[CompareOperator, Any, bool], Condition]
"""An attribute's own comparison: operator, value (as the filter gives it), case exact."""
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TO_LOWER = str.maketrans(_UPPER, _UPPER.lower())
VARIANTS = 1024
"""The most case variants of a user name `userName eq` looks up by key (ten ASCII letters);
past that it reads the app's authorisations in the tenant."""


class ascii_lower(FunctionElement[str]):  # noqa: N801 - a SQL function's name
    """`lower` of ASCII letters only, on both databases."""

    type = String()
    inherit_cache = True


@compiles(ascii_lower)
def _lower(element: ascii_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"  # SQLite's: ASCII only


@compiles(ascii_lower, "postgresql")
def _lower_c(element: ascii_lower, compiler: SQLCompiler, **kw: Any) -> str:
    # In the "C" collation PostgreSQL's lower folds ASCII letters alone, and several times
    # faster than translate() would.
    return f'lower(({compiler.process(element.clauses, **kw)}) COLLATE "C")'


def fold(text: str) -> str:
    """What `ascii_lower` makes of `text`, in Python."""
    return text.translate(_TO_LOWER)


class Kind(Enum):
    TEXT = "text"
    KEY = "key"  # an id: the value is `key_of` the filter's, compared with eq and ne only
    TIME = "time"
    FLAG = "flag"


@dataclass(frozen=True)
class Attribute:
    """How one attribute (or sub-attribute) reads in SQL."""

    value: Sql | None = None
    """Its value as rendered, NULL where the resource has none."""
    kind: Kind = Kind.TEXT
    present: Condition | None = None
    """Whether it is present (`pr`, and a value selection's entry); `value` not NULL else."""
    compare: Compare | None = None
    """Its own comparison, instead of the kind's."""
    refused: str | None = None
    """Why a filter may not name it."""


def text(column: Sql) -> ColumnElement[Any]:
    """A text column as rendered: an empty string is no value."""
    return func.nullif(column, "")


def translate(scim_filter: ScimFilter[Any], attributes: Mapping[str, Attribute]) -> Condition:
    """The filter as a condition over the columns `attributes` name (keyed by URN, folded)."""
    return _Translator(scim_filter, attributes).visit(scim_filter.ast)


class _Translator(FilterVisitor[Condition]):
    def __init__(
        self,
        scim_filter: ScimFilter[Any],
        attributes: Mapping[str, Attribute],
        within: AttrPath | None = None,
    ) -> None:
        self.filter = scim_filter
        self.attributes = attributes
        self.within = within

    def _path(self, path: AttrPath) -> AttrPath:
        """A path inside a value selection (`emails[value eq …]`) as the whole path."""
        if self.within is None:
            return path
        if path.uri or path.sub_attr:
            raise InvalidFilterException(detail=f"{path} cannot be used inside {self.within}[]")
        return AttrPath(self.within.attr, path.attr, self.within.uri)

    def _attribute(self, binding: AttributeBinding | None, path: AttrPath) -> Attribute:
        if binding is None:
            raise InvalidFilterException(detail=f"unknown attribute {path}")
        found = self.attributes.get(binding.urn.casefold())
        if found is None:
            return Attribute()  # declared by the schema, never held: absent
        if found.refused:
            raise InvalidFilterException(detail=f"{path} cannot be filtered on: {found.refused}")
        return found

    def visit_comparison(self, node: Comparison) -> Condition:
        if isinstance(node.value, str) and holds_control(node.value):
            raise InvalidFilterException(detail="a value holds a control character")
        path = self._path(node.attr_path)
        binding = self.filter.resolve_comparison(path, strict=False)
        attribute = self._attribute(binding, path)
        assert binding is not None
        value = coerce_value(binding, node.value, node.op)
        if attribute.compare is not None:
            return attribute.compare(node.op, value, binding.case_exact)
        if attribute.value is None:
            return _absent(node.op, value)
        return _compare(attribute, node.op, value, binding.case_exact, str(path))

    def visit_present(self, node: Present) -> Condition:
        path = self._path(node.attr_path)
        attribute = self._attribute(self.filter.resolve(path, strict=False), path)
        return _present(attribute)

    def visit_not(self, node: Not) -> Condition:
        return not_(self.visit(node.expr))

    def visit_logical_expr(self, node: LogicalExpr) -> Condition:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_value_path(self, node: ValuePath) -> Condition:
        """A single-valued store: each multi-valued attribute holds one entry at most, so the
        entry matching is the entry existing and the inner filter holding on it."""
        if self.within is not None or node.sub_attr:
            raise InvalidFilterException(detail=f"{node} is not a filter identity can read")
        path = node.attr_path
        entry = _present(self._attribute(self.filter.resolve(path, strict=False), path))
        inner = _Translator(self.filter, self.attributes, path).visit(node.val_filter)
        return and_(entry, inner)


def _present(attribute: Attribute) -> Condition:
    if attribute.present is not None:
        return attribute.present
    return false() if attribute.value is None else attribute.value.is_not(None)


def _absent(op: CompareOperator, value: Any) -> Condition:
    """A comparison with a value the resource does not hold (scim2-models' evaluator alike)."""
    if op == CompareOperator.eq:
        return true() if value is None else false()
    if op == CompareOperator.ne:
        return false() if value is None else true()
    return false()


def _compare(
    attribute: Attribute, op: CompareOperator, value: Any, exact: bool, name: str
) -> Condition:
    column = attribute.value
    assert column is not None
    if value is None:
        return _null(column, op, name)
    if attribute.kind is Kind.KEY:
        return key_compare(column, op, value, name)
    if attribute.kind is Kind.TIME:
        return _ordered(column, op, _naive(value, name), name)
    if attribute.kind is Kind.FLAG:
        return _ordered(column, op, bool(value), name)
    return text_compare(column, op, str(value), exact)


def _null(column: Sql, op: CompareOperator, name: str) -> Condition:
    if op == CompareOperator.eq:
        return column.is_(None)
    if op == CompareOperator.ne:
        return column.is_not(None)
    raise InvalidFilterException(detail=f"{name} {op.value} null: compare null with eq or ne")


def key_compare(column: Sql, op: CompareOperator, value: Any, name: str) -> Condition:
    """An id compared: the key it stands for (an id `resources` never gives matches nothing)."""
    if op not in (CompareOperator.eq, CompareOperator.ne):
        raise InvalidFilterException(detail=f"{name} compares with eq and ne only")
    key = key_of(value) if isinstance(value, str) else None
    equal = false() if key is None else and_(column.is_not(None), column == key)
    return equal if op == CompareOperator.eq else not_(equal)


def _naive(value: Any, name: str) -> datetime:
    """A dateTime as the columns hold it: naive UTC (a value without a zone is UTC)."""
    if not isinstance(value, datetime):
        raise InvalidFilterException(detail=f"{name} compares with dateTime values only")
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


_ORDERED = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
"""The operators of `_ordered`, named as in Python's `operator`."""


def _ordered(column: Sql, op: CompareOperator, value: Any, name: str) -> Condition:
    if op.value not in _ORDERED:
        raise InvalidFilterException(detail=f"{name} cannot be compared with {op.value}")
    held: Condition = getattr(operator, op.value)(column, value)
    if op == CompareOperator.ne:
        return or_(column.is_(None), held)
    return and_(column.is_not(None), held)


def text_compare(column: Sql, op: CompareOperator, value: str, exact: bool) -> Condition:
    """A string compared, without case unless `exact`."""
    left = column if exact else ascii_lower(column)
    right: ColumnElement[str] = literal(value if exact else fold(value), String())
    if op == CompareOperator.sw:
        held: Condition = func.substr(left, 1, func.length(right)) == right
    elif op == CompareOperator.ew:
        start = func.length(left) - func.length(right) + 1
        held = and_(func.length(left) >= func.length(right), func.substr(left, start) == right)
    elif op == CompareOperator.co:  # portably: taking `right` out of `left` changes it
        held = or_(right == "", func.replace(left, right, "") != left)
    else:
        return _ordered(left, op, right, "")
    return and_(column.is_not(None), held)


def case_variants(text: str) -> list[str] | None:
    """Every spelling of `text` that differs in the case of its ASCII letters only, or None past
    `VARIANTS` of them."""
    letters = sum(1 for c in text if c.isascii() and c.isalpha())
    if 2**letters > VARIANTS:
        return None
    choices = [(c.lower(), c.upper()) if c.isascii() and c.isalpha() else (c,) for c in text]
    return ["".join(spelling) for spelling in product(*choices)]


def user_name_compare(code: str, column: QueryableAttribute[str]) -> Compare:
    """`userName` is `{user_name}@{tenant code}`, the code the same for every User of the
    tenant. So `eq` reads the user name by key: the part before the last `@` (the code has
    none) in each of its spellings (`case_variants`), once the part after it is the tenant's
    code; the other operators compare the whole."""

    def compare(op: CompareOperator, value: Any, _exact: bool) -> Condition:
        if value is None:
            return _absent(op, value) if op in (CompareOperator.eq, CompareOperator.ne) else false()
        if op not in (CompareOperator.eq, CompareOperator.ne):
            return text_compare(column + f"@{code}", op, str(value), False)
        name, at, suffix = str(value).rpartition("@")
        variants = case_variants(name)
        if not at or fold(suffix) != fold(code):
            equal: Condition = false()
        elif variants is not None:
            equal = column.in_(variants)
        else:
            equal = ascii_lower(column) == fold(name)
        return equal if op == CompareOperator.eq else not_(equal)

    return compare


# --- what each attribute reads as --------------------------------------------------------------

_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:user:"
_ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:group:"
NOT_STORED = "it is computed, not stored"


class greatest(FunctionElement[datetime]):  # noqa: N801 - a SQL function's name
    """The latest of its (non-NULL) arguments."""

    type = DateTime()
    inherit_cache = True


@compiles(greatest)
def _greatest(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"greatest({compiler.process(element.clauses, **kw)})"


@compiles(greatest, "sqlite")
def _max(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


def _flag(present: Condition) -> Attribute:
    """A sub-attribute rendered `true` exactly when its entry is present (`primary`)."""
    return Attribute(case((present, literal(True))), Kind.FLAG)


def user_attributes(tenancy: Tenancy) -> dict[str, Attribute]:
    """What each User attribute reads as over `resources.users` (keys: folded URNs)."""
    name, email, mobile = text(Member.name), text(Member.email), text(Member.mobile)
    role, org = text(Authorisation.role), text(Member.org_code)
    in_group = resources.DEPARTMENT_ACTIVE
    department = case((in_group, text(Department.name)))
    group = case((in_group, Member.org_code))
    latest = (Member.created_at, Member.updated_at, Authorisation.updated_at)
    modified = greatest(*latest, func.coalesce(Department.updated_at, Member.updated_at))
    core = {
        "id": Attribute(Authorisation.user_name, Kind.KEY),
        "username": Attribute(
            compare=user_name_compare(tenancy.tenant_code, Authorisation.user_name),
            present=true(),
        ),
        "displayname": Attribute(name),
        "name": Attribute(present=name.is_not(None)),
        "name.formatted": Attribute(name),
        "title": Attribute(text(Member.position)),
        "usertype": Attribute(cast(Member.employee_type, String)),
        "active": Attribute(resources.ACTIVE_USER, Kind.FLAG),
        "emails": Attribute(present=email.is_not(None)),
        "emails.value": Attribute(email),
        "emails.primary": _flag(email.is_not(None)),
        "phonenumbers": Attribute(present=mobile.is_not(None)),
        "phonenumbers.value": Attribute(mobile),
        "phonenumbers.type": Attribute(case((mobile.is_not(None), literal("mobile")))),
        "roles": Attribute(present=role.is_not(None)),
        "roles.value": Attribute(role),
        "roles.primary": _flag(role.is_not(None)),
        "groups": Attribute(present=group.is_not(None)),
        "groups.value": Attribute(group, Kind.KEY),
        "groups.display": Attribute(department),
        "groups.type": Attribute(case((in_group, literal("direct")))),
        "groups.$ref": Attribute(refused="compare groups.value instead"),
        "meta": Attribute(present=true()),
        "meta.resourcetype": Attribute(literal("User")),
        "meta.created": Attribute(Member.created_at, Kind.TIME),
        "meta.lastmodified": Attribute(modified, Kind.TIME),
        "meta.location": Attribute(refused="compare id instead"),
        "meta.version": Attribute(refused=NOT_STORED),
        "schemas": Attribute(refused="every User has the same"),
    }
    extension = {
        "orgcode": Attribute(org),
        "workplace": Attribute(text(Member.work_place)),
        "entrydate": Attribute(text(Member.entry_date)),
        "subject": Attribute(refused=f"{NOT_STORED}; compare userName"),
    }
    enterprise = {
        "employeenumber": Attribute(text(Member.employee_code)),
        "department": Attribute(func.coalesce(department, org)),
    }
    return {
        **{_CORE_USER + key: value for key, value in core.items()},
        **{_ENTERPRISE + key: value for key, value in enterprise.items()},
        **{f"{USER_SCHEMA}:{key}".casefold(): value for key, value in extension.items()},
    }
