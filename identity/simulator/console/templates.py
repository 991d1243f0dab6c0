"""The console's Jinja2 templates (autoescaped; `pages` renders them). Labels are Chinese and
English, as on the auth centre's own pages. No script: every action is a form posted with the
session's CSRF token. Under 40rem wide, tables become one card per row."""

from __future__ import annotations

STYLE = (
    "*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0;color:#222;"
    "background:#f4f5f7}header{background:#a40010;color:#fff;padding:.6rem 1rem;display:flex;"
    "flex-wrap:wrap;gap:.4rem 1rem;align-items:center;justify-content:space-between}"
    "header a{color:#fff}header form{margin:0}main{max-width:66rem;margin:0 auto;padding:1rem}"
    "main.narrow{max-width:26rem}section{background:#fff;border:1px solid #ddd;"
    "border-radius:6px;padding:.8rem 1rem;margin:0 0 1rem}h1{font-size:1.35rem;margin:.2rem 0 "
    ".8rem}h2{font-size:1.08rem;margin:.1rem 0 .6rem}.note{color:#555;font-size:.85rem}"
    ".error{color:#b00020}.ok{color:#11692b}.warn{color:#8a5300}"
    "form.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;margin:.5rem 0}"
    "form.row label{display:flex;flex-direction:column;gap:.15rem;font-size:.85rem;"
    "flex:1 1 9rem;min-width:0}form.stack label{display:block;margin:.7rem 0 .2rem}"
    "form.stack input{width:100%}input,select{padding:.35rem;font:inherit;max-width:100%}"
    "button{padding:.35rem .7rem;font:inherit;cursor:pointer}form.inline{display:inline}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .4rem;"
    "border-bottom:1px solid #eee;vertical-align:top;overflow-wrap:break-word}"
    "td.actions form{display:inline-block;margin:0 .2rem .2rem 0}"
    "td.actions button{font-size:.85rem;padding:.2rem .5rem}td.actions a{font-size:.85rem}"
    ".tag{display:inline-block;padding:0 .35rem;border-radius:3px;font-size:.8rem;"
    "background:#eee}.tag.on{background:#dff3e4}.tag.off{background:#fde2e1}"
    ".result{border-left:4px solid #11692b}.result.bad{border-left-color:#b00020}"
    "ul.tree{list-style:none;padding:0;margin:0}ul.tree li{padding:.15rem 0}"
    "code{overflow-wrap:anywhere}.calls code{white-space:nowrap}"
    "@media (max-width:40rem){table.cards thead{display:none}table.cards tr{display:block;"
    "border-bottom:1px solid #ddd;padding:.4rem 0}table.cards td{display:block;border:0;"
    "padding:.1rem 0}table.cards td[data-label]::before{content:attr(data-label);"
    "display:block;color:#666;font-size:.75rem}}"
)

BASE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}企业管理控制台 / Enterprise console{% endblock %}</title>
<style>{{ style }}</style></head><body>
{% if buyer %}<header><span><b>企业管理控制台 / Enterprise console</b>
<span class="note" style="color:#fdd">KooGallery（模拟 / simulated）</span></span>
<span>{{ buyer }} ·
<form class="inline" method="post" action="/console/sign-out">
<input type="hidden" name="csrf" value="{{ csrf }}">
<button type="submit" id="sign-out">退出 / Sign out</button></form></span></header>{% endif %}
{% block main %}{% endblock %}
</body></html>
"""

PARTS = """{% macro hidden(csrf) %}<input type="hidden" name="csrf" value="{{ csrf }}">
{%- endmacro %}
{% macro error_of(error, form) %}{% if error and error[0] == form %}
<p class="error" role="alert" id="error">{{ error[1].zh }} / {{ error[1].en }}</p>
{% endif %}{% endmacro %}
{% macro delivery_of(d, csrf, back, titled=True) %}
<div class="delivery" id="delivery-{{ d.number }}">
<p>{% if titled %}<b>{{ d.zh }} / {{ d.en }}</b> · {% endif %}
{% if d.delivered %}<span class="tag on">已送达 / delivered</span>
{% else %}<span class="tag off">未送达 / not delivered</span>{% endif %}</p>
<table class="cards calls"><thead><tr><th>接口 / Interface</th><th>resultCode</th>
<th>resultMsg</th><th>状态 / State</th></tr></thead><tbody>
{% for call in d.calls %}<tr class="call {{ call.status }}">
<td data-label="接口 / Interface"><code>{{ call.interface }}</code></td>
<td data-label="resultCode" class="code">{{ call.result_code or "—" }}</td>
<td data-label="resultMsg" class="msg">{{ call.result_msg or "—" }}</td>
<td data-label="状态 / State">{{ states[call.status] }}</td></tr>{% endfor %}
</tbody></table>
{% if not d.delivered %}<form class="row" method="post"
 action="/console/deliveries/{{ d.number }}/again">{{ hidden(csrf) }}
