"""Campaigns and what one can do in each right now (flows/browse.yaml); choosing a campaign;
following one (its announcements and reminders) or no longer hearing from it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.channels.gsm7 import cost, sms_safe
from bot.conversation.actions.common import (
    Actions,
    Sources,
    Views,
    audience_reason,
    campaign_options,
    outside_audience,
    readable_options,
    sorted_campaigns,
    until,
)
from bot.conversation.effects import Follow
from bot.conversation.engine import Turn
from bot.conversation.matching import Option
from bot.domain.campaigns import Campaign, Moment, Phase
from bot.domain.events import Event, Target
from bot.domain.participants import may_participate
from bot.i18n import N_, PluralMsg

PHASE_NAMES = {
    Phase.INFORMATION: N_("phase.information"),
    Phase.SUBMISSION: N_("phase.submission"),
    Phase.MODERATION: N_("phase.moderation"),
    Phase.VOTE: N_("phase.vote"),
    Phase.RESULTS: N_("phase.results"),
    Moment.UPCOMING: N_("phase.upcoming"),
    Moment.BETWEEN: N_("phase.between"),
    Moment.CLOSED: N_("phase.closed"),
}


def visible_campaigns(turn: Turn) -> list[Option]:
    visible = [c for c in turn.ctx.catalog.campaigns if c.visible(turn.now)]
    return campaign_options(turn, visible)


def readable_campaigns(turn: Turn) -> list[Option]:
    """Campaigns open for a step this person may not take there (age, territory), to read."""
    phase = Phase(turn.data.get("phase", Phase.VOTE.value))
    return readable_options(turn, sorted_campaigns(turn, phase)[1], marked=False)


def select_campaign(turn: Turn, value: Any) -> str:
    """Also how the propose and vote flows pick a campaign when several are open; one shown
    "à consulter" (`r:`) opens its page: "read"."""
    chosen = str(value)
    turn.data = {"campaign": chosen.split(":", 1)[-1]}
    return "read" if chosen.startswith("r:") else "ok"


def campaign_detail(turn: Turn, named: int | None = None) -> dict[str, Any]:
    """A campaign's page; on a results page, `named` winners (else as many as fit)."""
    campaign = turn.campaign()
    assert campaign is not None
    t, locale = turn.t, turn.profile.locale
    phase = campaign.phase_at(turn.now)
    window = campaign.window(phase) if isinstance(phase, Phase) else None
    if window is not None and window.end is not None:
        when = t("browse.until", date=until(turn, campaign, phase))  # type: ignore[arg-type]
    else:
        when = ""
    step = t("browse.phase", phase=t(PHASE_NAMES[phase]))
    if phase is Phase.RESULTS and campaign.window(Phase.VOTE) is not None:
        details = results_summary(turn, campaign, named)
        step = when = ""  # the results say which step this is: room for them
    elif vote_over(campaign, turn.now):  # never "votez" once the vote is over
        details = t(N_("browse.vote_over") if phase is Moment.BETWEEN
                    else N_("browse.vote_ended"))
    else:
        # The summary; the description is one step away (INFO, Details: details.py).
        details = campaign.text("summary", locale)
        details += only_to_read(turn, campaign, phase)
    return {
        "title": campaign.text("title", locale),
        "details": details,
        "phase": step,
        "when": when,
    }


def vote_over(campaign: Campaign, now: datetime) -> bool:
    window = campaign.window(Phase.VOTE)
    return window is not None and window.end is not None and now >= window.end


def only_to_read(turn: Turn, campaign: Campaign, phase: Phase | Moment) -> str:
    """A line saying why this person may read this campaign but not act in it, if so."""
    if phase not in (Phase.SUBMISSION, Phase.VOTE):
        return ""
    refusal = outside_audience(turn, campaign)
    if refusal is None:
        return ""
    return "\n" + turn.t(N_("browse.read_only"),
                         reason=audience_reason(turn, campaign, refusal))


# Winners named on a results page, at most; the others behind INFO (details.py,
# `results_more`). Fewer where the page would not fit the channel's segment budget (SMS)
# with its actions: the page, its actions and the INFO hint are one reply of two SMS.
TOP_WINNERS = 3


