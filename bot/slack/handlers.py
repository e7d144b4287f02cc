"""Slack listeners: ack first, check who clicked, call one domain function, re-render.

Bolt returns the ack to Slack at once and runs the rest of a listener on its
worker threads, so posting to a platform never delays the 3-second ack.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from slack_bolt import Ack, App

from bot import bursts, decision, outbox
from bot.cards import (
    REASON_BLOCK,
    REASON_INPUT,
    REDRAFT_BLOCK,
    REDRAFT_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    ActionId,
    CardFacts,
    ModalId,
    dismiss_modal,
    edit_modal,
    parse_burst_value,
    parse_button_value,
    parse_redraft_value,
    parse_snooze_value,
    redraft_modal,
)
from bot.commands import handle_command
from bot.jobs import nudges
from bot.models import OPEN_ON_SLACK, Conversation, DismissReason
from bot.redraft import Direction, RedraftResult, redraft
from bot.review import refresh_card, reply_rules
from bot.services import Services
from bot.slack.approvers import Approvers
from bot.slack.home import publish_home

log = logging.getLogger(__name__)

NOT_ALLOWED = "Sorry, only the people in SLACK_APPROVERS can approve, edit or dismiss replies. Nothing was changed."


def register(app: App, services: Services, approvers: Approvers) -> None:
    handlers = Handlers(services, approvers)
    app.action(ActionId.APPROVE.value)(handlers.approve)
    app.action(ActionId.RETRY.value)(handlers.retry)
    app.action(ActionId.EDIT.value)(handlers.open_edit)
    app.action(ActionId.DISMISS.value)(handlers.open_dismiss)
    app.view(ModalId.EDIT.value)(handlers.submit_edit)
    app.view(ModalId.DISMISS.value)(handlers.submit_dismiss)
    app.action(ActionId.CLAIM.value)(handlers.claim)
    app.action(ActionId.SNOOZE.value)(handlers.snooze)
    app.action(ActionId.REDRAFT.value)(handlers.redraft)
    app.action(ActionId.APPROVE_ALL.value)(handlers.approve_all)
    app.action(ActionId.OPEN_EACH.value)(handlers.open_each)
    app.action(ActionId.DISMISS_ALL.value)(handlers.dismiss_all)
    app.view(ModalId.REDRAFT.value)(handlers.submit_redraft)
    app.command("/conversant")(handlers.command)
    app.event("app_home_opened")(handlers.home_opened)


class Handlers:
    def __init__(self, services: Services, approvers: Approvers) -> None:
        self.services = services
        self.approvers = approvers
        # The slow part of a click (posting to the platform, the model, card updates) runs
        # here, so Bolt's listener threads stay free to ack the next clicks at once.
        self._after_ack = ThreadPoolExecutor(max_workers=4, thread_name_prefix="after-ack")

    def _later(self, work, *args) -> None:
        def run() -> None:
            try:
                work(*args)
            except Exception:  # noqa: BLE001 - one failed click must not take the pool down
                log.exception("work after a click failed")

        self._after_ack.submit(run)

    # -- buttons -------------------------------------------------------------

    def approve(self, ack: Ack, body: dict) -> None:
        ack()
        click = self._click(body)
        if click:
            self._later(lambda: self._finish(click, decision.approve(self.services, click.conversation_id, click.user)))

    def retry(self, ack: Ack, body: dict) -> None:
        ack()
        click = self._click(body)
        if click:
            self._later(lambda: self._finish(click, decision.retry(self.services, click.conversation_id, click.user)))

    def open_edit(self, ack: Ack, body: dict, client) -> None:
        ack()
        click = self._click(body)
        conversation = click and self._open_conversation(click)
        if conversation:
            rules = reply_rules(self.services, conversation)
            facts = CardFacts(rules.platform_label, rules.limit, None)
            platform = self.services.platforms.get(conversation.platform)
            initial = conversation.reply_text or conversation.draft_text
            if not initial:
                initial = platform.compose_reply(conversation.thread_ref, "") if platform else ""
            self._open_modal(client, body, click, edit_modal(conversation, facts, initial))

    def open_dismiss(self, ack: Ack, body: dict, client) -> None:
        ack()
        click = self._click(body)
        conversation = click and self._open_conversation(click)
        if conversation:
            self._open_modal(client, body, click, dismiss_modal(conversation))

    def claim(self, ack: Ack, body: dict) -> None:
        ack()
        click = self._click(body)
        if click:
            self._settle(click, nudges.claim(self.services, click.conversation_id, click.user))

    def snooze(self, ack: Ack, body: dict) -> None:
        ack()
        click = self._click(body)
        chosen = click and parse_snooze_value(click.value)
        if click and not chosen:
            self._tell(click.channel, click.user, "That snooze choice is not valid any more; pick it again from the card.")
        elif chosen:
            self._settle(click, nudges.snooze(self.services, click.conversation_id, click.user, chosen[1]))

    def redraft(self, ack: Ack, body: dict, client) -> None:
        ack()
        click = self._click(body)
        chosen = click and parse_redraft_value(click.value)
        try:
            direction = Direction(chosen[1]) if chosen else None
        except ValueError:
            direction = None
        if click and direction is None:
            self._tell(click.channel, click.user, "That redraft choice is not valid any more; pick it again from the card.")
        elif direction is Direction.CUSTOM:
            conversation = self._open_conversation(click)
            if conversation:
                self._open_modal(client, body, click, redraft_modal(conversation))
        elif direction:
            self._later(lambda: self._redrafted(click, redraft(self.services, click.conversation_id, click.user, direction)))

    # -- burst cards ---------------------------------------------------------

    def approve_all(self, ack: Ack, body: dict) -> None:
        ack()
        click = self._burst_click(body)
        if click:
            self._later(self._approve_burst, click)

    def _approve_burst(self, click: "Click") -> None:
        result = bursts.approve_all(self.services, click.conversation_id, click.user)
        log.info("burst %s: approve all by %s: %d approved, %d need a person", click.conversation_id, click.user, result.done, result.skipped)
        if result.message:
            self._tell(click.channel, click.user, result.message)

    def open_each(self, ack: Ack, body: dict) -> None:
        ack()
        click = self._burst_click(body)
        if click:
            self._later(bursts.open_one_by_one, self.services, click.conversation_id, click.user)

    def dismiss_all(self, ack: Ack, body: dict) -> None:
        ack()
        click = self._burst_click(body)
        if click:
            self._later(bursts.dismiss_all, self.services, click.conversation_id, click.user, DismissReason.NO_REPLY_NEEDED)

    def _burst_click(self, body: dict) -> "Click | None":
        """Like ``_click``, for a burst card's buttons: ``conversation_id`` holds the burst's id."""
        user = body.get("user", {}).get("id", "")
        channel = (body.get("channel") or {}).get("id")
        burst_id = parse_burst_value((body.get("actions") or [{}])[0].get("value"))
        if burst_id is None:
            self._tell(channel, user, "That button is not valid any more; the card may be from an older version.")
            return None
        if not self.approvers.allows(user):
            self._tell(channel, user, NOT_ALLOWED)
            return None
        return Click(user, burst_id, channel, None)

    # -- modals --------------------------------------------------------------

    def submit_redraft(self, ack: Ack, body: dict, view: dict) -> None:
        user = body["user"]["id"]
        conversation_id = parse_button_value(view.get("private_metadata"))
        instruction = (_input(view, REDRAFT_BLOCK, REDRAFT_INPUT).get("value") or "").strip()
        if conversation_id is None or not self.approvers.allows(user):
            ack(response_action="errors", errors={REDRAFT_BLOCK: NOT_ALLOWED if conversation_id else "This form is no longer valid."})
            return
        if not instruction:
            ack(response_action="errors", errors={REDRAFT_BLOCK: "Say how the draft should change."})
            return
        ack()  # the model may take seconds: answer Slack first
        conversation = self._load(conversation_id)
        click = Click(user, conversation_id, _card_channel(conversation), None)
        self._later(lambda: self._redrafted(click, redraft(self.services, conversation_id, user, Direction.CUSTOM, instruction)))

    def _redrafted(self, click: "Click", result: RedraftResult) -> None:
        log.info("conversation %s: redraft by %s: %s", click.conversation_id, click.user, "done" if result.done else result.message)
        if not result.done:
            self._tell(click.channel, click.user, result.message)

    def submit_edit(self, ack: Ack, body: dict, view: dict) -> None:
        user = body["user"]["id"]
        conversation_id = parse_button_value(view.get("private_metadata"))
        text = _input(view, REPLY_BLOCK, REPLY_INPUT).get("value") or ""
        if conversation_id is None:
            ack(response_action="errors", errors={REPLY_BLOCK: "This form is no longer valid; open Edit again from the card."})
            return
        if not self.approvers.allows(user):
            ack(response_action="errors", errors={REPLY_BLOCK: NOT_ALLOWED})
            return
        conversation = self._load(conversation_id)
        problems = decision.check_text(self.services, conversation, text) if conversation else []
        if problems:
            ack(response_action="errors", errors={REPLY_BLOCK: " ".join(problems)[:150]})
            return
        ack()
        click = Click(user, conversation_id, _card_channel(conversation))
        self._later(lambda: self._finish(click, decision.approve_edited(self.services, conversation_id, user, text)))

    def submit_dismiss(self, ack: Ack, body: dict, view: dict) -> None:
        user = body["user"]["id"]
        conversation_id = parse_button_value(view.get("private_metadata"))
        selected = (_input(view, REASON_BLOCK, REASON_INPUT).get("selected_option") or {}).get("value")
        try:
            reason = DismissReason(selected)
        except ValueError:
            ack(response_action="errors", errors={REASON_BLOCK: "Pick a reason."})
            return
        if conversation_id is None or not self.approvers.allows(user):
            ack(response_action="errors", errors={REASON_BLOCK: NOT_ALLOWED if conversation_id else "This form is no longer valid."})
            return
        ack()
        click = Click(user, conversation_id, _card_channel(self._load(conversation_id)))
        self._later(lambda: self._finish(click, decision.dismiss(self.services, conversation_id, user, reason)))

    # -- slash command -------------------------------------------------------

    def command(self, ack: Ack, command: dict) -> None:
        reply = handle_command(self.services, command, allowed=self.approvers.allows)
        ack(text=reply.text)
        if reply.then:
            reply.then()

    # -- events --------------------------------------------------------------

    def home_opened(self, event: dict) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            publish_home(self.services, event["user"])

    # -- helpers -------------------------------------------------------------

    def _click(self, body: dict) -> "Click | None":
        user = body.get("user", {}).get("id", "")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        action = (body.get("actions") or [{}])[0]
        value = action.get("value") or (action.get("selected_option") or {}).get("value")  # a button, or a menu choice
        conversation_id = parse_button_value(value)
        if conversation_id is None:
            log.warning("ignored a click with a malformed button value from %s", user)
            self._tell(channel, user, "That button is not valid any more; the card may be from an older version.")
            return None
        if not self.approvers.allows(user):
            log.info("conversation %s: %s is not an approver", conversation_id, user)
            self._tell(channel, user, NOT_ALLOWED)
            return None
        return Click(user, conversation_id, channel, value)

    def _open_conversation(self, click: "Click") -> Conversation | None:
        conversation = self._load(click.conversation_id)
        if conversation is None or conversation.state not in {s.value for s in OPEN_ON_SLACK}:
            result = decision.already_handled(self.services, click.conversation_id)
            self._tell(click.channel, click.user, result.message)
            refresh_card(self.services, click.conversation_id)
            return None
        return conversation

    def _open_modal(self, client, body: dict, click: "Click", view: dict) -> None:
        try:
            client.views_open(trigger_id=body["trigger_id"], view=view)
        except Exception as error:  # noqa: BLE001 - any failure is reported to the person who clicked
            log.error("conversation %s: could not open a modal: %s", click.conversation_id, getattr(error, "response", {}).get("error", error))
            self._tell(click.channel, click.user, "Slack could not open the form in time; please click again.")

    def _finish(self, click: "Click", result: decision.Decision) -> None:
        """After a decision (on the after-ack pool): say why nothing changed, or show it and post."""
        log.info("conversation %s: %s by %s", click.conversation_id, result.outcome.value, click.user)
        if not result.done:
            self._tell(click.channel, click.user, result.message)
        refresh_card(self.services, click.conversation_id)
        if result.done:
            outbox.send(self.services, click.conversation_id)

    def _settle(self, click: "Click", result: decision.Decision) -> None:
        """After a claim or snooze: say why nothing changed, or show the change on the card."""
        if not result.done:
            self._tell(click.channel, click.user, result.message)
        refresh_card(self.services, click.conversation_id)

    def _load(self, conversation_id: int) -> Conversation | None:
        with self.services.db.session() as session:
            return session.get(Conversation, conversation_id)

    def _tell(self, channel: str | None, user: str, text: str) -> None:
        if channel and user:
            self.services.publisher.tell(channel, user, text)


@dataclass(frozen=True)
class Click:
    user: str
    conversation_id: int
    channel: str | None
    value: str | None = None


def _input(view: dict, block: str, action: str) -> dict:
    return ((view.get("state") or {}).get("values") or {}).get(block, {}).get(action, {})


def _card_channel(conversation: Conversation | None) -> str | None:
    return conversation.slack_channel if conversation else None
