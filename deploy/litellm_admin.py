"""Client for the LiteLLM proxy's admin API: keys, models, health, spend (CONTRACTS.md §1).

Where LiteLLM versions differ it accepts all of them: a budget refusal is recognized by
`error.type == "budget_exceeded"` whatever its status (400, 429, 422 by default since v1.104.0,
or any other set in `budget_exceeded_status_code`), a model-access refusal as 401 or 403. A
LiteLLM without a key database (no DATABASE_URL: master key only) is recognized by its answers
(`NoKeyDatabase`); `gate_key` then hands out the master key instead of a throwaway key, once said.
Keys never appear in messages, logs or reprs (`sk-...abcd`), and printed URLs lose their
userinfo and secret query values (`redact_url`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

log = logging.getLogger(__name__)

_KEY_IN_TEXT = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")
_SECRET_QUERY = {"key", "api_key", "apikey", "token", "access_token", "master_key", "password", "secret"}
_KEY_MISSING = re.compile(r"key.{0,40}not found|invalid proxy server token", re.IGNORECASE)
_CURRENT_COST = re.compile(r"Current cost:\s*([-0-9.eE+]+)")
_MAX_BUDGET = re.compile(r"Max budget:\s*([-0-9.eE+]+)")
# LiteLLM's words for "no database" differ by route: /key/generate "DB not connected", /key/info
# "Database not connected", /key/delete "Not connected to DB!", /model/new "No DB Connected",
# a wrong key "No connected db." (type no_db_connection, status 400).
_NO_DATABASE = re.compile(
    r"\b(DB|Database) not connected|Not connected to DB|No DB Connected|No connected db", re.IGNORECASE
)
NO_KEY_DATABASE = "the gateway has no key database"
# The name the master key goes by when it stands in for a throwaway key: messages that name the
# gate's key ("GET /key/info for <name> failed") then say why.
MASTER_KEY_NAME = f"the master key ({NO_KEY_DATABASE})"


# ----- redaction -----


def redact_key(key: str) -> str:
    """`sk-...abcd`: tells keys apart, never usable."""
    return f"sk-...{key[-4:]}" if len(key) >= 12 else "sk-..."


def redact_text(text: str) -> str:
    """Any whole `sk-` key inside a text, abbreviated."""
    return _KEY_IN_TEXT.sub(lambda m: redact_key(m.group()), text)


def redact_url(url: str | httpx.URL) -> str:
    """The URL without userinfo, secret-looking query values, or keys anywhere in it."""
    parsed = httpx.URL(str(url))
    params = [
        (name, "REDACTED" if name.lower() in _SECRET_QUERY else value)
        for name, value in parsed.params.multi_items()
    ]
    clean = parsed.copy_with(username=None, password=None, params=params or None)
    return redact_text(str(clean))


# ----- typed errors -----


class GatewayError(Exception):
    """An error answer of the gateway (or none at all: `status` None)."""

    def __init__(self, status: int | None, type_: str | None, message: str, route: str = "",
                 *, cause: str = "") -> None:
        self.status = status
        self.type = type_
        self.message = redact_text(message)
        self.route = route
        self.cause = redact_text(cause)  # why there was no answer (connection refused, DNS...)
        where = f"{route}: " if route else ""
        if status is None:  # no HTTP answer: no status or error type to show
            super().__init__(f"{where}{self.message}")
        else:
            super().__init__(f"{where}HTTP {status} [{type_}] {self.message}")

    @staticmethod
    def from_response(status: int, body: Any, route: str = "") -> GatewayError:
        """The typed error for a gateway error body (LiteLLM's `{"error": {...}}`, or FastAPI's
        `{"detail": ...}`); usable on an `openai.APIStatusError`'s `.status_code` and `.body`."""
        err: Any = body
        if isinstance(body, dict):
            err = body.get("error", body.get("detail", body))
            if isinstance(err, dict) and isinstance(err.get("error"), (str, dict)):
                err = err["error"]  # {"detail": {"error": "..."}}
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("msg") or err)
            type_ = err.get("type") if isinstance(err.get("type"), str) else None
        else:
            message, type_ = str(err), None
        if type_ == "budget_exceeded" or "Budget has been exceeded" in message:
            return BudgetExceeded(status, type_ or "budget_exceeded", message, route)
        if type_ == "no_db_connection" or _NO_DATABASE.search(message):
            return NoKeyDatabase(status, type_, message, route)
        if type_ == "key_model_access_denied" or (
            status in (401, 403) and "not allowed to access model" in message
        ):
            return ModelAccessDenied(status, type_ or "key_model_access_denied", message, route)
        if type_ == "token_not_found_in_db" or (status in (401, 404) and _KEY_MISSING.search(message)):
            return KeyNotFound(status, type_ or "token_not_found_in_db", message, route)
        if "Invalid model name passed in model=" in message:
            return InvalidModel(status, type_, message, route)
        if status is not None and status >= 500:
            return GatewayUnavailable(status, type_, message, route)
        return GatewayError(status, type_, message, route)