<input type="hidden" name="back" value="{{ back }}">
<button type="submit" class="send-again">再次发送 / Send again</button>
<span class="note">改动已保留在控制台；ISV 尚未收到以上未送达的同步。 / The change stays made here;
the ISV has not had the syncs above that were not delivered.</span></form>{% endif %}
</div>{% endmacro %}
{% macro flash_of(flash, delivery, csrf, back) %}{% if flash %}
<section class="result{% if delivery and not delivery.delivered %} bad{% endif %}" id="result"
 role="status"><p id="result-text">{{ flash.zh }} / {{ flash.en }}</p>
{% if delivery and not delivery.delivered %}<p class="error" id="not-delivered">ISV 没有收到全部
同步：改动已在控制台生效，可再次发送。 / The ISV did not get every sync: the change is made here,
and can be sent again.</p>{% endif %}
{% if delivery %}{{ delivery_of(delivery, csrf, back, False) }}{% endif %}
{% if flash.imported %}<table class="cards" id="import-results"><thead><tr><th>行 / Line</th>
<th>账号 / Account</th><th>结果 / Result</th></tr></thead><tbody>
{% for row in flash.imported %}<tr class="{{ 'added' if row.added else 'failed' }}">
<td data-label="行 / Line">{{ row.line }}</td><td data-label="账号 / Account">{{ row.account }}</td>
<td data-label="结果 / Result" class="{{ 'ok' if row.added else 'error' }}">{{ row.zh }} /
{{ row.en }}</td></tr>{% endfor %}</tbody></table>{% endif %}
</section>{% endif %}{% endmacro %}
"""

SIGN_IN = """{% extends "base" %}{% block main %}<main class="narrow">
<h1>企业管理控制台 / Enterprise console</h1>
<p class="note">KooGallery 模拟买家中心：企业管理员登录。 / The simulated KooGallery buyer
centre: the enterprise administrator signs in.</p>
{% if error %}<p class="error" role="alert" id="error">{{ error }}</p>{% endif %}
<form class="stack" method="post" action="/console/sign-in">
<input type="hidden" name="csrf" value="{{ csrf }}">
<label for="account">管理员账号 / Administrator account</label>
<input type="text" id="account" name="account" value="{{ account }}" autocomplete="username"
 required autofocus>
<label for="password">密码 / Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit" id="sign-in">登录 / Sign in</button></p></form></main>{% endblock %}
"""

HOME = """{% extends "base" %}{% import "parts" as parts with context %}{% block main %}<main>
<h1>我的企业 / My enterprises <span class="note">{{ tenants|length }} / {{ most }}</span></h1>
{{ parts.flash_of(flash, delivery, csrf, "") }}
<section id="enterprises">{% if tenants %}<table class="cards"><thead><tr>
<th>企业 / Enterprise</th><th>标识 / Code</th><th>应用 / App</th><th>成员 / Members</th>
</tr></thead><tbody>{% for t in tenants %}<tr id="enterprise-{{ t.tenant_code }}">
<td data-label="企业 / Enterprise"><a href="/console/enterprises/{{ t.tenant_code|path }}">
{{ t.name }}</a></td><td data-label="标识 / Code"><code>{{ t.tenant_code }}</code></td>
<td data-label="应用 / App">{% if t.tenant_id in unbound %}<span class="tag off">未绑定 / not
bound</span>{% else %}<span class="tag on">已绑定 / bound</span>{% endif %}</td>
<td data-label="成员 / Members">{{ t.members|length }}</td></tr>{% endfor %}</tbody></table>
{% else %}<p>还没有企业。 / No enterprise yet.</p>{% endif %}</section>
<section id="create"><h2>创建企业 / Create an enterprise</h2>
{{ parts.error_of(error, "create") }}
<form class="row" method="post" action="/console/enterprises">{{ parts.hidden(csrf) }}
<label>企业名称 / Name<input name="name" value="{{ values.name }}" required maxlength="128">
</label><label>企业标识 / Code (tenantCode)<input name="code" value="{{ values.code }}" required
 maxlength="32" pattern="[a-z0-9][a-z0-9\\-]*[a-z0-9]"></label>
