"""What the console's forms and its CSV import accept, each refusal naming the field in Chinese
and English (`NotAllowed`). The world's own rules (unique codes, the tree, the limits) are the
scenario's (`world`); these are the shapes of what is typed.

- Enterprise code (tenantCode, the `@…` of every account and a host name in the demo): 2-32
  lower-case letters, digits and hyphens, not starting or ending with a hyphen. It never changes.
- Account (the part before `@`): 1-64 letters, digits, `.`, `_`, `-`, starting with a letter
  or digit. It never changes.
- Department code: 1-64 letters, digits, `.`, `_`, `-`, starting with a letter or digit.
- Names: 1-64 characters (a department's up to 128, an enterprise's up to 128), no control
  characters. Mobile: digits, optionally after `+`, 5-20 of them. E-mail: optional.
- CSV import: UTF-8 (a byte-order mark, as Excel writes it, is fine), at most 500 rows and
  512 KiB, a header row naming the columns `account`, `name`, `department` (its code, or a
  name only one department has), `mobile`, and optionally `email` (or 账号, 姓名, 部门, 手机,
  邮箱).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from identity.simulator.console.world import NotAllowed

ENTERPRISE_CODE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])$")
ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ORG_CODE = ACCOUNT
MOBILE = re.compile(r"^\+?[0-9]{5,20}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,63}$")
MAX_IMPORT_ROWS = 500
MAX_IMPORT_BYTES = 512 * 1024
COLUMNS = {
    "account": "account",
    "账号": "account",
    "name": "name",
    "姓名": "name",
    "department": "department",
    "部门": "department",
    "mobile": "mobile",
    "手机": "mobile",
    "email": "email",
    "邮箱": "email",
}
REQUIRED = ("account", "name", "department", "mobile")

Form = Mapping[str, Any]


def text(form: Form, name: str, zh: str, en: str, *, most: int, required: bool = True) -> str:
    value = form.get(name)
    value = value.strip() if isinstance(value, str) else ""
    if not value:
        if required:
            raise NotAllowed(f"请填写{zh}", f"{en} is required")
        return ""
    if len(value) > most:
        raise NotAllowed(f"{zh}最多 {most} 个字符", f"{en}: at most {most} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise NotAllowed(f"{zh}不能包含控制字符", f"{en} may not contain control characters")
    return value


def _shaped(value: str, pattern: re.Pattern[str], zh: str, en: str) -> str:
    if not pattern.match(value):
        raise NotAllowed(zh, en)
    return value


def enterprise(form: Form) -> tuple[str, str]:
    """(name, code) of a new enterprise."""
    name = text(form, "name", "企业名称", "The enterprise name", most=128)
    code = text(form, "code", "企业标识", "The enterprise code", most=32)
    _shaped(
        code,
        ENTERPRISE_CODE,
        "企业标识须为 2-32 个小写字母、数字或连字符，且不以连字符开头或结尾",
        "The enterprise code must be 2-32 lower-case letters, digits or hyphens, "
        "not starting or ending with a hyphen",
    )
    return name, code


def org_code(form: Form, name: str = "org_code") -> str:
    code = text(form, name, "部门编码", "The department code", most=64)
    return _shaped(
        code,
        ORG_CODE,
        "部门编码须为字母、数字、点、下划线或连字符，以字母或数字开头",
        "The department code must be letters, digits, '.', '_' or '-', starting with a "
        "letter or digit",
    )


def department_name(form: Form) -> str:
    return text(form, "org_name", "部门名称", "The department name", most=128)


def chosen(form: Form, name: str) -> str:
    """What a selector sent ("" for none, or for the top level as a parent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def member(form: Form, department: str) -> dict[str, Any]:
    """A new member's fields (`MemberSpec` names), but the password; `department` its
    orgCode."""
    account = text(form, "account", "账号", "The account", most=64)
    _shaped(
        account,
        ACCOUNT,
        "账号须为字母、数字、点、下划线或连字符，以字母或数字开头",
        "The account must be letters, digits, '.', '_' or '-', starting with a letter or digit",
    )
    name = text(form, "name", "姓名", "The name", most=64)
    mobile = text(form, "mobile", "手机号", "The mobile number", most=21)
    _shaped(
        mobile,
        MOBILE,
        "手机号须为 5-20 位数字，可以 + 开头",
        "The mobile number must be 5-20 digits, optionally after '+'",
    )
    email = text(form, "email", "邮箱", "The e-mail address", most=128, required=False)
    if email:
        _shaped(email, EMAIL, "邮箱格式不正确", "The e-mail address is not valid")
    fields = {"user_name": account, "name": name, "org_code": department, "mobile": mobile}
    return fields | ({"email": email} if email else {})


def read_csv(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """The rows of an import file, each with its line number and values by column."""
    if len(data) > MAX_IMPORT_BYTES:
        raise NotAllowed("文件超过 512 KiB", "The file is larger than 512 KiB")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotAllowed("文件须为 UTF-8 编码的 CSV", "The file must be a UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise NotAllowed(f"CSV 格式错误：{exc}", f"Not a valid CSV file: {exc}") from None
    if not lines:
        raise NotAllowed("文件是空的", "The file is empty")
    header = [COLUMNS.get(cell.strip().lower(), "") for cell in lines[0][1]]
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise NotAllowed(
            f"表头缺少列：{', '.join(missing)}",
            f"The header row lacks the column(s): {', '.join(missing)}",
        )
    rows = lines[1:]
    if not rows:
        raise NotAllowed("文件中没有成员", "The file holds no member")
    if len(rows) > MAX_IMPORT_ROWS:
        raise NotAllowed(
            f"一次最多导入 {MAX_IMPORT_ROWS} 行", f"At most {MAX_IMPORT_ROWS} rows at a time"
        )
    return [
        (number, {column: cell for column, cell in zip(header, row, strict=False) if column})
        for number, row in rows
    ]
