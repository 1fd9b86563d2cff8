"""Typed settings read from the environment (prefix VOTZ_) and an optional `.env` file."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, fields
from pathlib import Path

from bot.domain.region import LOCALES
from bot.errors import ConfigError
from bot.resources import resource_dir


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


PAID_BROADCAST_PER_SECOND = 1000.0  # Telegram's limit with paid broadcasts


def _flag(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"", "0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{key}={raw!r} is not a valid flag (1 or 0)")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every VOTZ_* setting; the README lists them with their meaning."""

    database_url: str = "sqlite:///votz.db"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_url: str = ""
    telegram_token: str = ""
    telegram_mode: str = "polling"
    telegram_api_url: str = ""
    telegram_messages_per_second: float = 30.0
    telegram_chat_interval: float = 1.0
    # Telegram's paid broadcasts (allow_paid_broadcast, 0.1 Star a message): bulk messages
    # leave at up to 1,000 a second (the default rate then, unless set); replies stay free.
    telegram_paid_broadcast: bool = False
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_api_url: str = ""
    twilio_segments_per_second: float = 10.0
    sms_price_per_segment: float = 0.08  # euros: the estimated cost shown before a broadcast
    staff_telegram_ids: str = ""
    campaigns_dir: str = ""
    privacy_url: str = "https://www.laregioncitoyenne.fr/votz/confidentialite"
    contact: str = "participation@laregion.fr"
    default_locale: str = "fr"
    idle_timeout_hours: float = 24.0
    instance: str = ""  # this process's name for its outbox claims (default host:port)
    shutdown_seconds: float = 10.0
    send_timeout_seconds: float = 15.0
    health_outbox_delay_seconds: float = 120.0
    sqlite_busy_seconds: float = 10.0
    # When bulk messages (announcements, reminders, broadcasts, outcomes) may leave, per
    # channel: "mon-sat 09:00-20:00", "" for any time. Replies are never held.
    sms_sending_window: str = "mon-sat 09:00-20:00"
    telegram_sending_window: str = ""
    sending_holidays: str = "FR"  # public holidays of this country are closed days ("": none)
    reminder_grace_hours: float = 6.0  # an event missed while down is sent this late at most
    scheduler_seconds: float = 30.0  # how often the scheduler looks for due events
    log_format: str = "auto"  # json, text, or auto: readable on a terminal, JSON elsewhere

    @property
    def instance_name(self) -> str:
        """Stable across restarts of the same process, different between processes."""
        return self.instance or f"{socket.gethostname()}:{self.http_port}"

    def sending_window_names(self) -> list[str]:
        """The channels with a `VOTZ_<CHANNEL>_SENDING_WINDOW` setting."""
        return [f.name.removesuffix("_sending_window") for f in fields(self)
                if f.name.endswith("_sending_window")]

    @property
    def campaigns_path(self) -> Path:
        return Path(self.campaigns_dir) if self.campaigns_dir else resource_dir("campaigns")

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, *, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Build settings from `environ` (default os.environ) over the `.env` file."""
        source: dict[str, str] = _read_dotenv(dotenv) if dotenv is not None else {}
        source.update(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for field in fields(cls):
            key = "VOTZ_" + field.name.upper()
            if key not in source:
                continue
            raw = source[key]
            try:
                if field.type == "int":
                    values[field.name] = int(raw)
                elif field.type == "float":
                    values[field.name] = float(raw)
                elif field.type == "bool":
                    values[field.name] = _flag(key, raw)
                else:
                    values[field.name] = raw
            except ValueError:
                raise ConfigError(f"{key}={raw!r} is not a valid {field.type}") from None
        if values.get("telegram_paid_broadcast") and \
                "telegram_messages_per_second" not in values:
            values["telegram_messages_per_second"] = PAID_BROADCAST_PER_SECOND
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.telegram_mode not in {"polling", "webhook"}:
            raise ConfigError("VOTZ_TELEGRAM_MODE must be 'polling' or 'webhook'")
        if settings.log_format not in ("auto", "json", "text"):
            raise ConfigError("VOTZ_LOG_FORMAT must be 'auto', 'json' or 'text'")
        if settings.default_locale not in LOCALES:
            raise ConfigError(f"VOTZ_DEFAULT_LOCALE must be one of {', '.join(LOCALES)}")
        from bot.delivery.windows import windows_from_settings

        windows_from_settings(settings)  # a clear error for a window Votz cannot read
        return settings
