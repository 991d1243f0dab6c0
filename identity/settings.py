"""Settings from the environment (and a `.env` file), names fixed by the design.

One class, built once by the caller and passed in; never a mutable global. It is longer than a
module should be because it is one class: every setting, with the checks that must see several
of them at once, in one place (the secret-file source is `identity.secret_files`).
"""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from identity import branding, tenant_hosts
from identity.secret_files import SecretFileError, SecretFiles
from identity.seller_key import load_seller_key

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./identity.db"
ORDER_API_URL = "https://mkt.myhuaweicloud.com"
ORDER_API_FALLBACK_URL = "https://mkt.myhuaweicloud.cn"
"""The marketplace's open API and the fallback domain the contract names for it (§4.2)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SECRET_KEY_FILE = "identity-secret.key"  # noqa: S105 - a file name
MIN_KEY_LENGTH = 16


class Settings(BaseSettings):
    """Every setting, read once from `IDENTITY_*` environment variables (and `.env`) and passed
    to what needs it; never a mutable global. README's configuration section lists them."""

    # Errors never echo the input: it holds the keys.
    model_config = SettingsConfigDict(
        env_prefix="IDENTITY_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    """Master key: encryption at rest (AES-GCM) is derived from it."""

    marketplace_basic_key: SecretStr | None = None
    marketplace_basic_key_previous: SecretStr | None = None
    marketplace_kit_key: SecretStr | None = None
    marketplace_kit_key_previous: SecretStr | None = None
    marketplace_v1_key: SecretStr | None = None
    """The seller's single V1 key: set, the V1 callbacks are answered too (`marketplace.v1`)."""
    marketplace_private_key_file: Path | None = None
    """Seller RSA private key (PEM) that decrypts applicationSync `clientSecret` (contract §2.7)."""

    marketplace_ak: str | None = None
    marketplace_sk: SecretStr | None = None
    """A Huawei Cloud access key pair (AK/SK) of the seller's account: with it, newInstance
    reads the order it names from the marketplace's query-order API (contract §4.2)."""
    marketplace_api_url: str | None = None
    """The marketplace's open API; unset, `https://mkt.myhuaweicloud.com`, then its fallback
    domain `https://mkt.myhuaweicloud.cn` when the first gives no answer."""
    marketplace_api_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """Deadline of one order query, all of it (both domains, when the fallback is tried)."""

    tenant_domain: str | None = None
    """`*.apps.example.com`: `https://{tenantCode}.apps.example.com/` signs that enterprise's
    members in without asking for its code (`identity.tenant_hosts`)."""

    frontend_url: str | None = None
    """queryInstance `appInfo.frontEndUrl`; defaults to `{base_url}/sso/login`."""
    allow_loopback_http: bool = False
    """Accept `http://` auth centres on loopback hosts (127.0.0.0/8, ::1, localhost) in
    tenantSync `domainName`: development, tests and `identity demo` only."""
    persist_seller_debug_syncs: bool = False
    """Persist seller-side syncs (empty instanceId) even when they carry testFlag=1 (§3.0)."""

    session_cookie_secure: bool = True
    """Send the session cookie only over HTTPS; turn off only for plain-HTTP development."""
    session_idle_seconds: int = Field(default=30 * 60, ge=1)
    session_absolute_seconds: int = Field(default=12 * 3600, ge=1)
    token_renew_margin_seconds: int = Field(default=300, ge=0)
    """Renew the member's upstream access token when it expires within this margin (§5.2 step 8)."""
    token_renew_retry_seconds: float = Field(default=30.0, gt=0)
    """After a transient renewal failure (timeout, 5xx), wait this long before trying again."""
    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    """Deadline of each call to a tenant's auth centre (token, userinfo), all of it: waiting for
    a call slot, connecting, sending and reading the whole answer."""
    allowed_redirect_origins: list[str] = []
    """Origins (scheme://host[:port]) that `next` and `redirect_url` may point to, besides
    `base_url`'s own origin and relative paths."""
    post_login_url: str = "/sso/me"
    """Where a member lands after login when no `next` was given (Flow A never has one)."""

    access_token_seconds: int = Field(default=600, ge=60, le=86400)
    """Lifetime of the OpenID Provider's access and ID tokens."""
    backchannel_retry_first_seconds: float = Field(default=15.0, gt=0)
    """A back-channel logout that failed is tried again after this, then twice as long each
    time, up to `backchannel_retry_max_seconds`."""
    backchannel_retry_max_seconds: float = Field(default=3600.0, gt=0)
    backchannel_give_up_hours: float = Field(default=24.0, gt=0)
    """How long a back-channel logout is retried while the app is down."""
    backchannel_poll_seconds: float = Field(default=5.0, gt=0)
    """How often the worker looks for back-channel logouts to send."""

    retention_days: int = Field(default=90, ge=1)
    """The worker deletes marketplace audit rows and delivered outbox rows older than this."""
    worker_interval_seconds: float = Field(default=60.0, gt=0)

    signature_window_seconds: int = Field(default=60, ge=1)
    nonce_ttl_seconds: int = Field(default=120, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """The largest real call (authSync of 500 members) is about 250 KB."""
    log_level: str = "INFO"

    request_head_max_bytes: int = Field(default=64 * 1024, ge=1024)
    """`identity serve` answers 431 and closes when a request's line and headers exceed this."""
    request_head_timeout_seconds: float = Field(default=10.0, gt=0)
    """Time to send a request's line and headers, from its first byte (or from connecting)."""
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """Time to send a request's body, from the end of its headers."""
    shutdown_grace_seconds: int = Field(default=20, ge=1)
    """On SIGTERM, `identity serve` stops accepting connections and lets requests under way
    finish for at most this long (keep it under the orchestrator's grace period)."""
    metrics_token: SecretStr | None = None
    """`/metrics` answers a request bearing this token (`Authorization: Bearer ...`)."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """`identity serve` also listens on this port, where `/metrics` answers without a token."""
    upstream_calls_per_auth_centre: int = Field(default=20, ge=1, le=1000)
    """At most this many calls in flight to one auth centre (origin of `domainName`), so one
    slow auth centre cannot take the connections every other tenant needs."""
    upstream_breaker_failures: int = Field(default=5, ge=1)
    """Consecutive transient failures (timeout, unreachable, 5xx) of one auth centre that open
    its circuit breaker: calls fail fast until the cool-down has passed."""
    upstream_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    upstream_max_response_bytes: int = Field(default=64 * 1024, ge=1024)
    """A larger answer from an auth centre is refused (bad_response) without being read."""
    sso_logins_per_minute_per_address: int = Field(default=1200, ge=1)
    """`/sso/login` and `/sso/callback` requests a client address may make per minute (in
    bursts of as many); counted in each replica's memory."""
    sso_logins_per_minute_per_tenant: int = Field(default=3000, ge=1)
    """The same, per tenant, whatever the addresses."""
    password_tries_per_minute_per_address: int = Field(default=10, ge=1)
    """Password tries (`/login`, `/login/change`) a client address may make per minute (in
    bursts of a third as many), refused before any hash is computed; a right password gives
    its try back. Counted in each replica's memory."""
    password_hashes_in_parallel: int | None = Field(default=None, ge=1)
    """Password hashes verified at once in one process; by default one fewer than its CPUs (at
    least one), so guessing cannot take every core."""
    password_hash_wait_seconds: float = Field(default=2.0, ge=0)
    """How long a password try waits for a hashing slot before it is answered 503."""
    time_zone: str = "Asia/Shanghai"
    """The IANA time zone pages show times in (China Standard Time by default)."""
    brand_name: str = branding.DEFAULT_NAME
    """The name every page and the console show (the ISV's, at most 40 characters)."""
    brand_logo_file: Path | None = None
    """The logo shown beside the name: a PNG or an SVG without scripts, at most 256 KiB; by
    default a badge with the name's first letter."""
    brand_accent: str = branding.DEFAULT_ACCENT
    """The accent colour of links and buttons, `#rrggbb`, dark enough for white text."""

    notify_file: Path | None = None
    """Development: every notification (reset codes, initial passwords, SMS and e-mail alike)
    is appended to this file as one JSON line instead of being sent (identity.notify)."""
    smtp_host: str | None = None
    """E-mail notifications go through this SMTP server; none are sent when unset."""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    """The sender address of e-mail notifications; required with IDENTITY_SMTP_HOST."""
    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS (refusing a server that does not offer it)."""
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    """Deadline of each SMTP network operation (connect, each command)."""
    sms_sender: str | None = None
    """The operator's SMS plug-in, as `package.module:factory`: `factory(settings)` returns an
    object with `async def send(message) -> None` (identity.notify)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, with `IDENTITY_<NAME>_FILE` (SecretFiles) read from both the
        environment and `.env` (the environment wins where both name a file)."""
        variables: dict[str, str | None] = {}
        for source in (dotenv_settings, env_settings):
            if isinstance(source, EnvSettingsSource | DotEnvSettingsSource):
                variables |= source.env_vars
        files = SecretFiles(settings_cls, variables)
        return init_settings, files, env_settings, dotenv_settings, file_secret_settings

    @field_validator("marketplace_ak", "marketplace_api_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty value (a ConfigMap's placeholder) is no value."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tenant_domain")
    @classmethod
    def _tenant_domain(cls, value: str | None) -> str | None:
        if value:
            tenant_hosts.suffix_of(value)
            return value.strip().lower()
        return None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError("must be an IANA time zone name, such as Asia/Shanghai") from None
        return value

    @field_validator("brand_name")
    @classmethod
    def _brand_name(cls, value: str) -> str:
        return branding.check_name(value)

    @field_validator("brand_accent")
    @classmethod
    def _brand_accent(cls, value: str) -> str:
        return branding.check_accent(value)

    @field_validator("brand_logo_file", mode="before")
    @classmethod
    def _brand_logo(cls, value: object) -> Path | None:
        """Empty (as a ConfigMap may hold it) is unset: the letter badge."""
        if value is None or value == "":
            return None
        return branding.check_logo(Path(str(value)))

    @field_validator("sms_sender")
    @classmethod
    def _plugin_reference(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        module, _, attribute = value.strip().partition(":")
        if not module or not attribute:
            raise ValueError("must be package.module:factory")
        return value.strip()

    @field_validator("marketplace_private_key_file")
    @classmethod
    def _usable_seller_key(cls, value: Path | None) -> Path | None:
        """Checked at start (an unencrypted PEM RSA key of at least 3072 bits), so a wrong path
        or key is one line, not the first applicationSync's 000101; the app loads the key again
        through the same cache, without checking it twice."""
        if value is None:
            return None
        if not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        load_seller_key(value)
        return value

    @model_validator(mode="after")
    def _nonce_outlives_the_window(self) -> Settings:
        """A call is accepted for ±window; its nonce must be remembered for all of that."""
        if self.nonce_ttl_seconds < 2 * self.signature_window_seconds:
            raise ValueError(
                "IDENTITY_NONCE_TTL_SECONDS must be at least twice "
                "IDENTITY_SIGNATURE_WINDOW_SECONDS, or a replay could outlive its nonce"
            )
        return self

    @model_validator(mode="after")
    def _order_api_complete(self) -> Settings:
        """An access key is a pair; the API is reached over HTTPS (plain HTTP on loopback only
        with IDENTITY_ALLOW_LOOPBACK_HTTP, for the simulator)."""
        if bool(self.marketplace_ak) != bool(
            self.marketplace_sk and self.marketplace_sk.get_secret_value()
        ):
            raise ValueError(
                "IDENTITY_MARKETPLACE_AK and IDENTITY_MARKETPLACE_SK are a pair: "
                "set both or neither"
            )
        url = self.marketplace_api_url
        if url is not None:
            parts = urlsplit(url)
            loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
            if not parts.hostname or parts.path not in ("", "/") or parts.query:
                raise ValueError(
                    "IDENTITY_MARKETPLACE_API_URL must be an origin, like https://mkt.myhuaweicloud.com"
                )
            if parts.scheme != "https" and not (
                parts.scheme == "http" and loopback and self.allow_loopback_http
            ):
                raise ValueError("IDENTITY_MARKETPLACE_API_URL must use https")
        return self

    @property
    def order_api_urls(self) -> list[str]:
        """Where order queries go: the configured API, else the default and its fallback."""
        if self.marketplace_api_url:
            return [self.marketplace_api_url.rstrip("/")]
        return [ORDER_API_URL, ORDER_API_FALLBACK_URL]

    @model_validator(mode="after")
    def _smtp_complete(self) -> Settings:
        """An SMTP server needs a sender address, and a user name needs its password."""
        if self.smtp_host and not self.smtp_from:
            raise ValueError("IDENTITY_SMTP_FROM is required when IDENTITY_SMTP_HOST is set")
        if self.smtp_username and self.smtp_password is None:
            raise ValueError("IDENTITY_SMTP_PASSWORD is required with IDENTITY_SMTP_USERNAME")
        return self

    @model_validator(mode="after")
    def _keys_are_long_and_distinct(self) -> Settings:
        """Short keys can be guessed. Each kind of key must differ from every other kind: a
        basic key that is also a kit key lets a signed basic call pass as a kit call, and the
        marketplace knows its keys, so none may be the master key or the metrics token. A key
        left unset (or empty) is allowed: calls that need it are refused (000001)."""
        keys = [(name, kind, secret.get_secret_value()) for name, kind, secret in self._keys()]
        for name, _kind, value in keys:
            if len(value) < MIN_KEY_LENGTH:
                raise ValueError(f"{name} must be at least {MIN_KEY_LENGTH} characters")
        for i, (name, kind, value) in enumerate(keys):
            for other, other_kind, other_value in keys[i + 1 :]:
                if kind != other_kind and value == other_value:
                    raise ValueError(f"{name} and {other} must differ")
        return self

    def _keys(self) -> list[tuple[str, str, SecretStr]]:
        """(variable, kind, value) of every key that is set; only the master key may not be
        empty (an empty marketplace key or token means "none", as the signature check reads it)."""
        prefix = "IDENTITY_MARKETPLACE_"
        named = [
            ("IDENTITY_SECRET_KEY", "master", self.secret_key),
            (prefix + "BASIC_KEY", "basic", self.marketplace_basic_key),
            (prefix + "BASIC_KEY_PREVIOUS", "basic", self.marketplace_basic_key_previous),
            (prefix + "KIT_KEY", "kit", self.marketplace_kit_key),
            (prefix + "KIT_KEY_PREVIOUS", "kit", self.marketplace_kit_key_previous),
            (prefix + "V1_KEY", "v1", self.marketplace_v1_key),
            ("IDENTITY_METRICS_TOKEN", "metrics", self.metrics_token),
        ]
        return [
            (name, kind, value)
            for name, kind, value in named
            if value is not None and (value.get_secret_value() or kind == "master")
        ]

    @property
    def is_embedded_default(self) -> bool:
        return self.database_url == DEFAULT_DATABASE_URL

    @property
    def effective_frontend_url(self) -> str:
        return self.frontend_url or self.base_url.rstrip("/") + "/sso/login"

    def with_embedded_secret(self, directory: Path = Path("."), *, create: bool = True) -> Settings:
        """Return settings with a master key, generating and keeping one for the embedded default
        (unless not `create`: a command that only reads must find it).

        Only the embedded SQLite default may invent its key: anywhere else a missing key is an
        operator error, because data encrypted under a lost key is gone. Every failure is a
        RuntimeError of one line naming the file and the setting that does without it.
        """
        if self.secret_key is not None:
            return self
        if not self.is_embedded_default:
            raise RuntimeError(
                "IDENTITY_SECRET_KEY is required when IDENTITY_DATABASE_URL is set "
                "(only the embedded SQLite default generates its own key)"
            )
        path = directory / SECRET_KEY_FILE
        try:
            if not path.exists():
                if not create:
                    raise RuntimeError(
                        f"the master key {path.resolve()} is missing, so the embedded "
                        "database's secrets cannot be read; set IDENTITY_SECRET_KEY to its key"
                    )
                path.touch(mode=0o600)
                path.write_text(secrets.token_urlsafe(32))
            return self.model_copy(update={"secret_key": SecretStr(path.read_text().strip())})
        except OSError as exc:
            raise RuntimeError(
                f"cannot keep the master key in {path.resolve()} ({exc.strerror or exc}): "
                "set IDENTITY_SECRET_KEY, and IDENTITY_DATABASE_URL to a writable place"
            ) from None


def load_settings(*, with_key: bool = False) -> Settings:
    """For the commands: the settings, or one line per problem on stderr and exit 2, with no
    traceback and never a value. `with_key`: the master key too (generated and kept for the
    embedded default only). Plain stderr and SystemExit, so the server never loads typer."""
    try:
        settings = Settings()
    except SecretFileError as exc:
        _refuse(str(exc))
        raise SystemExit(2) from None
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            name = f"IDENTITY_{where.upper()}: " if where else ""
            _refuse(f"{name}{error['msg'].removeprefix('Value error, ')}")
        raise SystemExit(2) from None
    except SettingsError as exc:  # a list or object setting that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"IDENTITY_{found.group(1).upper()}" if found else "a setting"
        _refuse(f'{name}: must be JSON (a list: ["…"])')
        raise SystemExit(2) from None
    if not with_key:
        return settings
    try:
        return settings.with_embedded_secret()
    except RuntimeError as exc:
        print(f"identity: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _refuse(problem: str) -> None:
    print(f"identity: invalid settings: {problem}", file=sys.stderr, flush=True)
