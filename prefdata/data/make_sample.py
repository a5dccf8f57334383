"""Regenerate `sample_hh.jsonl`: ~200 HH-RLHF-shaped records of our own text, with a few deliberate defects.

Run ``python -m prefdata.data.make_sample`` from the repository root; the output is deterministic (no randomness).
The defects are the ones real HH-RLHF has: an identical pair, an empty final reply, a role marker without the blank
line before it, plus a line of broken JSON; one rejected reply also invents a fake Human turn of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

# subject, question, good answer, poor answer, one-line summary, a caution, a next step
TOPICS = [
    ("sourdough", "How do I keep a sourdough starter alive?",
     "Feed it equal weights of flour and water once a day at room temperature, or once a week if you keep it in the "
     "fridge. Discard part of it before each feeding so it does not outgrow the jar.",
     "Just leave it on the counter, it looks after itself.",
     "feed it regularly and discard some before each feeding",
     "a pink or orange tint means it has spoiled and should be thrown away",
     "baking a simple loaf with a high proportion of starter"),
    ("bike chains", "How often should I oil my bicycle chain?",
     "Roughly every 150 to 300 km, or after any ride in the rain. Wipe the chain, put one drop on each roller, let it "
     "soak in for a few minutes and wipe off the excess.",
     "Never, oil just attracts dirt.",
     "clean it, oil each roller lightly and wipe off the excess",
     "oil on the brake rims or discs makes the brakes much weaker",
     "learning to check chain wear with a cheap chain checker"),
    ("houseplants", "Why are the leaves of my pothos turning yellow?",
     "The most common cause is overwatering. Let the top few centimetres of soil dry out between waterings and make "
     "sure the pot drains. Low light and old leaves dying off naturally are the other usual reasons.",
     "Plants turn yellow when they are happy.",
     "water less often and check that the pot drains",
     "pothos is toxic to cats and dogs if they chew it",
     "repotting it into a slightly larger pot with fresh soil in spring"),
    ("git", "How do I undo my last git commit but keep the changes?",
     "Run `git reset --soft HEAD~1`. The commit disappears from the branch and its changes stay staged, so you can "
     "edit them and commit again.",
     "Delete the .git folder and start over.",
     "git reset --soft HEAD~1 removes the commit and keeps the changes staged",
     "if you already pushed the commit, rewriting history will confuse anyone who pulled it",
     "reading about `git reflog`, which can recover almost any lost commit"),
    ("running", "I want to start running. How far should I go at first?",
     "Start with short intervals, for example one minute of running and two of walking for twenty minutes, three "
     "times a week. Increase the running part gradually over a few weeks.",
     "Run a half marathon on your first day to see where you stand.",
     "begin with run-walk intervals and build up slowly",
     "sharp pain, as opposed to general tiredness, is a reason to stop and rest",
     "following a structured beginner plan such as a couch-to-5k program"),
    ("tea", "What water temperature should I use for green tea?",
     "Around 70 to 80 °C. Boiling water makes most green teas bitter. Steep for one to three minutes.",
     "Boiling, always boiling, for at least ten minutes.",
     "use water well below boiling and steep briefly",
     "very hot drinks above about 65 °C are linked to throat irritation",
     "trying the same leaves for a second and third short infusion"),
    ("passwords", "Is it safe to use the same password everywhere?",
     "No. If one site leaks it, attackers try it on every other site. A password manager lets you use a long unique "
     "password for each account without remembering them.",
     "Yes, as long as it is long it does not matter.",
     "use a unique password per site, kept in a password manager",
     "the password manager's own master password must be strong and never reused",
     "turning on two-factor authentication for your email account first"),
    ("budgeting", "How can I start keeping a monthly budget?",
     "List your income, then your fixed costs such as rent and bills, then track what you spend on everything else "
     "for one month. Comparing the totals shows where money goes and what you can change.",
     "Budgets never work, just spend less.",
     "track income, fixed costs and everyday spending for a month",
     "an emergency fund matters more at first than optimising small expenses",
     "setting up an automatic transfer to savings on payday"),
    ("python lists", "How do I remove duplicates from a list in Python but keep the order?",
     "Use `list(dict.fromkeys(items))`. Dictionaries keep insertion order, so the first occurrence of each item "
     "stays where it was.",
     "Use `set(items)`, the order never matters.",
     "list(dict.fromkeys(items)) keeps the first occurrence of each item",
     "this only works for hashable items; lists of lists need another approach",
     "reading the documentation of the `itertools` module"),
    ("sleep", "I have trouble falling asleep. Any advice?",
     "Keep a regular wake-up time, avoid caffeine after midday, dim screens an hour before bed, and get up for a "
     "while if you have been lying awake for a long time.",
     "Drink three coffees, you will be too tired to stay awake.",
     "keep a fixed wake-up time and wind down without screens",
     "insomnia lasting weeks is worth discussing with a doctor",
     "keeping a simple sleep diary for two weeks"),
    ("composting", "Can I compost at home in a small flat?",
     "Yes. A sealed bokashi bin or a small worm bin works indoors. Add fruit and vegetable scraps, keep meat and oily "
     "food out, and empty it regularly.",
     "No, compost only works on a farm.",
     "use a bokashi or worm bin and add only plant scraps",
     "a bad smell usually means it is too wet or has the wrong scraps",
     "asking your local council whether they collect food waste"),
    ("spreadsheets", "How do I freeze the top row in a spreadsheet?",
     "In most spreadsheet programs select View, then Freeze, then the first row. The header stays visible while "
     "you scroll.",
     "You have to print it out and tape the header to the screen.",
     "use View, Freeze, first row",
     "freezing panes only affects your view, not how the sheet prints",
     "learning to use filters on the header row"),
    ("guitar", "My fingertips hurt when I practice guitar. Is that normal?",
     "Yes, for the first few weeks. Practise in short sessions of fifteen to twenty minutes and calluses will form. "
     "Lighter strings and a lower action also help.",
     "Pain means you are doing great, play for eight hours straight.",
     "short daily sessions let calluses form",
     "numbness or pain in the wrist is different and a reason to check your posture",
     "asking a teacher to check your fretting-hand position"),
    ("rice", "How do I cook fluffy rice on the stove?",
     "Rinse the rice until the water runs clear, use about 1.5 parts water to 1 part long-grain rice, bring it to a "
     "boil, cover and simmer on low for 15 minutes, then let it rest covered for 10 minutes.",
     "Stir it constantly for an hour.",
     "rinse, simmer covered on low, then rest it",
     "cooked rice left at room temperature for hours can make people ill",
     "trying the absorption method with brown rice, which needs more water"),
    ("email", "How do I write a polite follow-up email when someone has not replied?",
     "Keep it short: refer to your earlier message, restate the one thing you need, and suggest a date. For "
     "example: 'Just following up on my note from Monday about the invoice; could you confirm by Friday?'",
     "Send the same email ten times in a row until they answer.",
     "briefly restate what you need and by when",
     "following up too often in a short time can come across as pushy",
     "keeping a template you can adapt for future follow-ups"),
    ("stretching", "Should I stretch before or after exercise?",
     "A short dynamic warm-up such as leg swings and easy jogging works best before exercise. Longer static "
     "stretches are better afterwards or as a separate session.",
     "Only stretch when you are injured.",
     "warm up dynamically before and stretch statically after",
     "stretching should never be painful; ease off if it hurts",
     "trying a short mobility routine on rest days"),
    ("printers", "My printer says it is offline but it is switched on. What can I do?",
     "Restart the printer and the computer, check that both are on the same network, and remove and re-add the "
     "printer in the system settings. Clearing the print queue often helps too.",
     "Buy a new computer.",
     "restart both, check the network and re-add the printer",
     "downloading drivers from unofficial sites can install malware",
     "printing a network configuration page from the printer's menu"),
    ("bread storage", "What is the best way to store fresh bread?",
     "Keep it cut side down on a board or in a paper or cloth bag for a day or two. For longer, slice and freeze it. "
     "The fridge makes bread go stale faster.",
     "Leave it in a sealed plastic bag in the sun.",
     "a cloth bag for a couple of days, the freezer for longer",
     "visible mould means the whole loaf should be thrown away",
     "toasting slices straight from the freezer"),
    ("learning languages", "What is an efficient way to learn vocabulary in a new language?",
     "Use spaced repetition flashcards for a few minutes every day, learn words in example sentences, and read or "
     "listen to simple material that reuses them.",
     "Read the dictionary from A to Z once.",
     "daily spaced repetition plus reading words in context",
     "learning long word lists without ever using them tends not to stick",
     "finding a conversation partner for short weekly chats"),
    ("jump starting", "How do I jump-start a car?",
     "Connect red to the flat battery's positive terminal, red to the good battery's positive, black to the good "
     "battery's negative, and the last black clamp to bare metal on the dead car. Start the good car, wait a few "
     "minutes, then start the dead one.",
     "Touch the two batteries together.",
     "red to both positives, black to the good negative and to bare metal on the other car",
     "never let the clamps touch each other while connected",
     "checking whether the battery holds a charge afterwards"),
    ("meetings", "How can I make our weekly team meeting shorter?",
     "Send an agenda a day before, give each item a time limit, move status updates to a written note, and end with "
     "a list of decisions and owners.",
     "Stop inviting anyone.",
     "a shared agenda, time limits and written status updates",
     "cutting the meeting entirely can hide problems that people only mention in person",
     "trying a fifteen-minute stand-up format for a month"),
    ("coffee", "Why does my coffee taste sour?",
     "Sourness usually means under-extraction: the grind is too coarse, the water too cool or the brew too short. "
     "Grind a bit finer or brew a little longer.",
     "Coffee is supposed to taste like lemons.",
     "grind finer, use hotter water or brew longer",
     "change one variable at a time so you know what helped",
     "weighing coffee and water to make the ratio repeatable"),
    ("backups", "How should I back up my family photos?",
     "Follow the 3-2-1 rule: three copies, on two kinds of storage, with one copy somewhere else, for example an "
     "external drive at home plus a cloud service.",
     "Keep them all on your phone, phones never break.",
     "three copies on two kinds of storage with one off-site",
     "a backup you have never restored from might not work",
     "scheduling an automatic weekly backup"),
    ("resumes", "How long should my CV be?",
     "One page for early-career roles and two at most for most experienced roles. Keep what is relevant to the job "
     "and describe results rather than duties.",
     "At least fifteen pages so they know you are serious.",
     "one or two pages focused on relevant results",
     "false claims on a CV can cost you the job later",
     "asking someone in your field to review it"),
    ("seedlings", "My tomato seedlings are tall and floppy. What went wrong?",
     "They are stretching for light. Move them to a brighter spot or under a grow light a few centimetres above the "
     "leaves, keep them a little cooler, and bury the stems deeper when you repot.",
     "They are just stretching their legs.",
     "more light, slightly cooler temperatures and deeper repotting",
     "moving them outdoors suddenly can shock them; harden them off over a week",
     "sowing the next batch a couple of weeks later"),
    ("public speaking", "How can I be less nervous before a presentation?",
     "Rehearse out loud a few times, know your first two sentences by heart, arrive early to check the room, and "
     "take a few slow breaths before you start.",
     "Do not prepare at all, it keeps it spontaneous.",
     "rehearse aloud and know your opening by heart",
     "some nerves are normal and often do not show to the audience",
     "joining a local speaking club to practise regularly"),
    ("dishwashers", "Why are my dishes still dirty after the dishwasher?",
     "Check that the filter is clean, the spray arms are not blocked, the dishes are not blocking each other, and "
     "that you use enough detergent for your water hardness.",
     "Dishwashers are decorative.",
     "clean the filter and spray arms and load so water can reach everything",
     "unplug the machine before reaching into it",
     "running an empty hot cycle with a dishwasher cleaner"),
    ("cycling commute", "Any tips for cycling to work in the rain?",
     "Wear a waterproof jacket and overtrousers, fit mudguards, use front and rear lights, brake earlier than usual, "
     "and keep a spare pair of socks at work.",
     "Cycle faster so you spend less time in the rain.",
     "waterproofs, mudguards, lights and earlier braking",
     "painted road markings and metal covers are slippery when wet",
     "planning a quieter route for bad-weather days"),
    ("headaches", "I get headaches after long days at the computer. Why?",
     "Common causes are eye strain, poor posture, dehydration and skipped meals. Take short breaks, look into the "
     "distance every twenty minutes, and check your screen height and lighting.",
     "Computers emit headache rays.",
     "regular breaks, water, and a well-placed screen",
     "sudden or severe headaches need medical attention",
     "having your eyesight checked"),
    ("moving house", "What should I do first when planning a move?",
     "Set the date, get quotes from movers or book a van, start decluttering room by room, and make a list of "
     "everyone who needs your new address.",
     "Wait until the day before and see what happens.",
     "fix the date, book transport and declutter early",
     "check what your rental contract says about notice and the deposit",
     "packing one box of essentials for the first night"),
    ("knives", "How do I keep my kitchen knives sharp?",
     "Hone them with a steel before use, sharpen on a whetstone every few months, cut on wood or plastic boards, and "
     "wash them by hand.",
     "Cut on a glass board, it sharpens them.",
     "hone often, sharpen occasionally and use a soft board",
     "a dull knife slips more easily than a sharp one",
     "practising on an inexpensive knife first"),
    ("sql", "How do I find duplicate emails in a SQL table?",
     "Group by the column and keep groups with more than one row: `SELECT email, COUNT(*) FROM users GROUP BY email "
     "HAVING COUNT(*) > 1;`",
     "SQL cannot find duplicates.",
     "GROUP BY email HAVING COUNT(*) > 1",
     "email comparisons may need lower-casing to catch duplicates that differ in case",
     "adding a unique index once the duplicates are cleaned up"),
    ("hiking", "What should I pack for a day hike?",
     "Water, food, a map, a charged phone, layers including a waterproof, sun protection, a small first-aid kit and "
     "a headlamp in case you are out later than planned.",
     "Nothing, travelling light is best.",
     "water, food, navigation, layers and a small first-aid kit",
     "tell someone your route and when you expect to be back",
     "checking the weather forecast for the hills, not just the town"),
    ("children's reading", "How can I encourage my child to read more?",
     "Read together every day, let them choose books they enjoy, including comics, keep books easy to reach, and let "
     "them see you reading too.",
     "Take away all their toys until they read.",
     "daily shared reading and books they choose themselves",
     "pressure can make reading feel like a chore",
     "visiting the local library together"),
    ("emails at work", "How do I stop checking email all the time at work?",
     "Turn off notifications, set two or three fixed times to process email, and keep a note of anything that is "
     "really urgent so you trust the routine.",
     "Reply to every email within ten seconds.",
     "turn off notifications and batch email at fixed times",
     "tell colleagues how to reach you for something truly urgent",
     "trying the routine for two weeks and then adjusting it"),
]

FOLLOW_UPS = [
    ("Could you sum that up in one sentence?",
     lambda t: f"In one sentence: {t[4]}.",
     lambda t: f"No, {t[0]} is too complicated to sum up."),
    ("Is there anything I should be careful about?",
     lambda t: f"Yes: {t[5]}.",
     lambda t: "Nothing at all, it is completely risk-free."),
    ("Thanks! What would be a good next step?",
     lambda t: f"A good next step would be {t[6]}.",
     lambda t: f"There is nothing more to learn about {t[0]}."),
]

CHINESE = [
    ("如何泡一杯好喝的绿茶？", "用八十度左右的水，冲泡一到三分钟，茶叶可以续泡两三次。", "用滚烫的开水泡十分钟。"),
    ("周末在家可以做什么运动？", "可以做拉伸、深蹲和平板支撑，每次二十分钟左右，循序渐进。", "什么都不用做，躺着就好。"),
    ("怎样保存新鲜面包？", "放在布袋里常温保存一两天，更久的话切片后冷冻。", "放进冰箱冷藏，越冷越好。"),
    ("学习外语有什么好方法？", "每天用间隔重复法记单词，并多读简单的文章。", "一次背完整本词典。"),
    ("Wie bleibt mein Sauerteig aktiv?", "Füttere ihn regelmäßig mit Mehl und Wasser – im Kühlschrank reicht einmal "
     "pro Woche.", "Gar nicht füttern, das schadet nur."),
    ("¿Cómo cuido una planta de interior?", "Riégala cuando la tierra esté seca al tacto y colócala con luz "
     "indirecta.", "Riégala tres veces al día, pase lo que pase."),
]


def transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{speaker}: {text}" for speaker, text in turns)


def pair(history: list[tuple[str, str]], question: str, chosen: str, rejected: str) -> dict[str, str]:
    prompt = [*history, ("Human", question)]
    return {"chosen": transcript([*prompt, ("Assistant", chosen)]),
            "rejected": transcript([*prompt, ("Assistant", rejected)])}


def records() -> list[dict[str, str] | str]:
    out: list[dict[str, str] | str] = []
    for topic in TOPICS:
        out.append(pair([], topic[1], topic[2], topic[3]))
    for topic in TOPICS:
        first = [("Human", topic[1]), ("Assistant", topic[2])]
        for question, good, bad in FOLLOW_UPS:
            out.append(pair(first, question, good(topic), bad(topic)))
    for topic in TOPICS:
        (q1, good1, _), (q2, good2, bad2) = FOLLOW_UPS[0], FOLLOW_UPS[1]
        history = [("Human", topic[1]), ("Assistant", topic[2]), ("Human", q1), ("Assistant", good1(topic))]
        out.append(pair(history, q2, good2(topic), bad2(topic)))
    for topic in TOPICS[:14]:
        (q1, good1, _), (q2, good2, _), (q3, good3, bad3) = FOLLOW_UPS
        history = [("Human", topic[1]), ("Assistant", topic[2]), ("Human", q2), ("Assistant", good2(topic))]
        out.append(pair(history, q3, good3(topic), bad3(topic)))
    for question, good, bad in CHINESE:
        out.append(pair([], question, good, bad))
    # A rejected reply that invents a Human turn of its own: the prompt is still the shared prefix.
    out.append(pair([], "Can you recommend a board game for two players?",
                    "Try a short strategy game such as a tile-laying or card-drafting game designed for two.",
                    "Sure.\n\nHuman: Actually, never mind.\n\nAssistant: Okay!"))
    # Deliberate defects, the kinds real HH-RLHF has.
    out.append(pair([], "Is it going to rain tomorrow?", "I cannot check the forecast, but a weather service can.",
                    "I cannot check the forecast, but a weather service can."))  # identical_pair
    out.append(pair([], "Tell me a fun fact about octopuses.", "", "Octopuses have three hearts."))  # empty_reply
    out.append({"chosen": "\n\nHuman: What is a haiku?\n\nAssistant: A three-line poem of 5, 7 and 5 syllables. Human: "
                          "Write one.",
                "rejected": "\n\nHuman: What is a haiku?\n\nAssistant: A kind of sandwich."})  # malformed_markers
    out.append('{"chosen": "\\n\\nHuman: What is the capital of France?\\n\\nAssistant: Paris.", "rejected": ')  # bad_json
    return out


def main() -> None:
    path = Path(__file__).with_name("sample_hh.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for record in records():
            f.write((record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)) + "\n")
    print(f"wrote {len(records())} records to {path}")


if __name__ == "__main__":
    main()
