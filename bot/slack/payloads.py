"""What Slack sends the app, parsed in one place: action and modal ids, the typed button value,
and the shape of an interaction payload.

A button's ``value`` (and a modal's ``private_metadata``) is a ``ButtonValue`` dumped to JSON,
e.g. ``{"conversation": 12}`` or ``{"burst": 3}``. Parsing is strict: a boolean, a string or
a negative number is not an id, and a payload of the wrong shape is refused (400) before any
listener runs.
"""
from __future__ import annotations

import enum
import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PositiveInt, StrictStr, StringConstraints, ValidationError

from bot.models import Direction, SnoozeFor


class ActionId(str, enum.Enum):
    APPROVE = "conversant_approve"
    REPLY_PRIVATELY = "conversant_reply_privately"  # opens the private message in a modal
    EDIT = "conversant_edit"
    DISMISS = "conversant_dismiss"
    RETRY = "conversant_retry"
    CLAIM = "conversant_claim"
    SNOOZE = "conversant_snooze"
    REDRAFT = "conversant_redraft"
    REDRAFT_ARTICLE = "conversant_redraft_article"  # redraft with another help article found for the mention
    REPLY_AS = "conversant_reply_as"  # reply from another of the brand's accounts on the platform
    APPROVE_ALL = "conversant_burst_approve_all"
    OPEN_EACH = "conversant_burst_open_each"
    DISMISS_ALL = "conversant_burst_dismiss_all"


BURST_ACTIONS = (ActionId.APPROVE_ALL, ActionId.OPEN_EACH, ActionId.DISMISS_ALL)


class ModalId(str, enum.Enum):
    EDIT = "conversant_edit_modal"
    DISMISS = "conversant_dismiss_modal"
    REDRAFT = "conversant_redraft_modal"
    PRIVATE = "conversant_private_modal"


REPLY_BLOCK, REPLY_INPUT = "reply", "reply_text"
REASON_BLOCK, REASON_INPUT = "reason", "dismiss_reason"
REDRAFT_BLOCK, REDRAFT_INPUT = "redraft", "redraft_instruction"
PRIVATE_BLOCK, PRIVATE_INPUT = "private", "private_text"


class ButtonValue(BaseModel):
    """What a button, menu option or modal carries: the conversation (or burst) it acts on."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    conversation: PositiveInt | None = None
    burst: PositiveInt | None = None
    snooze: SnoozeFor | None = None
    redraft: Direction | None = None
    article: PositiveInt | None = None  # a help article (bot/knowledge) to redraft with
    account: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,19}$")] | None = None  # the account to reply as

    def dump(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def parse(cls, value: object) -> ButtonValue | None:
        """The value, or None for anything that is not exactly one of ours."""
        if not isinstance(value, str):
            return None
        try:
            data = json.loads(value)
            parsed = cls.model_validate(data, strict=False) if _ids_are_ints(data) else None
        except (ValueError, ValidationError):
            return None
        if parsed is None or (parsed.conversation is None) == (parsed.burst is None):
            return None  # exactly one of them
        return parsed


def _ids_are_ints(data: object) -> bool:
    """JSON ids must be integers: ``true`` is not conversation 1 (strict mode would also refuse
    the enum values, which arrive as strings; so ids are checked here and the rest leniently)."""
    if not isinstance(data, dict):
        return False
    return all(type(data.get(key)) is int for key in ("conversation", "burst") if key in data)


def conversation_value(conversation_id: int, **extra) -> str:
    return ButtonValue(conversation=conversation_id, **extra).dump()


def burst_value(burst_id: int) -> str:
    return ButtonValue(burst=burst_id).dump()


# -- the shape of an interaction ---------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow")


class _User(_Strict):
    id: StrictStr


class _Option(_Strict):
    value: StrictStr


class _Action(_Strict):
    action_id: StrictStr
    value: StrictStr | None = None
    selected_option: _Option | None = None


class _Channel(_Strict):
    id: StrictStr


class _Message(_Strict):
    ts: StrictStr


class _BlockActions(_Strict):
    user: _User
    actions: list[_Action]
    channel: _Channel | None = None
    message: _Message | None = None
    trigger_id: StrictStr | None = None


class _View(_Strict):
    callback_id: StrictStr
    private_metadata: StrictStr = ""
    state: dict[str, dict[str, dict]] | None = None


class _ViewSubmission(_Strict):
    user: _User
    view: _View


OURS = {a.value for a in ActionId}
OUR_MODALS = {m.value for m in ModalId}


def interaction_problem(payload: object) -> str | None:
    """Why an interaction payload (the JSON in ``payload=``) cannot be handled; None when it can.

    Only the kinds the app listens to are checked; anything else is left to Bolt.
    """
    if not isinstance(payload, dict):
        return "the payload is not a JSON object"
    kind = payload.get("type")
    try:
        if kind == "block_actions":
            actions = _BlockActions.model_validate(payload).actions
            for action in actions:
                value = action.value if action.value is not None else (action.selected_option.value if action.selected_option else None)
                if action.action_id in OURS and ButtonValue.parse(value) is None:
                    return f"the value of {action.action_id} is not a button value of ours"
        elif kind == "view_submission":
            view = _ViewSubmission.model_validate(payload).view
            if view.callback_id in OUR_MODALS and ButtonValue.parse(view.private_metadata) is None:
                return f"the private_metadata of {view.callback_id} is not a value of ours"
    except ValidationError as error:
        first = error.errors()[0]
        return f"{kind} payload: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return None