<button type="submit" id="create-enterprise">创建 / Create</button></form>
<p class="note">企业标识全局唯一，创建后不能修改，是成员账号 name@标识 的后缀；每位管理员最多管理
{{ most }} 个企业。 / The code is unique, never changes, and ends every account (name@code); an
administrator manages at most {{ most }} enterprises.</p></section>
{% if undelivered %}<section id="undelivered"><h2>未送达的同步 / Syncs not delivered</h2>
{% for d in undelivered %}<p class="note">{{ d.tenant.name }} ({{ d.tenant.tenant_code }})</p>
{{ parts.delivery_of(d, csrf, "") }}{% endfor %}</section>{% endif %}
</main>{% endblock %}
"""

RESET = """{% extends "base" %}{% import "parts" as parts with context %}{% block main %}
<main class="narrow">
<p><a href="/console/enterprises/{{ tenant.tenant_code|path }}">← {{ tenant.name }}</a></p>
<h1>重置成员密码 / Reset a password</h1>
<p>{{ member.name }} · <code>{{ account }}</code></p>
{{ parts.error_of(error, "reset") }}
{% if reset_id %}<p class="ok" id="code-sent">验证码已发送至您的手机 / The code went to your phone
<b id="sent-to">{{ sent_to }}</b></p>
<form class="stack" method="post" action="{{ base }}/reset/confirm">{{ parts.hidden(csrf) }}
<input type="hidden" name="reset_id" value="{{ reset_id }}">
<label for="code">短信验证码 / Code</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus>
<p><button type="submit" id="confirm">确认重置 / Reset the password</button></p></form>
{% else %}<form class="stack" method="post" action="{{ base }}/reset">{{ parts.hidden(csrf) }}
<label for="new_password">新密码 / New password</label>
<input type="password" id="new_password" name="new_password" autocomplete="new-password" required>
<label for="again">再次输入 / Again</label>
<input type="password" id="again" name="again" autocomplete="new-password" required>
<p class="note">验证码将发送到管理员手机；成员下次登录须修改此密码。每名成员每 3 分钟最多
1 次、每小时 15 次、每天 60 次。 / A code goes to your phone; the member changes this password
at their next sign-in. At most 1 reset in 3 minutes, 15 an hour, 60 a day per member.</p>
<p><button type="submit" id="send-code">发送验证码 / Send the code</button></p></form>{% endif %}
</main>{% endblock %}
"""

REFUSED = """{% extends "base" %}{% block main %}<main class="narrow"><h1>{{ title }}</h1>
<p class="error" id="error">{{ message }}</p>
{% if back %}<p><a href="{{ back }}">← 返回 / Back</a></p>{% endif %}</main>{% endblock %}
"""

ENTERPRISE = """{% extends "base" %}{% import "parts" as parts with context %}{% block main %}<main>
{% macro op(m, name, label) %}<form method="post"
 action="{{ base }}/members/{{ m.user_name|path }}/{{ name }}">{{ parts.hidden(csrf) }}
