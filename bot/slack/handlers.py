"""Slack listeners: ack, parse the typed button value, check who clicked, one ``flows`` call.

Each listener acks first and hands the rest to the app's one executor (Bolt's listener
executor, shut down with the app by ``slack.app.close``), so posting to a platform or asking
the model never delays the 3-second ack. A modal is validated before its ack (errors show
in the modal), then handled the same way.
"""
from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import dataclass

from slack_bolt import Ack, App

from bot import flows
from bot.models import Direction, DismissReason
from bot.services import Services
from bot.slack import sync
from bot.slack.approvers import Approvers
from bot.slack.commands import handle_command
from bot.slack.home import publish_home
from bot.slack.payloads import (
    PRIVATE_BLOCK,
    PRIVATE_INPUT,
    REASON_BLOCK,
    REASON_INPUT,
    REDRAFT_BLOCK,
    REDRAFT_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    ActionId,
    ButtonValue,
    ModalId,
)

log = logging.getLogger(__name__)

NOT_ALLOWED = "Sorry, only the people in SLACK_APPROVERS can approve, edit or dismiss replies. Nothing was changed."
NOT_ON_THIS_CARD = "That button does not belong to this card; nothing was changed."


def register(app: App, services: Services, approvers: Approvers) -> None:
    h = Handlers(services, approvers, app.listener_runner.listener_executor)
    buttons = {
        ActionId.APPROVE: h.approve, ActionId.RETRY: h.retry, ActionId.EDIT: h.open_edit, ActionId.DISMISS: h.open_dismiss,
        ActionId.CLAIM: h.claim, ActionId.SNOOZE: h.snooze, ActionId.REDRAFT: h.redraft,
        ActionId.REDRAFT_ARTICLE: h.redraft_article, ActionId.REPLY_PRIVATELY: h.open_private,
        ActionId.REPLY_AS: h.reply_as,
        ActionId.APPROVE_ALL: h.approve_all, ActionId.OPEN_EACH: h.open_each, ActionId.DISMISS_ALL: h.dismiss_all,
    }
    for action, work in buttons.items():
        app.action(action.value)(h.button(work))
    app.view(ModalId.EDIT.value)(h.modal(h.validate_edit, h.submit_edit))
    app.view(ModalId.DISMISS.value)(h.modal(h.validate_dismiss, h.submit_dismiss))
    app.view(ModalId.REDRAFT.value)(h.modal(h.validate_redraft, h.submit_redraft))
    app.view(ModalId.PRIVATE.value)(h.modal(h.validate_private, h.submit_private))
    app.command("/conversant")(h.command)
    app.event("app_home_opened")(h.home_opened)


@dataclass(frozen=True)
class Click:
    user: str
    channel: str | None
    value: ButtonValue
    message_ts: str | None = None


