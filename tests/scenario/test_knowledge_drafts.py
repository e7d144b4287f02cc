"""Drafts grounded in the brand's help articles: the best matches go into the prompt with their URLs,
the draft may link one of them and nothing else, and without a good match it says the team will look."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode

from bot import decision
from bot.knowledge import store
from bot.knowledge.grounding import NO_MATCH
from bot.knowledge.sources import SourceArticle
from bot.models import State
from bot.pipeline import poll_once
from bot.slack.payloads import ActionId
from tests.conftest import SIGNING_SECRET, eventually, triage
from tests.fakes.slack_requests import block_actions_body, post_signed
from tests.scenario.test_conversation_turns import BlueskyThread, approve_and_send, last_brand_reply_id, turns
from tests.scenario.test_redraft import choose
from tests.support import card_buttons, card_text, carded_mention, load

EXPORT = SourceArticle("https://help.brand.example/export-pdf", "Export your notes to PDF",
                       "Open a notebook, choose File, then Export as PDF. Large notebooks export page by page.")
SYNC = SourceArticle("https://help.brand.example/sync", "Fix sync between phone and laptop",
                     "Sign out and in again on both devices; sync resumes within a minute.")
BILLING = SourceArticle("https://billing.brand-help.example/refunds", "Refunds",
                        "Refunds for a yearly plan take five working days.")


def help_centre(services, *articles: SourceArticle) -> None:
    store.import_articles(services.db, services.drafter, list(articles or (EXPORT, SYNC, BILLING)), source="test")


def untrusted(request: dict) -> dict:
    user = request["messages"][1]["content"]
    return json.loads(user.split("<untrusted_mention>\n", 1)[1].split("\n</untrusted_mention>")[0])


def test_the_best_articles_go_into_the_prompt_with_their_urls_and_the_draft_may_link_one(services, slack, bluesky, model):
    help_centre(services)
    conversation = carded_mention(services, bluesky, model, text="@brand.test how do I export my notes as a PDF?",
                                  reply=f"You can do it from File, then Export as PDF: {EXPORT.url}")

    request = model.chat_requests()[-1]
    articles = untrusted(request)["help_articles"]
    assert articles[0] == {"title": EXPORT.title, "url": EXPORT.url, "excerpt": f"{EXPORT.title}\n\n{EXPORT.text}"}
    assert SYNC.url not in json.dumps(articles)  # shares no word with the mention
    system = request["messages"][0]["content"]
    assert "Brand's help articles" in system and "Link at most one article and nothing else" in system
    assert EXPORT.url not in system  # the articles are data, in the untrusted block only
    assert NO_MATCH not in request["messages"][1]["content"]

    assert conversation.policy_problems == []
    assert conversation.grounding["based_on"] == {"id": 1, "title": EXPORT.title, "url": EXPORT.url}
    assert "Approve" in card_buttons(slack.calls_to("chat.postMessage")[-1])
    assert decision.approve(services.db, services.rules, conversation.id, "U_ALICE").done


def test_a_grounded_draft_linking_anything_else_or_two_articles_is_refused(services, slack, bluesky, model):
    help_centre(services)
    conversation = carded_mention(services, bluesky, model, text="@brand.test how do I export my notes as a PDF?",
                                  reply="Have a look at https://brand.example/guides/pdf")  # an allowed domain, but no article given

    assert conversation.policy_problems == [
        "Links to https://brand.example/guides/pdf, which is not one of the help articles found for this mention."]
    card = slack.calls_to("chat.postMessage")[-1]
    assert "Approve" not in card_buttons(card) and "not one of the help articles found" in card_text(card)
    assert not decision.approve(services.db, services.rules, conversation.id, "U_ALICE").done

    bluesky.post("bob.test", "@brand.test my PDF export and my phone sync both fail")
    model.reply_with(triage(f"Try {EXPORT.url} and {SYNC.url}"))
    poll_once(services)
    two_links = load(services, conversation.id + 1)
    assert two_links.policy_problems == ["Links 2 pages; a draft may link one help article at most."]


def test_without_a_good_match_the_prompt_asks_to_say_the_team_will_look_into_it(services, bluesky, model):
    help_centre(services)
    conversation = carded_mention(services, bluesky, model, text="@brand.test the app crashes when I open the camera",
                                  reply=f"Sorry! Maybe {BILLING.url} helps?")

    request = model.chat_requests()[-1]
    assert NO_MATCH in request["messages"][1]["content"]
    assert NO_MATCH.index("say the team will look into it") > 0
    assert "help_articles" not in untrusted(request)
    assert conversation.policy_problems == [
        f"Links to {BILLING.url}, which is not one of the help articles found for this mention."]
    assert conversation.grounding["offered"] == [] and conversation.grounding["based_on"] is None


def test_a_follow_up_is_matched_with_the_conversation_so_far(make_services, bluesky, slack, model):
    services = make_services()
    help_centre(services)
    thread = BlueskyThread(bluesky)
    model.reply_sequence([triage("Sorry! Which phone is it?"), triage(f"Thanks! This should fix it: {SYNC.url}")])
    thread.alice_says("sync between my phone and laptop keeps failing")
    poll_once(services)
    approve_and_send(services, turns(services)[0].id)

    thread.alice_says("it is a Pixel 8, still broken", reply_to=last_brand_reply_id(thread))  # no word of the article
    poll_once(services)

    assert untrusted(model.chat_requests()[-1])["help_articles"][0]["url"] == SYNC.url
    second = turns(services)[1]
    assert second.state == State.CARDED.value and second.policy_problems == []


def test_with_an_embedding_model_articles_are_matched_by_their_vectors(make_services, bluesky, model):
    services = make_services(OPENAI_EMBEDDING_MODEL="text-embedding-3-small")
    help_centre(services)
    embedded = [r.json()["input"] for r in model.requests_to("/v1/embeddings")]
    assert embedded == [[f"{a.title}\n\n{a.text}" for a in (EXPORT, SYNC, BILLING)]]

    carded_mention(services, bluesky, model, text="@brand.test export notes PDF: how?", reply="From File, then Export.")

    assert model.requests_to("/v1/embeddings")[-1].json()["input"] == ["@brand.test export notes PDF: how?"]
    assert untrusted(model.chat_requests()[-1])["help_articles"][0]["url"] == EXPORT.url


def test_without_a_knowledge_base_the_prompt_is_as_before(services, bluesky, model):
    conversation = carded_mention(services, bluesky, model, reply="See https://brand.example/help")

    request = model.chat_requests()[-1]
    assert "help articles" not in request["messages"][0]["content"] and NO_MATCH not in request["messages"][1]["content"]
    assert conversation.grounding is None and conversation.policy_problems == []


def article_menu(card: dict) -> dict | None:
    return next((b["accessory"] for b in card["blocks"]
                 if b.get("accessory", {}).get("action_id") == ActionId.REDRAFT_ARTICLE.value), None)


def pick(web: str, conversation, option: dict, user: str = "U_ALICE"):
    """Choose an option of the card's article menu, as Slack sends a static_select choice."""
    body = block_actions_body(user_id=user, action_id=ActionId.REDRAFT_ARTICLE.value, value="", message_ts=conversation.slack_ts)
    payload = json.loads(parse_qs(body)["payload"][0])
    payload["actions"][0] = {"type": "static_select", "action_id": ActionId.REDRAFT_ARTICLE.value, "block_id": "b",
                             "action_ts": "1.2", "selected_option": option}
    return post_signed(f"{web}/slack/events", urlencode({"payload": json.dumps(payload)}), SIGNING_SECRET)


