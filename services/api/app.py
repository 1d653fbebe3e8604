"""The subscriber API's HTTP shell (FastAPI: the OpenAPI spec at /openapi.json is made from the
models in core). Storage and search are injected (`SubscriptionStore`, `Search`), so this module
imports neither Kafka nor Elasticsearch.

Errors: a missing or wrong key is 401, another owner's subscription 404, a request that cannot be
used 422 with every problem listed, too many requests 429 with Retry-After, a body over the size
limit 413, and a broker or Elasticsearch that is briefly away 503 with Retry-After.

No `from __future__ import annotations` here: FastAPI reads the route signatures' annotations, and
`Caller` is local to `create_app`."""

import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel

from pantau import __version__
from pantau.alerter.query import QueryError, parse_query
from pantau.alerter.subscriptions import check, webhook_egress_problems
from pantau.api.core import (
    ID_PATTERN,
    ApiKey,
    BadRequest,
    KeyRing,
    Mute,
    QueryTest,
    SubscriptionCreate,
    SubscriptionPatch,
    alerts_search,
    articles_search,
    muted,
    new_subscription,
    patched,
    unmuted,
)
from pantau.common.codec import Codec
from pantau.common.errors import TransientError
from pantau.common.metrics import API_REQUEST_SECONDS, API_REQUESTS

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024


class SubscriptionStore(Protocol):
    def get(self, sub_id: str) -> dict[str, Any] | None: ...
    def all(self) -> Iterable[dict[str, Any]]: ...
    def put(self, sub: dict[str, Any]) -> None: ...  # returns once acknowledged and readable here
    def delete(self, sub_id: str) -> None: ...


