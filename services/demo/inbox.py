"""The demo subscriber's inbox for `make run`: a webhook endpoint that checks each delivery's
Standard Webhooks signature with the secret its subscription file gives, and (locally) an SMTP
server. What arrives is logged in one line and kept under `out/inbox/` for a look."""

from __future__ import annotations

import logging
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

log = logging.getLogger("pantau.demo.inbox")


def secrets_by_path(subscriptions: list[dict]) -> dict[str, str]:
    """/hooks/<subscription id> → that subscription's first signing secret."""
    out = {}
    for sub in subscriptions:
        for hook in (sub.get("channels") or {}).get("webhooks") or []:
            if hook.get("secret"):
                out.setdefault(f"/hooks/{sub['id']}", hook["secret"])
    return out


def webhook_app(secrets: dict[str, str], folder: Path) -> web.Application:
    seen: set[str] = set()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        secret = secrets.get(request.path)
        if secret is None:
            return web.Response(status=404, text="no subscription has this hook\n")
        try:
            payload = Webhook(secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            log.warning("webhook refused: %s", exc)
            return web.Response(status=401, text=f"{exc}\n")
        msg_id = request.headers["webhook-id"]
        repeat = msg_id in seen  # a retry of a delivery already taken: acknowledged, not counted twice
        seen.add(msg_id)
        (folder / f"{msg_id}.json").write_bytes(body)
        for alert in payload["data"]["alerts"]:
            observed = alert.get("observed") or {}
            log.info("%swebhook %s for %s: %s %s %s — %s stories from %s sources", "repeated " if repeat else "",
                     msg_id, payload["data"]["subscription_id"], alert["kind"], alert["state"],
                     alert["watch"].get("label"), observed.get("stories"), observed.get("sources"))  # fmt: skip
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/{name}", receive)
    return app


class MailHandler:
    """aiosmtpd handler: every message saved as .eml and logged."""

    def __init__(self, folder: Path):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=default_policy)
        name = (message.get("Message-ID") or "no-id").strip("<>").replace("/", "_")
        (self.folder / f"{name}.eml").write_bytes(envelope.content)
        log.info("email to %s: %s", ", ".join(envelope.rcpt_tos), message.get("Subject"))
        return "250 OK"
