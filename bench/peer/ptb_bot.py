"""The peer: the same dialogue written the way python-telegram-bot's documentation teaches.

A `ConversationHandler` (one state per question) with `PicklePersistence`, replies with the
same wording as Votz (taken from Votz's catalogs) and the same options as inline buttons.
Used by bench/telegram.py.

    python bench/peer/ptb_bot.py --api-url http://127.0.0.1:8082 --data /tmp/peer.pickle
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.i18n import I18n, PluralMsg
from bot.testing.fake_telegram import TOKEN

LANGUAGE, CONSENT, AGE, POSTCODE, MENU, PICK, CHOOSE, CONFIRM = range(8)
t = I18n()["fr"]
MENU_TEXT = t("menu.prompt") + "\n" + "\n".join(
    f"{n} {t(k)}" for n, k in enumerate(["menu.campaigns", "menu.propose", "menu.vote",
                                         "menu.mydata", "menu.settings", "menu.help"], 1))
AGES = ["age.under_15", "age.15_17", "age.18_25", "age.26_34", "age.35_49", "age.50_64",
        "age.65_plus"]
CAMPAIGNS = ["Démo – Budget participatif des villages",
             "Démo – Vos solutions pour la vie étudiante"]
PROPOSALS = {str(n): f"Projet {n}" for n in range(1, 13)}  # numbered 1…N, as Votz's lists


def buttons(text: str) -> InlineKeyboardMarkup | None:
    """The numbered options of a reply as inline buttons, as Votz sends them."""
    options = [line for line in text.splitlines() if line[:1].isdigit() and " " in line]
    if not options:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(line.split(" ", 1)[1][:64],
                                                       callback_data=f"1:{line.split()[0]}")]
                                 for line in options])


async def reply(update: Update, text: str) -> None:
    assert update.message is not None
    body = "\n".join(line for line in text.splitlines()
                      if not (line[:1].isdigit() and " " in line))
    await update.message.reply_text(body, reply_markup=buttons(text))


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await reply(update, t("onboarding.welcome") + "\n1 Français\n2 English\n3 Occitan")
    return LANGUAGE


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert context.user_data is not None
    context.user_data["locale"] = "fr"
    await reply(update, t("onboarding.consent", url="https://example.org",
                          address=t("privacy.your_account")) +
                f"\n1 {t('onboarding.accept')}\n2 {t('onboarding.decline')}")
    return CONSENT


async def consent(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert context.user_data is not None
    context.user_data["consent"] = True
    await reply(update, t("onboarding.age") + "\n" +
                "\n".join(f"{n} {t(k)}" for n, k in enumerate(AGES, 1)))
    return AGE


async def age(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert context.user_data is not None and update.message is not None
    context.user_data["age"] = update.message.text
    await reply(update, t("onboarding.postcode"))
    return POSTCODE


async def postcode(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert context.user_data is not None and update.message is not None
    context.user_data["postcode"] = update.message.text
    await reply(update, t("onboarding.done") + "\n\n" + MENU_TEXT)
    return MENU


async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await reply(update, t("vote.pick_campaign") + "\n" +
                "\n".join(f"{n} {c}" for n, c in enumerate(CAMPAIGNS, 1)))
    return PICK


async def pick(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    rules = t.render(PluralMsg("vote.rules_up_to", "vote.rules_up_to_plural", 3,
                               example="1 2"))
    await reply(update, f"{CAMPAIGNS[1]}\n{rules}\n" +
                "\n".join(f"{k} {v}" for k, v in PROPOSALS.items()))
    return CHOOSE


async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert context.user_data is not None and update.message is not None
    codes = (update.message.text or "").split()
    context.user_data["draft"] = codes
    await reply(update, "Votre vote :\n" + "\n".join(f"P{c} {PROPOSALS.get(c, '?')}"
                                                     for c in codes) + "\nOn valide ?")
    return CONFIRM


async def confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert context.user_data is not None
    context.user_data["ballot"] = context.user_data.pop("draft", [])
    codes = ", ".join(f"P{c}" for c in context.user_data["ballot"])
    await reply(update, t("vote.receipt", codes=codes, until="16 décembre 2026") + "\n\n"
                + MENU_TEXT)
    return MENU


async def back_to_menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await reply(update, MENU_TEXT)
    return MENU


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--data", required=True, help="PicklePersistence file")
    args = parser.parse_args()
    text = filters.TEXT & ~filters.Regex(r"^(?i:menu)$")
    application = (
        Application.builder().token(TOKEN).base_url(f"{args.api_url}/bot")
        .persistence(PicklePersistence(filepath=args.data)).build()
    )
    application.add_handler(ConversationHandler(
        entry_points=[MessageHandler(filters.TEXT, start)],
        states={
            LANGUAGE: [MessageHandler(text, language)],
            CONSENT: [MessageHandler(text, consent)],
            AGE: [MessageHandler(text, age)],
            POSTCODE: [MessageHandler(text, postcode)],
            MENU: [MessageHandler(text, menu)],
            PICK: [MessageHandler(text, pick)],
            CHOOSE: [MessageHandler(text, choose)],
            CONFIRM: [MessageHandler(text, confirm)],
        },
        fallbacks=[MessageHandler(filters.Regex(r"^(?i:menu)$"), back_to_menu)],
        name="votz", persistent=True,
    ))
    application.run_polling(allowed_updates=["message"], poll_interval=0.0)


if __name__ == "__main__":
    main()