class Handlers:
    def __init__(self, services: Services, approvers: Approvers, executor: Executor) -> None:
        self.services = services
        self.approvers = approvers
        self.executor = executor

    def button(self, work):
        """A listener that acks, then does ``work(body, client)`` on the executor."""
        def listener(ack: Ack, body: dict, client) -> None:
            ack()
            self._later(work, body, client)
        return listener

    def modal(self, validate, submit):
        """A listener that validates the submission (its ack carries the errors), then submits it on the executor."""
        def listener(ack: Ack, body: dict, view: dict) -> None:
            if validate(ack, body, view):
                self._later(submit, body, view)
        return listener

    def _later(self, work, *args) -> None:
        def run() -> None:
            try:
                work(*args)
            except Exception:  # noqa: BLE001 - one failed click must not take the others down
                log.exception("work after a click failed")
        self.executor.submit(run)

    # -- buttons on a conversation's card ---------------------------------------------------

    def approve(self, body: dict, client=None) -> None:
        if click := self._click(body):
            flows.approve(self.services, click.value.conversation, click.user, click.channel)

    def retry(self, body: dict, client=None) -> None:
        if click := self._click(body):
            flows.retry(self.services, click.value.conversation, click.user, click.channel)

    def claim(self, body: dict, client=None) -> None:
        if click := self._click(body):
            flows.claim(self.services, click.value.conversation, click.user, click.channel)

    def snooze(self, body: dict, client=None) -> None:
        if (click := self._click(body)) and self._chose(click, click.value.snooze, "snooze"):
            flows.snooze(self.services, click.value.conversation, click.user, click.value.snooze, click.channel)

    def redraft(self, body: dict, client) -> None:
        click = self._click(body)
        if not click or not self._chose(click, click.value.redraft, "redraft"):
            return
        if click.value.redraft is Direction.CUSTOM:
            self._open_modal(client, body, click, flows.redraft_form(self.services, click.value.conversation, click.user, click.channel))
        else:
            flows.redraft(self.services, click.value.conversation, click.user, click.value.redraft, channel=click.channel)

    def redraft_article(self, body: dict, client=None) -> None:
        if (click := self._click(body)) and self._chose(click, click.value.article, "article"):
            flows.redraft_with_article(self.services, click.value.conversation, click.user, click.value.article, channel=click.channel)

    def reply_as(self, body: dict, client=None) -> None:
        if (click := self._click(body)) and self._chose(click, click.value.account, "account"):
            flows.reply_as(self.services, click.value.conversation, click.user, click.value.account, click.channel)

    def open_edit(self, body: dict, client) -> None:
        if click := self._click(body):
            self._open_modal(client, body, click, flows.edit_form(self.services, click.value.conversation, click.user, click.channel))

    def open_private(self, body: dict, client) -> None:
        if click := self._click(body):
            self._open_modal(client, body, click, flows.private_form(self.services, click.value.conversation, click.user, click.channel))

    def open_dismiss(self, body: dict, client) -> None:
        if click := self._click(body):
            self._open_modal(client, body, click, flows.dismiss_form(self.services, click.value.conversation, click.user, click.channel))

    # -- buttons on a burst card ------------------------------------------------------------

    def approve_all(self, body: dict, client=None) -> None:
        if click := self._click(body, burst=True):
            flows.approve_all(self.services, click.value.burst, click.user, click.channel)

    def open_each(self, body: dict, client=None) -> None:
        if click := self._click(body, burst=True):
            flows.open_each(self.services, click.value.burst, click.user, click.channel)

    def dismiss_all(self, body: dict, client=None) -> None:
        if click := self._click(body, burst=True):
            flows.dismiss_all(self.services, click.value.burst, click.user, DismissReason.NO_REPLY_NEEDED, click.channel)

    # -- modals: checked before the ack, handled after it ----------------------------------

    def validate_edit(self, ack: Ack, body: dict, view: dict) -> bool:
        submitted = self._submitted(body, view)
        if isinstance(submitted, str):
            ack(response_action="errors", errors={REPLY_BLOCK: submitted})
            return False
        problems = flows.edit_problems(self.services, submitted.value.conversation, submitted.user,
                                       _input(view, REPLY_BLOCK, REPLY_INPUT).get("value") or "")
        if problems:
            ack(response_action="errors", errors={REPLY_BLOCK: " ".join(problems)[:150]})
            return False
        ack()
        return True

    def validate_private(self, ack: Ack, body: dict, view: dict) -> bool:
        submitted = self._submitted(body, view)
        if isinstance(submitted, str):
            ack(response_action="errors", errors={PRIVATE_BLOCK: submitted})
            return False
        problems = flows.edit_problems(self.services, submitted.value.conversation, submitted.user, _private_text(view), private=True)
        if problems:
            ack(response_action="errors", errors={PRIVATE_BLOCK: " ".join(problems)[:150]})
            return False
        ack()
        return True

    def submit_private(self, body: dict, view: dict) -> None:
        submitted = self._submitted(body, view)
        if not isinstance(submitted, str):
            flows.submit_private(self.services, submitted.value.conversation, submitted.user, _private_text(view), submitted.channel)

    def submit_edit(self, body: dict, view: dict) -> None:
        submitted = self._submitted(body, view)
        if not isinstance(submitted, str):
            text = _input(view, REPLY_BLOCK, REPLY_INPUT).get("value") or ""
            flows.submit_edit(self.services, submitted.value.conversation, submitted.user, text, submitted.channel)

    def validate_dismiss(self, ack: Ack, body: dict, view: dict) -> bool:
        if _reason(view) is None:
            ack(response_action="errors", errors={REASON_BLOCK: "Pick a reason."})
            return False
        submitted = self._submitted(body, view)
        if isinstance(submitted, str):
            ack(response_action="errors", errors={REASON_BLOCK: submitted})
            return False
        ack()
        return True

    def submit_dismiss(self, body: dict, view: dict) -> None:
        submitted, reason = self._submitted(body, view), _reason(view)
        if not isinstance(submitted, str) and reason is not None:
            flows.dismiss(self.services, submitted.value.conversation, submitted.user, reason, submitted.channel)

    def validate_redraft(self, ack: Ack, body: dict, view: dict) -> bool:
        submitted = self._submitted(body, view)
        if isinstance(submitted, str):
            ack(response_action="errors", errors={REDRAFT_BLOCK: submitted})
            return False
        if not _instruction(view):
            ack(response_action="errors", errors={REDRAFT_BLOCK: "Say how the draft should change."})
            return False
        ack()  # the model may take seconds: answer Slack first
        return True

    def submit_redraft(self, body: dict, view: dict) -> None:
        submitted = self._submitted(body, view)
        if not isinstance(submitted, str) and _instruction(view):
            flows.redraft(self.services, submitted.value.conversation, submitted.user, Direction.CUSTOM, _instruction(view),
                          channel=submitted.channel)

    # -- slash command and Home -------------------------------------------------------------

    def command(self, ack: Ack, command: dict) -> None:
        reply = handle_command(self.services, command, allowed=self.approvers.allows)
        ack(text=reply.text)
        if reply.then:
            reply.then()

    def home_opened(self, event: dict) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            publish_home(self.services, event["user"])

    # -- helpers ----------------------------------------------------------------------------

    def _click(self, body: dict, *, burst: bool = False) -> Click | None:
        """The typed click, from someone allowed, on the card it belongs to; else they are told why not."""
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        action = body["actions"][0]
        value = ButtonValue.parse(action.get("value") or (action.get("selected_option") or {}).get("value"))
        message_ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts")
        if value is None or (value.burst is not None) != burst:  # a burst card's value on a conversation's button, or the reverse
            sync.tell(self.services, channel, user, "That button is not valid any more; the card may be from an older version.")
            return None
        if not self.approvers.allows(user):
            log.info("%s is not an approver", user)
            sync.tell(self.services, channel, user, NOT_ALLOWED)
            return None
        if not flows.belongs_to_message(self.services, value, channel, message_ts):
            log.warning("a click by %s carried a value of another card (%s)", user, value.dump())
            sync.tell(self.services, channel, user, NOT_ON_THIS_CARD)
            return None
        return Click(user, channel, value, message_ts)

    def _chose(self, click: Click, choice, what: str) -> bool:
        if choice is None:
            sync.tell(self.services, click.channel, click.user, f"That {what} choice is not valid any more; pick it again from the card.")
        return choice is not None

    def _submitted(self, body: dict, view: dict) -> Click | str:
        """The modal's conversation and who submitted it; a string says why it cannot be used."""
        user = body["user"]["id"]
        value = ButtonValue.parse(view.get("private_metadata"))
        if value is None or value.conversation is None:
            return "This form is no longer valid; open it again from the card."
        if not self.approvers.allows(user):
            return NOT_ALLOWED
        return Click(user, flows.card_channel(self.services, value.conversation), value)

    def _open_modal(self, client, body: dict, click: Click, view: dict | None) -> None:
        if view is None:
            return
        try:
            client.views_open(trigger_id=body["trigger_id"], view=view)
        except Exception as error:  # noqa: BLE001 - any failure is reported to the person who clicked
            log.error("could not open a modal: %s", getattr(error, "response", {}).get("error", error))
            sync.tell(self.services, click.channel, click.user, "Slack could not open the form in time; please click again.")


def _input(view: dict, block: str, action: str) -> dict:
    return ((view.get("state") or {}).get("values") or {}).get(block, {}).get(action, {})


def _reason(view: dict) -> DismissReason | None:
    selected = (_input(view, REASON_BLOCK, REASON_INPUT).get("selected_option") or {}).get("value")
    try:
        return DismissReason(selected)
    except ValueError:
        return None


def _private_text(view: dict) -> str:
    return _input(view, PRIVATE_BLOCK, PRIVATE_INPUT).get("value") or ""


def _instruction(view: dict) -> str:
    return (_input(view, REDRAFT_BLOCK, REDRAFT_INPUT).get("value") or "").strip()