<button type="submit" class="op-{{ name }}">{{ label }}</button></form>{% endmacro %}
{% macro departments(name, top=False) %}<select name="{{ name }}">{% if top %}
<option value="">— 顶级 / top level —</option>{% endif %}{% for d, depth in tree %}
<option value="{{ d.org_code }}">{{ "· " * depth }}{{ d.org_name }} ({{ d.org_code }})</option>
{% endfor %}</select>{% endmacro %}
<p><a href="/console">← 我的企业 / My enterprises</a></p>
<h1 id="enterprise-name">{{ tenant.name }} <code>{{ tenant.tenant_code }}</code></h1>
{{ parts.flash_of(flash, delivery, csrf, tenant.tenant_code) }}
<section id="app"><h2>应用 / App <code>{{ app_id }}</code></h2>{{ parts.error_of(error, "app") }}
{% if bound %}<p><span class="tag on" id="bound">已绑定 / bound</span> 成员登录 / Members sign
in at <a href="{{ sign_in_url }}">{{ sign_in_url }}</a></p>{% else %}<p><span class="tag off"
 id="bound">未绑定 / not bound</span> ISV 还不知道这个企业。 / The ISV does not know this
enterprise yet.</p><form class="row" method="post" action="{{ base }}/bind">
{{ parts.hidden(csrf) }}
<button type="submit" id="bind">购买并绑定应用 / Buy and bind the app</button>
<span class="note">newInstance → tenantSync → applicationSync → allOrgSync</span></form>{% endif %}
<p class="note">tenantId <code>{{ tenant.tenant_id }}</code> · orderId
<code>{{ tenant.order.order_id }}</code></p></section>
<section id="departments"><h2>部门 / Departments</h2><ul class="tree">{% for d, depth in tree %}
<li style="padding-left:{{ depth * 1.2 }}rem" id="dept-{{ d.org_code }}">{{ d.org_name }}
<code>{{ d.org_code }}</code> <span class="note">{{ counts.get(d.org_code, 0) }} 人 /
members</span></li>{% else %}<li>没有部门。 / No department.</li>{% endfor %}</ul>
{{ parts.error_of(error, "department") }}
<form class="row" method="post" action="{{ base }}/departments">{{ parts.hidden(csrf) }}
<label>部门编码 / Code<input name="org_code" value="{{ values.org_code }}" required
 maxlength="64"></label><label>部门名称 / Name<input name="org_name" value="{{ values.org_name }}"
 required maxlength="128"></label><label>上级部门 / Parent{{ departments("parent_code", True) }}
</label><button type="submit" id="add-department">新建部门 / Add</button></form>
{{ parts.error_of(error, "department-change") }}
{% if tree %}<form class="row" method="post" action="{{ base }}/departments/rename">
{{ parts.hidden(csrf) }}<label>部门 / Department{{ departments("org_code") }}</label>
<label>新名称 / New name<input name="org_name" required maxlength="128"></label>
<button type="submit" id="rename-department">改名 / Rename</button></form>
<form class="row" method="post" action="{{ base }}/departments/move">{{ parts.hidden(csrf) }}
<label>部门 / Department{{ departments("org_code") }}</label>
<label>移至 / Move under{{ departments("parent_code", True) }}</label>
<button type="submit" id="move-department">移动 / Move</button></form>
<form class="row" method="post" action="{{ base }}/departments/delete">{{ parts.hidden(csrf) }}
<label>部门 / Department{{ departments("org_code") }}</label>
<button type="submit" id="delete-department">删除空部门 / Delete (empty only)</button></form>
{% endif %}<p class="note">绑定后每次改动发送 singleOrgSync。 / Once bound, each change sends
singleOrgSync.</p></section>
<section id="members"><h2>成员 / Members ({{ tenant.members|length }})</h2>
{{ parts.error_of(error, "member") }}{% if tenant.members %}<table class="cards" id="member-list">
<thead><tr><th>账号 / Account</th><th>姓名 / Name</th><th>部门 / Department</th>
<th>手机 / Mobile</th><th>状态 / State</th><th>操作 / Actions</th></tr></thead><tbody>
{% for m in tenant.members %}<tr id="member-{{ m.user_name }}">
<td data-label="账号 / Account"><code>{{ m.user_name }}@{{ tenant.tenant_code }}</code></td>
<td data-label="姓名 / Name">{{ m.name }}</td>
<td data-label="部门 / Department">{{ names.get(m.org_code, m.org_code) }}</td>
<td data-label="手机 / Mobile">{{ m.mobile or "—" }}</td>
<td data-label="状态 / State" class="state">
{% if m.enable %}<span class="tag on">启用 / enabled</span>{% else %}<span class="tag off">禁用 /
disabled</span>{% endif %} {% if m.authorised %}<span class="tag on">已授权 / authorised</span>
{% else %}<span class="tag">未授权 / not authorised</span>{% endif %}
{% if m.role == "admin" %}<span class="tag">管理员 / admin</span>{% endif %}
{% if m.must_change_password %}<span class="tag">待改密 / must change password</span>{% endif %}
</td><td data-label="操作 / Actions" class="actions">
{% if m.authorised %}{{ op(m, "cancel", "取消授权 / Cancel authorisation") }}
{% else %}{{ op(m, "authorise", "授权应用 / Authorise") }}{% endif %}
{% if m.enable %}{{ op(m, "disable", "禁用 / Disable") }}{% else %}
{{ op(m, "enable", "启用 / Enable") }}{{ op(m, "delete", "删除 / Delete") }}{% endif %}
{% if m.role == "admin" %}{{ op(m, "user", "设为普通成员 / Make user") }}{% else %}
{{ op(m, "admin", "设为管理员 / Make admin") }}{% endif %}
<a class="reset" href="{{ base }}/members/{{ m.user_name|path }}/reset">重置密码 / Reset
password</a></td></tr>{% endfor %}</tbody></table>{% endif %}
<h2>添加成员 / Add a member</h2>{{ parts.error_of(error, "add-member") }}
<form class="row" method="post" action="{{ base }}/members">{{ parts.hidden(csrf) }}
<label>账号 / Account (…@{{ tenant.tenant_code }})<input name="account" maxlength="64" required
 value="{{ values.account }}"></label><label>姓名 / Name<input name="name" maxlength="64" required
 value="{{ values.name }}"></label><label>部门 / Department{{ departments("department") }}</label>