class BudgetExceeded(GatewayError):
    """`budget_exceeded`: 400 in old LiteLLM builds, 429 later, 422 by default since v1.104.0.

    The numbers are read where the message gives them (its wording differs by version)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spend, budget = _CURRENT_COST.search(self.message), _MAX_BUDGET.search(self.message)
        self.spend = float(spend.group(1)) if spend else None
        self.max_budget = float(budget.group(1)) if budget else None


class NoKeyDatabase(GatewayError):
    """The gateway runs without a key database (LiteLLM without DATABASE_URL): master key only,
    no virtual keys, no budgets, no per-key spend."""

    def __init__(self, status: int | None, type_: str | None, message: str, route: str = "") -> None:
        super().__init__(status, type_ or "no_db_connection", f"{NO_KEY_DATABASE} ({message})", route)


class NoKeyDatabaseWarning(UserWarning):
    """Said once per admin client: the gates run with the master key, key checks are ERROR."""


class KeyNotFound(GatewayError):
    """`token_not_found_in_db`: the key does not exist (or no longer)."""


class ModelAccessDenied(GatewayError):
    """`key_model_access_denied` (401 in older builds, 403 in current ones)."""


class InvalidModel(GatewayError):
    """400 "Invalid model name passed in model=X"."""


class GatewayUnavailable(GatewayError):
    """No usable answer after the retries: connection errors, timeouts, 5xx."""


# ----- response shapes -----


class VirtualKey(BaseModel):
    """A generated key. Its repr shows alias and `sk-...abcd`; the key is `.value` only."""

    model_config = ConfigDict(frozen=True)

    alias: str | None
    key_name: str
    secret: SecretStr = Field(repr=False)
    token_id: str | None = Field(default=None, repr=False)
    models: list[str] = Field(default_factory=list, repr=False)
    max_budget: float | None = Field(default=None, repr=False)
    expires: str | None = Field(default=None, repr=False)

    @property
    def value(self) -> str:
        return self.secret.get_secret_value()


class KeyInfo(BaseModel):
    """`/key/info`'s `info` (other fields kept as extras)."""

    model_config = ConfigDict(extra="allow")

    spend: float = 0.0
    max_budget: float | None = None
    models: list[str] = Field(default_factory=list)
    key_alias: str | None = None
    key_name: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    expires: str | None = None


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    model_name: str
    litellm_params: dict[str, Any] = Field(default_factory=dict)
    model_info: dict[str, Any] = Field(default_factory=dict)


class HealthReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    healthy_endpoints: list[dict[str, Any]] = Field(default_factory=list)
    unhealthy_endpoints: list[dict[str, Any]] = Field(default_factory=list)
    healthy_count: int = 0
    unhealthy_count: int = 0


def _raw(key: str | VirtualKey) -> str:
    return key.value if isinstance(key, VirtualKey) else key


# ----- the client -----