def winner_lines(turn: Turn, campaign: Campaign, *, votes: bool = True) -> list[str]:
    """The campaign's winners in rank order, one line each (short title, and votes), less
    any hidden since the catalog's tally."""
    standing = turn.ctx.catalog.results.get(campaign.id)
    if standing is None:
        return []
    t, locale = turn.t, turn.profile.locale
    shown = set(turn.ctx.catalog.winners.get(campaign.id, ()))
    return [t.render(PluralMsg("browse.winner_line", "browse.winner_line_plural", line.votes,
                               code=line.proposal.code, title=line.proposal.label(locale),
                               votes=t.number(line.votes)))
            if votes else f"{line.proposal.code} {line.proposal.label(locale)}"
            for line in standing.winners if line.proposal.id in shown]


def named_winners(turn: Turn, campaign: Campaign, winners: Sequence[str]) -> int:
    """How many winners the results page names: TOP_WINNERS, fewer (one at least) where the
    page as sent (with its actions, and the INFO hint if it needs one) would go over the
    segment budget (SMS)."""
    most = min(TOP_WINNERS, len(winners))
    budget = turn.ctx.page_segments
    if budget is None:
        return most
    t = turn.t
    actions = [f"{n} {option.label}" for n, option in enumerate(campaign_actions(turn), 1)]
    for named in range(most, 1, -1):
        screen = [t("browse.detail", **campaign_detail(turn, named)), *actions]
        if named == len(winners) and campaign.description:  # else "Et 5 autres : INFO"
            screen.append(t("common.more_hint"))
        if cost(sms_safe("\n".join(screen))).segments <= budget:
            return named
    return 1


def results_summary(turn: Turn, campaign: Campaign, named: int | None = None) -> str:
    """What the vote decided: its voters and the first winners with their votes (`named`,
    else as many as fit; the others one step away: INFO), and the person's own département
    (where its counts are not under 5), from the catalog's tally."""
    t = turn.t
    standing = turn.ctx.catalog.results.get(campaign.id)
    if standing is None or not standing.ballots:
        return t(N_("browse.results_no_ballots"))
    voters = t.number(standing.ballots)
    winners = winner_lines(turn, campaign)
    if winners:
        if named is None:
            named = named_winners(turn, campaign, winners)
        lines = [t.render(PluralMsg("browse.results_winners", "browse.results_winners_plural",
                                    standing.ballots, count=voters,
                                    winners="\n".join(winners[:named])))]
        if len(winners) > named:  # INFO, or Telegram's Details button, lists them
            rest = len(winners) - named
            more = PluralMsg("browse.winners_more_buttons", "browse.winners_more_buttons_plural",
                             rest, count=rest, button=t("common.details_button")) \
                if turn.ctx.buttons else \
                PluralMsg("browse.winners_more", "browse.winners_more_plural", rest, count=rest)
            lines.append(t.render(more))
    else:
        lines = [t.render(PluralMsg("browse.results_ballots", "browse.results_ballots_plural",
                                    standing.ballots, count=voters)),
                 t(N_("browse.results_none"))]
    dep = turn.profile.departement
    if dep and dep in campaign.audience.departements:
        local = standing.local.get(dep)
        if local is None or local.voters is None or local.top is None:
            lines.append(t("event.results_local_hidden", dep=dep))
        else:
            lines.append(t("event.results_local", dep=dep, voters=t.number(local.voters),
                           top=local.top.code, votes=t.number(local.top_votes or 0)))
    return "\n".join(lines)


def results_more(turn: Turn, campaign: Campaign) -> str | None:
    """What INFO shows on a results page whose winners are not all named there: the whole
    list, then the campaign's title and description where they fit. Where the whole list
    does not fit the channel's segment budget (SMS), the winners after those on the page
    (without their votes if that makes them fit), as many as fit, and how many more."""
    if campaign.phase_at(turn.now) is not Phase.RESULTS:
        return None
    winners = winner_lines(turn, campaign)
    named = named_winners(turn, campaign, winners)
    if len(winners) <= named:
        return None
    t, locale, budget = turn.t, turn.profile.locale, turn.ctx.page_segments

    def fits(text: str) -> bool:
        return budget is None or cost(sms_safe(text)).segments <= budget

    text = t("browse.winners", winners="\n".join(winners))
    if fits(text):
        if campaign.description:
            about = t("details.campaign", title=campaign.text("title", locale),
                      description=campaign.text("description", locale))
            if fits(f"{text}\n{about}"):
                text = f"{text}\n{about}"
        return text
    rest = winners[named:]  # the first ones are on the page
    if not fits(t("browse.winners_rest", winners="\n".join(rest))):
        rest = winner_lines(turn, campaign, votes=False)[named:]  # names only, to fit more

    def first(k: int) -> str:  # the first k of the rest, and how many more
        left = len(rest) - k
        more = [t.render(PluralMsg("browse.winners_cut", "browse.winners_cut_plural", left,
                                   count=left))] if left else []
        return t("browse.winners_rest", winners="\n".join([*rest[:k], *more]))

    shown = 0
    while shown < len(rest) and fits(first(shown + 1)):
        shown += 1
    return first(shown)


