"""The auth centre's HTML pages: the login form, the change of a password at the first sign-in
with it (contract §6), and the error page.

Inline Jinja2 templates with autoescaping on: every value (the authorize parameters echoed into
hidden fields, the typed user name, error texts) is escaped. Labels are Chinese and English, as
on the marketplace's unified login (§5.2 step 2).
"""

from __future__ import annotations

from jinja2 import Environment

_ENV = Environment(autoescape=True)

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]"
    "{width:100%;padding:.4rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem}"
    ".error{color:#b00020}.note{color:#666;font-size:.85rem}"
)

_LOGIN = _ENV.from_string(
    """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>统一身份认证 / Sign in</title><style>{{ style }}</style></head>
<body><h1>统一身份认证 / Sign in</h1>
<p class="note">KooGallery 模拟认证中心 / simulated KooGallery auth centre</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
{% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<label for="username">账号 / Account (account@tenantCode)</label>
<input type="text" id="username" name="username" value="{{ username }}" autocomplete="username"
 required autofocus>
<label for="password">密码 / Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">登录 / Sign in</button>
</form></body></html>
"""
)

_CHANGE = _ENV.from_string(
    """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>修改初始密码 / Change your password</title><style>{{ style }}</style></head>
<body><h1>修改初始密码 / Change your password</h1>
<p class="note">{{ account }}：首次登录须设置新密码。 / Set a new password before you go on.</p>
{% if problems %}<ul class="error" role="alert" id="problems">{% for zh, en in problems %}
<li>{{ zh }} {{ en }}</li>{% endfor %}</ul>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="ticket" value="{{ ticket }}">
<label for="new_password">新密码 / New password</label>
<input type="password" id="new_password" name="new_password" autocomplete="new-password"
 required autofocus>
<label for="again">再次输入 / Again</label>
<input type="password" id="again" name="again" autocomplete="new-password" required>
<p class="note">至少 8 个字符，包含大写字母、小写字母、数字、其他字符中的三类。 /
At least 8 characters, of 3 kinds: upper-case, lower-case, digits, others.</p>
<button type="submit">修改并登录 / Change and sign in</button>
</form></body></html>
"""
)

_ERROR = _ENV.from_string(
    """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ title }}</title>
<style>{{ style }}</style></head>
<body><h1>{{ title }}</h1><p class="error">{{ message }}</p></body></html>
"""
)


def login_page(
    *, action: str, hidden: dict[str, str], username: str = "", error: str | None = None
) -> str:
    return _LOGIN.render(
        style=_STYLE, action=action, hidden=sorted(hidden.items()), username=username, error=error
    )


def change_password_page(
    *, action: str, ticket: str, account: str, problems: list[tuple[str, str]] | None = None
) -> str:
    return _CHANGE.render(
        style=_STYLE, action=action, ticket=ticket, account=account, problems=problems or []
    )


def error_page(title: str, message: str) -> str:
    return _ERROR.render(style=_STYLE, title=title, message=message)
