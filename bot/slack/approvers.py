"""Who may decide on cards: SLACK_APPROVERS users, and members of its user groups."""
from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class Approvers:
    """Resolves user groups through Slack (``usergroups.users.list``), cached for ``ttl`` seconds."""

    def __init__(self, client: WebClient | None, ids: tuple[str, ...], *, ttl: float = 300) -> None:
        self.client = client
        self.users = {i for i in ids if not i.startswith("S")}
        self.groups = [i for i in ids if i.startswith("S")]
        self.ttl = ttl
        self._members: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    @property
    def anyone(self) -> bool:
        return not self.users and not self.groups

    def allows(self, user_id: str) -> bool:
        if self.anyone or user_id in self.users:
            return True
        return any(user_id in self._group_members(group) for group in self.groups)

    def _group_members(self, group: str) -> set[str]:
        with self._lock:
            cached = self._members.get(group)
            if cached and time.monotonic() - cached[0] < self.ttl:
                return cached[1]
        try:
            members = set(self.client.usergroups_users_list(usergroup=group)["users"])
        except (SlackApiError, OSError) as error:
            log.error("could not read Slack user group %s (%s); its members can't approve until it can be read", group, _code(error))
            return cached[1] if cached else set()
        with self._lock:
            self._members[group] = (time.monotonic(), members)
        return members


def _code(error: Exception) -> str:
    response = getattr(error, "response", None)
    return response.get("error", "error") if response is not None else type(error).__name__