<label>手机 / Mobile<input name="mobile" maxlength="21" required value="{{ values.mobile }}"
 inputmode="tel"></label><label>邮箱 / E-mail (可选 / optional)<input name="email"
 maxlength="128" value="{{ values.email }}"></label>
<button type="submit" id="add-member">添加 / Add</button></form>
<p class="note">账号创建后不能修改；随机初始密码以短信发给成员，首次登录须修改。 / The account never
changes; a random initial password goes to the member by SMS, to be changed at the first
sign-in.</p>
<h2>导入成员 / Import members (CSV)</h2>{{ parts.error_of(error, "import") }}
<form class="row" method="post" action="{{ base }}/members/import" enctype="multipart/form-data">
{{ parts.hidden(csrf) }}<label>CSV 文件 / file<input type="file" name="file" accept=".csv,text/csv"
 required></label><button type="submit" id="import">导入 / Import</button></form>
<p class="note">UTF-8，表头 / header: <code>account,name,department,mobile,email</code>（department
填部门编码或名称 / a department's code or name）；最多 500 行 / at most 500 rows.</p>
<h2>按部门授权 / Authorise a department</h2>{{ parts.error_of(error, "authorise") }}
<form class="row" method="post" action="{{ base }}/authorise">{{ parts.hidden(csrf) }}
<label>部门（含下级） / Department (and those below){{ departments("org_code") }}</label>
<button type="submit" name="op" value="authorise" id="authorise-department">授权 / Authorise
</button><button type="submit" name="op" value="cancel" id="cancel-department">取消授权 / Cancel
</button></form></section>
<section id="syncs"><h2>同步记录 / Syncs sent</h2>{% for d in deliveries %}
{{ parts.delivery_of(d, csrf, tenant.tenant_code) }}{% else %}<p>尚未发送。 / None yet.</p>
{% endfor %}</section>
<section id="dissolve"><h2>解散企业 / Dissolve the enterprise</h2>
{{ parts.error_of(error, "dissolve") }}<form class="row" method="post" action="{{ base }}/dissolve">
{{ parts.hidden(csrf) }}<button type="submit" id="dissolve-enterprise">解散 / Dissolve</button>
<span class="note">须先删除所有成员和部门；已绑定时发送 tenantSync 0。 / Every member and
department must be deleted first; once bound, it sends tenantSync 0.</span></form></section>
</main>{% endblock %}
"""