class Search(Protocol):
    def search(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...  # kind: articles | alerts


class Problem(BaseModel):
    detail: str
    problems: list[str] = []


class Limits:
    """Requests per key (moving window), and failed authentications per client address (so keys
    cannot be guessed at speed). In memory: per API process."""

    def __init__(self, per_key: str, auth_failures: str):
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_key, self.auth_failures = parse(per_key), parse(auth_failures)

    def retry_after(self, item, *identity: str) -> int | None:
        """None when the request may go on; else seconds until it may."""
        if self.limiter.hit(item, *identity):
            return None
        reset = self.limiter.get_window_stats(item, *identity).reset_time
        return max(1, math.ceil(reset - time.time()))


def _error(status: int, detail: str, problems: list[str] | None = None, headers: dict[str, str] | None = None):
    return JSONResponse({"detail": detail, "problems": problems or []}, status, headers=headers)


class ApiError(Exception):
    def __init__(self, status: int, detail: str, problems: list[str] | None = None,
                 headers: dict[str, str] | None = None):  # fmt: skip
        self.status, self.detail, self.problems, self.headers = status, detail, problems or [], headers


ERRORS = {
    401: {"model": Problem, "description": "No key, or not a valid one."},
    429: {"model": Problem, "description": "Too many requests for this key (see Retry-After)."},
    503: {"model": Problem, "description": "The broker or Elasticsearch is briefly away (see Retry-After)."},
}
NOT_FOUND = {404: {"model": Problem, "description": "No such subscription of yours."}}
UNUSABLE = {422: {"model": Problem, "description": "The request cannot be used; `problems` says why."}}


def create_app(keys: Callable[[], KeyRing], store: SubscriptionStore, search: Search, codec: Codec,
               resolve: Callable[[str], list[str]], allow_loopback: bool = False,
               internal_hosts: Iterable[str] = (), rate_limit: str = "120/minute",
               auth_failure_limit: str = "30/minute",
               now: Callable[[], datetime] | None = None) -> FastAPI:  # fmt: skip
    """The app. `keys` is called per request (the caller may reload its file); `resolve` turns a
    webhook host into addresses for the registration-time egress check."""
    clock = now or (lambda: datetime.now(UTC))
    limits = Limits(rate_limit, auth_failure_limit)
    internal = tuple(internal_hosts)
    app = FastAPI(title="Pantau subscriber API", version=__version__, responses=ERRORS,
                  description="Subscriptions (what to watch, how to be told), query tests against recent "
                  "articles, and past alerts. Every call needs `Authorization: Bearer pk_…`.")  # fmt: skip
    bearer = HTTPBearer(auto_error=False, description="An API key, pk_<id>_<secret> (`pantau api key`).")

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            response = _error(413, f"the body may be at most {MAX_BODY_BYTES} bytes")
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        API_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        API_REQUEST_SECONDS.labels(path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):
        return _error(exc.status, exc.detail, exc.problems, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def unusable(_request: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return _error(422, "the request cannot be used", problems)

    @app.exception_handler(TransientError)
    async def away(_request: Request, exc: TransientError):
        log.warning("backend unavailable", extra={"reason": str(exc)})
        return _error(503, f"briefly unavailable: {exc}", headers={"Retry-After": "5"})

    def caller(request: Request,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiKey:  # fmt: skip
        client = request.client.host if request.client else "unknown"
        key = keys().lookup(credentials.credentials if credentials else None)
        if key is None:
            wait = limits.retry_after(limits.auth_failures, "auth-failures", client)
            if wait is not None:
                raise ApiError(429, "too many failed authentications", headers={"Retry-After": str(wait)})
            detail = "an API key is needed: Authorization: Bearer pk_…" if credentials is None else "unknown API key"
            raise ApiError(401, detail, headers={"WWW-Authenticate": "Bearer"})
        wait = limits.retry_after(parse(key.rate_limit) if key.rate_limit else limits.per_key, "key", key.id)
        if wait is not None:
            raise ApiError(429, "rate limit reached for this key", headers={"Retry-After": str(wait)})
        return key

    Caller = Annotated[ApiKey, Depends(caller)]

    def own(key: ApiKey, sub_id: str) -> dict[str, Any]:
        sub = store.get(sub_id)
        if sub is None or sub.get("owner") != key.owner:
            raise ApiError(404, f"no subscription {sub_id!r} of yours")
        return sub

    def problems_of(sub: dict[str, Any]) -> list[str]:
        found = [p.split("): ", 1)[-1] for p in check(sub, codec, "subscription")]
        if not found:
            found = webhook_egress_problems(sub, resolve, allow_loopback, internal)
        return found

    def save(sub: dict[str, Any]) -> dict[str, Any]:
        problems = problems_of(sub)
        if problems:
            raise ApiError(422, "the subscription cannot be used", problems)
        store.put(sub)
        return sub

    def guarded(build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return build()
        except BadRequest as exc:
            raise ApiError(422, "the request cannot be used", exc.problems) from None

    sub_path = "/v1/subscriptions/{sub_id}"

    @app.get("/v1/subscriptions", tags=["subscriptions"], summary="Your subscriptions")
    def list_subscriptions(key: Caller) -> list[dict[str, Any]]:
        return sorted((s for s in store.all() if s.get("owner") == key.owner), key=lambda s: s["id"])

    @app.post("/v1/subscriptions", tags=["subscriptions"], status_code=201, summary="Create a subscription",
              responses={409: {"model": Problem, "description": "That id is taken."}, **UNUSABLE})  # fmt: skip
    def create_subscription(body: SubscriptionCreate, response: Response, key: Caller) -> dict[str, Any]:
        taken = {s["id"] for s in store.all()}
        sub = guarded(lambda: new_subscription(key.owner, body, clock(), taken))
        if sub["id"] in taken:
            raise ApiError(409, f"id {sub['id']!r} is taken; choose another or leave it out")
        response.headers["Location"] = f"/v1/subscriptions/{sub['id']}"
        return save(sub)

    @app.get(sub_path, tags=["subscriptions"], summary="One of your subscriptions", responses=NOT_FOUND)
    def get_subscription(sub_id: str, key: Caller) -> dict[str, Any]:
        return own(key, sub_id)

    @app.patch(sub_path, tags=["subscriptions"], summary="Change fields of a subscription",
               responses={**NOT_FOUND, **UNUSABLE})  # fmt: skip
    def update_subscription(sub_id: str, body: SubscriptionPatch, key: Caller) -> dict[str, Any]:
        current = own(key, sub_id)
        return save(guarded(lambda: patched(current, body, clock())))

    @app.delete(sub_path, tags=["subscriptions"], status_code=204, summary="Delete a subscription",
                responses=NOT_FOUND)  # fmt: skip
    def delete_subscription(sub_id: str, key: Caller) -> Response:
        own(key, sub_id)
        store.delete(sub_id)
        return Response(status_code=204)

    @app.post(sub_path + "/mute", tags=["subscriptions"], summary="Mute (no alerts until a time)",
              responses={**NOT_FOUND, **UNUSABLE})  # fmt: skip
    def mute_subscription(sub_id: str, body: Mute, key: Caller) -> dict[str, Any]:
        current = own(key, sub_id)
        return save(guarded(lambda: muted(current, body, clock())))

    @app.post(sub_path + "/unmute", tags=["subscriptions"], summary="Unmute", responses=NOT_FOUND)
    def unmute_subscription(sub_id: str, key: Caller) -> dict[str, Any]:
        return save(unmuted(own(key, sub_id), clock()))

    @app.post("/v1/queries/test", tags=["queries"], summary="Run a query against recent articles",
              responses=UNUSABLE)  # fmt: skip
    def test_query(body: QueryTest, _key: Caller) -> dict[str, Any]:
        try:
            parsed = parse_query(body.query)
        except QueryError as exc:
            raise ApiError(422, "the query cannot be used", [f"query: {exc}"]) from None
        since = clock() - timedelta(hours=body.hours)
        result = search.search("articles", articles_search(parsed.to_elasticsearch(), since, body.size))
        return {"query": parsed.canonical, "hours": body.hours, "total": result["hits"]["total"]["value"],
                "articles": [hit["_source"] for hit in result["hits"]["hits"]]}  # fmt: skip

    @app.get("/v1/alerts", tags=["alerts"], summary="Past alerts told to your subscriptions (latest revision each)",
             responses={**NOT_FOUND, **UNUSABLE})  # fmt: skip
    def list_alerts(key: Caller, subscription_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                    since: Annotated[datetime | None, Query(description="Detected at or after (with a zone).")] = None,
                    size: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:  # fmt: skip
        if subscription_id is not None:
            ids = [own(key, subscription_id)["id"]]
        else:
            ids = sorted(s["id"] for s in store.all() if s.get("owner") == key.owner)
        if since is not None and since.tzinfo is None:
            raise ApiError(422, "the request cannot be used", ["since: give a time zone (e.g. 2026-11-27T09:00:00Z)"])
        if not ids:
            return {"alerts": []}
        result = search.search("alerts", alerts_search(ids, since, size))
        return {"alerts": [hit["_source"] for hit in result["hits"]["hits"]]}

    return app
