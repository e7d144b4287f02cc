"""A file-based platform for `conversant demo`: sample mentions in, replies recorded to a file.

It speaks the same interface as the real adapters, so the demo runs the real
pipeline end to end without any network.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.platforms.formats import BLUESKY
from bot.platforms.base import FetchResult, Mention, MentionGone, PostedReply
from bot.text import grapheme_count


class DemoPlatform:
    name = "bluesky"  # the samples are written as Bluesky posts
    label = "Bluesky (demo file)"
    format = BLUESKY
    text_limit = BLUESKY.limit

    def __init__(self, samples: dict, replies_path: Path) -> None:
        self.samples = samples
        self.replies_path = replies_path

    def check_login(self) -> str:
        return f"@{self.samples['brand_handle']} (demo file)"

    def text_length(self, text: str) -> int:
        return grapheme_count(text)

    def fetch_mentions(self, cursors: dict[str, dict], since: datetime) -> FetchResult:
        if cursors.get("file", {}).get("read"):
            return FetchResult(mentions=[])
        now = datetime.now(timezone.utc)
        mentions = [self._mention(item, now) for item in self.samples["mentions"]]
        return FetchResult(mentions=mentions, cursors={"file": {"read": True}})

    def _mention(self, item: dict, now: datetime) -> Mention:
        url = f"https://bsky.app/profile/{item['author']}/post/{item['id']}"
        return Mention(
            platform=self.name,
            external_id=item["id"],
            thread_key=item["id"],
            thread_ref={"id": item["id"]},
            reason=item["reason"],
            author_id=item["author"],
            author_handle=item["author"],
            author_name=item.get("name"),
            text=item["text"],
            url=url,
            created_at=now - timedelta(minutes=item["minutes_ago"]),
            parent_text=item.get("parent"),
        )

    def find_brand_reply(self, thread_ref: dict) -> PostedReply | None:
        if thread_ref["id"] not in {m["id"] for m in self.samples["mentions"]}:
            raise MentionGone(self.name, "not in the sample file")
        return self._replies().get(thread_ref["id"])

    def compose_reply(self, thread_ref: dict, text: str) -> str:
        return text

    def post_reply(self, thread_ref: dict, text: str, *, idempotency_key: str) -> PostedReply:
        reply = PostedReply(external_id=f"reply-to-{thread_ref['id']}", url=f"https://bsky.app/profile/{self.samples['brand_handle']}/post/reply-to-{thread_ref['id']}")
        with self.replies_path.open("a", encoding="utf-8") as file:
            file.write(json.dumps({"in_reply_to": thread_ref["id"], "text": text, "url": reply.url}) + "\n")
        return reply

    def send_private(self, thread_ref: dict, author_id: str, author_handle: str, text: str, *, idempotency_key: str) -> PostedReply:
        with self.replies_path.open("a", encoding="utf-8") as file:
            file.write(json.dumps({"private_to": author_handle, "text": text}) + "\n")
        return PostedReply(external_id=f"message-to-{author_handle}", url="https://bsky.app/messages")

    def _replies(self) -> dict[str, PostedReply]:
        if not self.replies_path.exists():
            return {}
        lines = [json.loads(line) for line in self.replies_path.read_text(encoding="utf-8").splitlines() if line]
        return {r["in_reply_to"]: PostedReply(external_id=f"reply-to-{r['in_reply_to']}", url=r["url"]) for r in lines if "in_reply_to" in r}