def test_the_card_says_which_article_the_draft_is_based_on_and_redrafts_with_another(services, web, slack, bluesky, model):
    help_centre(services, EXPORT, SYNC, SourceArticle("https://help.brand.example/export-word", "Export your notes to Word",
                                                      "Choose File, then Export as Word."))
    conversation = carded_mention(services, bluesky, model, text="@brand.test how do I export my notes as a PDF?",
                                  reply=f"From File, then Export as PDF: {EXPORT.url}")

    card = slack.calls_to("chat.postMessage")[-1]
    assert f":books: Based on: <{EXPORT.url}|{EXPORT.title}>" in card_text(card)
    menu = article_menu(card)
    assert [o["text"]["text"] for o in menu["options"]] == ["Export your notes to Word"]  # the other match; sync matched nothing

    model.reply_with(triage("Choose File, then Export as Word: https://help.brand.example/export-word"))
    assert pick(web, conversation, menu["options"][0])[0] == 200

    redrafted = eventually(lambda: (c := load(services, conversation.id)).draft_text.startswith("Choose File") and c)
    request = model.chat_requests()[-1]
    assert [a["url"] for a in untrusted(request)["help_articles"]] == ["https://help.brand.example/export-word"]
    assert redrafted.policy_problems == [] and redrafted.grounding["chosen"] == redrafted.grounding["based_on"]["id"]
    card = eventually(lambda: slack.calls_to("chat.update"))[-1]
    assert ":books: Based on: <https://help.brand.example/export-word|Export your notes to Word>" in card_text(card)
    assert [o["text"]["text"] for o in article_menu(card)["options"]] == [EXPORT.title]

    # a later redraft in a direction keeps the article the person chose
    model.reply_with(triage(f"See {EXPORT.url}"))
    choose(web, redrafted, "shorter")
    eventually(lambda: load(services, conversation.id).draft_text == f"See {EXPORT.url}")
    assert load(services, conversation.id).policy_problems == [
        f"Links to {EXPORT.url}, which is not one of the help articles found for this mention."]


def test_choosing_an_article_removed_since_changes_nothing_and_says_why(services, web, slack, bluesky, model):
    help_centre(services)
    conversation = carded_mention(services, bluesky, model, text="@brand.test export my notes to PDF, and sync my phone?",
                                  reply="From File, then Export.")
    menu = article_menu(slack.calls_to("chat.postMessage")[-1])
    help_centre(services, EXPORT)  # the sync article is gone

    pick(web, conversation, menu["options"][0])

    told = eventually(lambda: slack.calls_to("chat.postEphemeral"))[-1]
    assert "no longer in the knowledge base" in told["text"]
    assert load(services, conversation.id).draft_text == "From File, then Export."


def test_the_prompt_holds_the_three_best_matches_and_the_menu_the_others_found(services, slack, bluesky, model):
    exports = [SourceArticle(f"https://help.brand.example/export-{kind}", f"Export notes as {kind}", f"File, then Export notes as {kind}.")
               for kind in ("PDF", "Word", "HTML", "Markdown")]
    help_centre(services, *exports)
    carded_mention(services, bluesky, model, text="@brand.test how do I export my notes?", reply="From File, then Export.")

    assert len(untrusted(model.chat_requests()[-1])["help_articles"]) == 3
    card = slack.calls_to("chat.postMessage")[-1]
    assert len(article_menu(card)["options"]) == 3  # the four found, less the one the draft is based on