def campaign_actions(turn: Turn) -> list[Option]:
    campaign = turn.campaign()
    t = turn.t
    ids: list[tuple[str, str]] = []
    # Only what this person may do here: a campaign for others is there to read.
    acts = campaign is not None and may_participate(turn.profile, campaign) is None
    if acts and campaign is not None and campaign.is_open(Phase.SUBMISSION, turn.now):
        ids.append(("propose", N_("browse.propose")))
    if acts and campaign is not None and campaign.is_open(Phase.VOTE, turn.now):
        ids.append(("vote", N_("browse.vote")))
    if campaign is not None and turn.profile.onboarded:
        if turn.following.get(campaign.id):
            ids.append(("unfollow", N_("browse.unfollow")))
        elif not over(turn, campaign) or ahead(turn, campaign):  # something still to come
            ids.append(("follow", N_("browse.follow")))
    ids.append(("list", N_("browse.other")))
    if turn.profile.onboarded:  # a reader (under 15) has campaigns to read, nothing more
        ids.append(("menu", N_("common.menu")))
    return [Option(id=i, key=str(n), label=t(label)) for n, (i, label) in enumerate(ids, 1)]


def over(turn: Turn, campaign: Campaign) -> bool:
    """Its vote is over (or it is in its results phase, or closed): all it may still send
    is its results, to its voters."""
    return vote_over(campaign, turn.now) or \
        campaign.phase_at(turn.now) in (Phase.RESULTS, Moment.CLOSED)


def ahead(turn: Turn, campaign: Campaign) -> list[Event]:
    """What following the campaign may still bring this person: its announcements and
    reminders still to come (results go to its voters only)."""
    voted = campaign.id in turn.ctx.ballots
    return [event for event in campaign.events
            if (due := event.due(campaign)) is not None and due > turn.now
            and (event.target is not Target.VOTERS or voted)]


def _follow(turn: Turn, following: bool) -> str:
    campaign = turn.campaign()
    if campaign is None or not turn.profile.onboarded:
        return "ok"
    ended = over(turn, campaign)
    coming = ahead(turn, campaign) if ended else []
    if following and ended and not coming:  # over since its page was shown
        turn.notice("browse.nothing_ahead", campaign=campaign.label(turn.profile.locale))
        return "ok"
    turn.effect(Follow(campaign.id, following))
    turn.following[campaign.id] = following
    title = campaign.label(turn.profile.locale)  # short: the page comes after it
    if not following:
        turn.notice("browse.unfollowed", campaign=title)
    elif ended and all(event.results for event in coming):  # a voter, once the vote is over
        turn.notice("browse.followed_results", campaign=title)
    elif turn.profile.reminders:
        turn.notice("browse.followed", campaign=title)
    else:  # RAPPELS NON holds for every campaign: say so rather than promise reminders
        turn.notice("browse.followed_muted", campaign=title)
    return "ok"


def follow_campaign(turn: Turn, value: Any = None) -> str:
    return _follow(turn, True)


def unfollow_campaign(turn: Turn, value: Any = None) -> str:
    return _follow(turn, False)


ACTIONS: Actions = {
    "select_campaign": (select_campaign, {"ok", "read"}),
    "follow_campaign": (follow_campaign, {"ok"}),
    "unfollow_campaign": (unfollow_campaign, {"ok"}),
}
VIEWS: Views = {
    "campaign_detail": campaign_detail,
}
SOURCES: Sources = {
    "visible_campaigns": (visible_campaigns, None),
    "readable_campaigns": (readable_campaigns, None),
    "campaign_actions": (campaign_actions,
                         frozenset({"propose", "vote", "follow", "unfollow", "list", "menu"})),
}