class LiteLLMAdmin:
    """The admin API over httpx, with tenacity retries on connection errors and 5xx.

    Requests that create something (`/key/generate`, `/model/new`) are retried only where the
    gateway surely did not act (connection refused, 502/503/504), so a retry cannot leak a key.
    """

    def __init__(
        self,
        base_url: str,
        master_key: str,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        retry_wait: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not master_key:
            raise ValueError("LiteLLMAdmin needs the gateway's master key (LITELLM_MASTER_KEY)")
        self.base_url = base_url.rstrip("/")
        self._master = SecretStr(master_key)
        self._attempts = attempts
        self._retry_wait = retry_wait
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        # None until a key was asked for; False: a gateway without a key database (`gate_key`).
        self.has_key_database: bool | None = None

    def __repr__(self) -> str:
        return f"LiteLLMAdmin({redact_url(self.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LiteLLMAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- transport -----

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        key: str | None = None,
        creates: bool = False,
    ) -> Any:
        route = f"{method} {path}"
        token = key if key is not None else self._master.get_secret_value()
        headers = {"authorization": f"Bearer {token}"}

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, GatewayUnavailable):
                return False
            if exc.status is None:  # no answer: a refused connection never reached the gateway
                return not creates or exc.type == "connect_error"
            return not creates or exc.status in (502, 503, 504)

        def attempt() -> Any:
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise GatewayUnavailable(
                    None, "connect_error", f"{redact_url(self.base_url)} unreachable: {cause}", route,
                    cause=cause,
                ) from None
            except httpx.TransportError as exc:
                cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise GatewayUnavailable(None, "transport_error", cause, route, cause=cause) from None
            log.debug("%s -> %s", route, response.status_code)
            try:
                body = response.json()
            except ValueError:
                body = response.text
            if response.status_code >= 400:
                raise GatewayError.from_response(response.status_code, body, route)
            return body

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=8),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "%s failed (attempt %d), retrying: %s", route, state.attempt_number, state.outcome.exception()
            ),
        )
        return retrying(attempt)

    # ----- keys -----

    def generate_key(
        self,
        *,
        key_alias: str | None = None,
        models: list[str] | None = None,
        max_budget: float | None = None,
        duration: str | None = None,
        budget_duration: str | None = None,
        metadata: dict[str, Any] | None = None,
        tpm_limit: int | None = None,
        rpm_limit: int | None = None,
        max_parallel_requests: int | None = None,
    ) -> VirtualKey:
        fields = {
            "key_alias": key_alias, "models": models or [], "max_budget": max_budget,
            "duration": duration, "budget_duration": budget_duration, "metadata": metadata or {},
            "tpm_limit": tpm_limit, "rpm_limit": rpm_limit, "max_parallel_requests": max_parallel_requests,
        }
        try:
            body = self._request(
                "POST", "/key/generate", json={k: v for k, v in fields.items() if v is not None},
                creates=True,
            )
        except GatewayUnavailable as exc:
            # A LiteLLM without the prisma package answers a bare 500: ask its readiness.
            if exc.status == 500 and self.key_database_connected() is False:
                raise NoKeyDatabase(exc.status, None, exc.message, exc.route) from None
            raise
        key = body.get("key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            raise GatewayError(200, None, "POST /key/generate answered without a key", "POST /key/generate")
        return VirtualKey(
            alias=body.get("key_alias", key_alias),
            key_name=redact_key(key),
            secret=SecretStr(key),
            token_id=body.get("token_id") or body.get("token"),
            models=body.get("models") or [],
            max_budget=body.get("max_budget"),
            expires=body.get("expires"),
        )

    def key_info(self, key: str | VirtualKey) -> KeyInfo:
        body = self._request("GET", "/key/info", params={"key": _raw(key)})
        info = body.get("info", body) if isinstance(body, dict) else {}
        info = {k: v for k, v in info.items() if k != "key"}
        return KeyInfo.model_validate(info)

    def update_key(self, key: str | VirtualKey, **fields: Any) -> KeyInfo:
        body = self._request("POST", "/key/update", json={"key": _raw(key), **fields})
        data = body.get("info", body) if isinstance(body, dict) else {}
        return KeyInfo.model_validate({k: v for k, v in data.items() if k != "key"})

    def delete_keys(self, keys: list[str | VirtualKey]) -> list[str]:
        """Deletes the keys; returns the deleted ones abbreviated (`sk-...abcd`)."""
        body = self._request("POST", "/key/delete", json={"keys": [_raw(k) for k in keys]})
        deleted = body.get("deleted_keys", []) if isinstance(body, dict) else []
        return [redact_key(k) for k in deleted if isinstance(k, str)]

    def wait_for_spend(
        self, key: str | VirtualKey, at_least: float, timeout: float = 30.0, interval: float = 0.25
    ) -> float:
        """Poll `/key/info` until its spend reaches `at_least` (LiteLLM writes spend in batches)."""
        retrying = Retrying(
            retry=retry_if_result(lambda spend: spend < at_least),
            stop=stop_after_delay(timeout),
            wait=wait_fixed(interval),
        )
        try:
            return retrying(lambda: self.key_info(key).spend)
        except RetryError as exc:
            seen = exc.last_attempt.result()
            name = key.key_name if isinstance(key, VirtualKey) else redact_key(key)
            raise TimeoutError(
                f"spend of {name} stayed at {seen} (< {at_least}) for {timeout:g} s"
            ) from None

    def settled_spend(self, key: str | VirtualKey, at_least: float, timeout: float = 30.0) -> float:
        """The key's spend once it reaches `at_least`, else (after `timeout`) what it is then:
        the one spend read of every gate (LiteLLM writes spend in batches; a shortfall is the
        caller's finding, not an exception)."""
        try:
            return self.wait_for_spend(key, at_least, timeout=timeout)
        except TimeoutError:
            return self.key_info(key).spend

    # ----- models -----

    def register_model(
        self, model_name: str, litellm_params: dict[str, Any], model_info: dict[str, Any] | None = None
    ) -> str:
        """`POST /model/new`; returns the deployment id (for `delete_model`)."""
        body = self._request(
            "POST", "/model/new",
            json={"model_name": model_name, "litellm_params": litellm_params, "model_info": model_info or {}},
            creates=True,
        )
        model_id = None
        if isinstance(body, dict):
            model_id = body.get("model_id") or (body.get("model_info") or {}).get("id")
        if not model_id:
            raise GatewayError(200, None, f"POST /model/new for {model_name!r} answered without an id", "POST /model/new")
        return str(model_id)

    def delete_model(self, model_id: str) -> None:
        self._request("POST", "/model/delete", json={"id": model_id})

    def model_info(self) -> list[ModelEntry]:
        body = self._request("GET", "/model/info")
        return [ModelEntry.model_validate(entry) for entry in body.get("data", [])]

    def list_models(self, key: str | VirtualKey | None = None) -> list[str]:
        """`/v1/models` as seen by `key` (default: the master key)."""
        body = self._request("GET", "/v1/models", key=None if key is None else _raw(key))
        return [entry["id"] for entry in body.get("data", [])]

    # ----- health and spend -----

    def health(self) -> HealthReport:
        return HealthReport.model_validate(self._request("GET", "/health"))

    def liveliness(self) -> str:
        return str(self._request("GET", "/health/liveliness"))

    def readiness(self) -> dict[str, Any]:
        return self._request("GET", "/health/readiness")

    def key_database_connected(self) -> bool | None:
        """What `/health/readiness` says of the database: False for LiteLLM's "Not connected",
        None when it cannot tell."""
        try:
            ready = self.readiness()
        except GatewayError:
            return None
        db = ready.get("db") if isinstance(ready, dict) else None
        if not isinstance(db, str):
            return None
        return not db.lower().startswith(("not connected", "disconnected"))

    def master_as_key(self) -> VirtualKey:
        """The master key in a VirtualKey, for a gateway without a key database (never printed:
        its name is MASTER_KEY_NAME)."""
        return VirtualKey(alias="master key", key_name=MASTER_KEY_NAME, secret=self._master)

    def spend_logs(self, key: str | VirtualKey | None = None) -> list[dict[str, Any]]:
        params = None if key is None else {"api_key": _raw(key)}
        body = self._request("GET", "/spend/logs", params=params)
        return body.get("data", []) if isinstance(body, dict) else list(body)


@contextlib.contextmanager
def throwaway_key(
    admin: LiteLLMAdmin,
    *,
    alias: str = "modelgate",
    models: list[str] | None = None,
    max_budget: float | None = None,
    metadata: dict[str, Any] | None = None,
    duration: str | None = "24h",
) -> Iterator[VirtualKey]:
    """A key that is ALWAYS deleted on exit, also on exceptions and KeyboardInterrupt.

    The alias gets a random suffix (LiteLLM wants unique aliases); `duration` is a safety net
    that expires the key even if the process is killed before it can delete it.
    """
    key = admin.generate_key(
        key_alias=f"{alias}-{secrets.token_hex(4)}",
        models=models,
        max_budget=max_budget,
        duration=duration,
        metadata={"created_by": "modelgate", "throwaway": True, **(metadata or {})},
    )
    try:
        yield key
    except BaseException:
        try:
            _delete_quietly(admin, key)
        except BaseException as cleanup:  # keep the body's exception; report the cleanup's
            log.error("could not delete throwaway key %s: %s", key.key_name, cleanup)
        raise
    else:
        _delete_quietly(admin, key)


def _delete_quietly(admin: LiteLLMAdmin, key: VirtualKey) -> None:
    try:
        admin.delete_keys([key])
    except KeyNotFound:
        pass  # already gone: the goal is reached


@contextlib.contextmanager
def gate_key(
    admin: LiteLLMAdmin,
    *,
    notify: Callable[[str], None] | None = None,
    **fields: Any,
) -> Iterator[VirtualKey]:
    """A throwaway key (see `throwaway_key`), or the master key when the gateway has no key
    database: then what needs no virtual key still runs, and every key check (budgets, per-key
    spend) gets `NoKeyDatabase` from the gateway and ends as ERROR. Said once per admin client,
    through `notify` (default: a `NoKeyDatabaseWarning`)."""
    if admin.has_key_database is False:
        yield admin.master_as_key()
        return
    stack = contextlib.ExitStack()
    try:
        key = stack.enter_context(throwaway_key(admin, **fields))
    except NoKeyDatabase:
        admin.has_key_database = False
        line = (f"{redact_url(admin.base_url)} has no key database (LiteLLM without DATABASE_URL): "
                "gating with the master key what needs no virtual key; budget and per-key spend "
                f"checks end as ERROR \"{NO_KEY_DATABASE}\"")
        log.warning("%s", line)
        (notify or (lambda text: warnings.warn(text, NoKeyDatabaseWarning, stacklevel=2)))(line)
        yield admin.master_as_key()
        return
    admin.has_key_database = True
    with stack:  # deletes the key whatever happens in the body
        yield key
