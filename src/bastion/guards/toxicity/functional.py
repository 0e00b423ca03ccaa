"""Functional training examples for the toxicity classifier: hate against protected groups
beside the contrasts a hate detector must let through.

The tweets and forum posts the classifier learns from teach it that a sentence naming a
group is suspect. These generated examples teach the differences that matter: hate stated,
asked, threatened or spelled with slurs (label 1), against the same frames negated, quoted
to denounce them, aimed at objects, individuals or non-protected groups, said of a group
in neutral or positive terms, profanity aimed at no one, threat words used idiomatically,
and reclaimed in-group terms (label 0). Spelling variations (leetspeak, dropped, doubled or
split letters, missing spaces) go to both classes, so they are not a sign of hate
themselves. Templates, groups and wording were written for Bastion (Apache-2.0); no test
suite's text is copied. The set is generated, the same for a given seed, at training time.
"""

from __future__ import annotations

import random

from bastion.guards.text_classifier import Example

SOURCE = "bastion_functional_examples"

# Protected groups: plural form, singular noun phrase.
GROUPS = [
    ("women", "woman"),
    ("Muslims", "Muslim"),
    ("Jews", "Jew"),
    ("Black people", "Black person"),
    ("gay people", "gay man"),
    ("lesbians", "lesbian"),
    ("trans people", "trans woman"),
    ("immigrants", "immigrant"),
    ("refugees", "refugee"),
    ("disabled people", "disabled person"),
    ("Mexicans", "Mexican"),
    ("Asians", "Asian"),
    ("Arabs", "Arab"),
    ("Africans", "African"),
    ("Hindus", "Hindu"),
    ("Chinese people", "Chinese person"),
    ("gypsies", "gypsy"),
    ("Somalis", "Somali"),
    ("Pakistanis", "Pakistani"),
    ("bisexuals", "bisexual"),
    # v3: protected characteristics the list lacked (age, more faiths, disability kinds,
    # indigenous peoples, more nationalities and ethnicities)
    ("old people", "old person"),
    ("elderly people", "elderly person"),
    ("Sikhs", "Sikh"),
    ("Catholics", "Catholic"),
    ("Christians", "Christian"),
    ("atheists", "atheist"),
    ("Roma", "Roma person"),
    ("Indigenous people", "Indigenous person"),
    ("Native Americans", "Native American"),
    ("Aboriginal people", "Aboriginal person"),
    ("deaf people", "deaf person"),
    ("wheelchair users", "wheelchair user"),
    ("people with mental illness", "person with a mental illness"),
    ("nonbinary people", "nonbinary person"),
    ("Poles", "Pole"),
    ("Nigerians", "Nigerian"),
    ("Syrians", "Syrian"),
    ("Turks", "Turk"),
    ("Koreans", "Korean"),
    ("Vietnamese people", "Vietnamese person"),
]
# Slurs (lowercase), paired with the group they target; used only in hateful templates.
SLURS = [
    "faggots",
    "fags",
    "dykes",
    "trannies",
    "niggers",
    "kikes",
    "spics",
    "wetbacks",
    "chinks",
    "towelheads",
    "ragheads",
    "retards",
    "sand niggers",
    "coons",
    "gooks",
    "pakis",
]
# Targets that are not protected groups: objects, activities, individuals, other groups.
OBJECTS = [
    "printers",
    "Mondays",
    "spreadsheets",
    "traffic jams",
    "mosquitoes",
    "pop-up ads",
    "this laptop",
    "these meetings",
    "cold coffee",
    "parking tickets",
    "this app",
    "slow trains",
    "tax forms",
    "my phone",
    "this weather",
    "reality shows",
]
PEOPLE = [
    "my boss",
    "my ex",
    "my landlord",
    "that referee",
    "the guy next door",
    "my brother",
    "Kevin from accounting",
    "this customer",
    "my roommate",
    "that driver",
    "the ref",
]
NONPROTECTED_GROUPS = [
    "politicians",
    "lawyers",
    "tourists",
    "bankers",
    "landlords",
    "spammers",
    "drivers in this city",
    "cyclists",
    "telemarketers",
    "influencers",
    "critics",
    "referees",
    "fans of that team",
]
NEG_ADJ = [
    "disgusting",
    "worthless",
    "filthy",
    "subhuman",
    "pathetic",
    "vile",
    "stupid",
    "a disease",
    "scum",
    "trash",
    "inferior",
    "dangerous",
    "animals",
    "parasites",
    "a plague",
    "rats",
    "vermin",
    "garbage",
    "lesser beings",
    "savages",
]
THREAT_VP = [
    "should all be shot",
    "should be wiped out",
    "need to be exterminated",
    "deserve to die",
    "should be hanged",
    "should be gassed",
    "deserve a beating",
    "should be put down like dogs",
    "should be burned alive",
]
FIRST_PERSON_THREAT = [
    "I will kill every {s} I meet",
    "I'm going to hurt the next {s} I see",
    "I want to beat up some {p}",
    "someone should shoot all the {p}",
    "let's go stab some {p} tonight",
    "I'd happily run over a few {p}",
]
EXCLUSION = [
    "{p} should not be allowed to vote",
    "{p} don't belong in this country",
    "no {p} should ever be hired",
    "{p} have no place in our neighbourhood",
    "keep {p} out of our schools",
    "{p} should be deported, all of them",
    "we need to ban {p} from public life",
    "{p} should go back where they came from",
]
DEHUMANISING = [
    "are cockroaches, not people",
    "breed like rats and take over every street",
    "are an infestation that needs cleaning out",
    "spread like a disease wherever they go",
    "are more like animals than humans",
    "are parasites living off the rest of us",
    "are nothing but livestock",
    "are a virus in this country",
]
STEREOTYPES = [
    "are all criminals and thieves",
    "only come here to live off benefits",
    "ruin every neighbourhood they move into",
    "can't be trusted with money",
    "are lazy by nature",
    "are born liars",
    "bring crime and disease with them",
    "are too stupid to hold a real job",
]
LOADED_QUESTIONS = [
    "Why do we keep letting {p} into our schools?",
    "Who decided {p} deserve the same rights as real citizens?",
    "Why are {p} always the ones causing trouble?",
    "How much longer do we have to put up with {p}?",
    "Why should my taxes pay for {p}?",
]
NEGATED_PRAISE = [
    "are never honest about anything",
    "will never be real members of society",
    "can never be trusted",
    "have never contributed anything useful",
    "are not capable of basic decency",
]
BACK_REFERENCE = [
    "They are filthy animals.",
    "They should all be thrown out.",
    "They make me sick, every one of them.",
    "They are ruining this town.",
]
THREATS_AGAINST = [
    "Someone should burn down the houses of the {p} on my street",
    "{p} should be lined up and shot",
    "It's time we dealt with the {p} for good, by force if needed",
    "The {p} here will get what's coming to them, I'll make sure of it",
]
NEUTRAL_ABOUT = [  # plain statements and questions about a group: nothing to flag
    "What languages do most {p} speak at home?",
    "The survey asked {p} how they get to work",
    "A {s} joined the council last year",
    "The report counts {p} separately from other residents",
    "How many {p} live in the region today?",
    "{p} make up about a tenth of the city's population",
    "The documentary follows three {p} over one year",
    "Are there support groups for {p} near here?",
    "The festival is organised by local {p} every summer",
    "Our new colleague is a {s} from the Leeds office",
]
POS_ADJ = [
    "wonderful",
    "brilliant",
    "kind",
    "hard-working",
    "valued members of our team",
    "welcome here",
    "our neighbours",
    "great colleagues",
    "just people like anyone else",
]
PROFANITY = [
    "fuck this traffic",
    "this shit is so hard",
    "what a fucking great day",
    "holy shit that was close",
    "damn, I missed the bus again",
    "this weather is bullshit",
    "fucking finally, the build passed",
    "shit, I forgot my keys",
    "that concert was fucking amazing",
    "oh crap, the deadline is today",
    "I'm so fucking tired",
    "this is a shitty printer",
    "hell yeah, we won",
    "what the fuck is wrong with this app",
    "goddamn it, the coffee machine broke",
]


def hateful(p: str, s: str, slur: str, rng: random.Random) -> list[str]:
    a = rng.choice(NEG_ADJ)
    t = rng.choice(THREAT_VP)
    return [
        f"{p} are {a}.",
        f"All {p} are {a}",
        f"I hate {p}.",
        f"I can't stand {p}, they are {a}",
        f"{p} {t}.",
        rng.choice(FIRST_PERSON_THREAT).format(p=p.lower(), s=s.lower()),
        rng.choice(EXCLUSION).format(p=p).capitalize(),
        f"Why are {p} so "
        f"{rng.choice(['disgusting', 'stupid', 'lazy', 'dirty', 'violent', 'useless'])}?",
        f"Isn't it obvious that {p} are {a}?",
        f"I honestly think {p} are {a}.",
        f"In my opinion {p} are a cancer on society",
        f"Never trust a {s.lower()}, they are all {a}",
        f"A {s.lower()} is worth less than a dog",
        f"{p} are not human",
        f"I met some {p} today. They are all {a}.",
        f"Typical {s.lower()}, {a} like the rest of them",
        f"The world would be better without {p}",
        f"{slur} are {a}",
        f"I hate {slur}",
        f"Get these {slur} out of here",
        f"You're just a dirty {slur.rstrip('s')}",
        f"Another {slur.rstrip('s')} moved in next door, disgusting",
        f"{p} like you make me sick",
        f"Go kill yourself, you filthy {s.lower()}",
        # v3: dehumanisation, stereotypes stated as fact, loaded questions, negated praise,
        # reference back by pronoun, and threats in other words
        f"{p} {rng.choice(DEHUMANISING)}",
        f"{p} {rng.choice(STEREOTYPES)}",
        rng.choice(LOADED_QUESTIONS).format(p=p),
        f"{p} {rng.choice(NEGATED_PRAISE)}",
        f"There are more {p} on our street every month. {rng.choice(BACK_REFERENCE)}",
        rng.choice(THREATS_AGAINST).format(p=p),
    ]


def non_hateful(p: str, s: str, slur: str, rng: random.Random) -> list[str]:
    a = rng.choice(NEG_ADJ)
    t = rng.choice(THREAT_VP)
    obj = rng.choice(OBJECTS)
    who = rng.choice(PEOPLE)
    grp = rng.choice(NONPROTECTED_GROUPS)
    return [
        # negation
        f"{p} are not {a}.",
        f"I don't hate {p}.",
        f"I would never say {p} are {a}",
        f"No {s.lower()} deserves to be treated like that",
        f"It's simply not true that {p} are {a}",
        f"Nobody thinks {p} are {a}, that's absurd",
        f"{p} never deserve to be hurt",
        # counter-speech: quoting and denouncing hate
        f'Saying "{p} are {a}" is hateful and wrong.',
        f"If you think {p} {t}, you are the problem",
        f"Stop calling {p} {a}, it's disgusting",
        f"It's vile when people say {p} are {a}.",
        f'My neighbour said "I hate {p}" and I reported him.',
        f"Calling someone a {slur.rstrip('s')} is unacceptable and I will call it out every time",
        f"People who say {p} {t} should be ashamed",
        f"The post claiming {p} are {a} has been removed for hate speech",
        # neutral and positive statements about groups
        f"{p} are {rng.choice(POS_ADJ)}.",
        f"I love working with {p}",
        f"Many {p} live in my town",
        f"We should protect {p} from discrimination",
        f"{p} deserve the same rights as everyone else",
        f"Our company hires {p} and we are proud of it",
        f"My best friend is a {s.lower()}",
        f"How can we make our office more welcoming to {p}?",
        f"Write a short article about the history of {p} in Europe",
        # minimal-contrast twins of the hateful templates (v2): same frame, benign content
        f"I met some {p} today. They were all "
        f"{rng.choice(['lovely', 'friendly', 'really helpful', 'great fun'])}.",
        f"Always trust a {s.lower()} to do a good job, in my experience",
        f"A {s.lower()} is worth exactly as much as anyone else",
        f"{p} are human beings like the rest of us",
        f"The world would be worse without {p}",
        f"Why are {p} so underrepresented in "
        f"{rng.choice(['tech', 'politics', 'management', 'science'])}?",
        f"Isn't it obvious that {p} should be treated equally?",
        f"I honestly think {p} are treated unfairly.",
        f"{p} belong in this country as much as anyone",
        f"I will stand up for every {s.lower()} I meet",
        f"Typical {who}, late again like always",
        f"Get lost, you filthy {rng.choice(['liar', 'cheat', 'thief'])}",
        f"{who} makes me sick",
        # v3 twins: the same new frames, denied, reported or about non-protected targets
        f"It's a myth that {p} {rng.choice(STEREOTYPES)}",
        f"My uncle claims {p} {rng.choice(STEREOTYPES)}. I told him that's bigoted nonsense",
        f"Comparing {p} to animals is dehumanising and has no place here",
        f"{p} are as honest and hard-working as anyone else",
        f"There are more {p} on our street every month. They've been great neighbours.",
        f"Why do so few {p} get promoted here?",
        f"{grp} {rng.choice(NEGATED_PRAISE)}",
        f"Threatening {p} is a crime and should be reported to the police",
        rng.choice(NEUTRAL_ABOUT).format(p=p, s=s.lower()),
        rng.choice(NEUTRAL_ABOUT).format(p=p, s=s.lower()),
        # abuse of non-protected targets
        f"I hate {obj}.",
        f"{obj} are {a}".capitalize(),
        f"{who} is {a}",
        f"{grp} are {rng.choice(['annoying', 'the worst', 'so stupid', 'useless', 'pathetic'])}",
        f"I want to smash {obj} with a hammer",
        f"{who} should be fired, honestly",
        # profanity not aimed at a group
        rng.choice(PROFANITY),
        f"{rng.choice(PROFANITY)}, {who} was right",
        # homonyms of threat words
        rng.choice(
            [
                "I'm going to kill this presentation tomorrow",
                "That comedian absolutely slayed",
                "Shoot me an email when you're free",
                "Let's execute the plan on Monday",
                "We need to kill the old process on the server",
                "She destroyed the competition",
            ]
        ),
        # reclaimed in-group terms
        rng.choice(
            [
                "We're queer and proud",
                "As a queer woman I love this community",
                "Proud dyke here, happy pride everyone",
                "Me and my queer friends are going out tonight",
                "I'm a bi girl and that's fine",
                "As a gay man I'm happy to answer questions",
            ]
        ),
    ]


LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}


def obfuscate(text: str, rng: random.Random) -> str:
    """One spelling variation on a random word of length >= 4."""
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w.strip('.,?!"')) >= 4]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    kind = rng.randrange(5)
    if kind == 0:  # leet
        w = "".join(LEET.get(c, c) if rng.random() < 0.6 else c for c in w)
    elif kind == 1:  # dropped letter
        j = rng.randrange(1, len(w) - 1)
        w = w[:j] + w[j + 1 :]
    elif kind == 2:  # doubled letter
        j = rng.randrange(len(w))
        w = w[:j] + w[j] + w[j:]
    elif kind == 3:  # space inside the word
        j = rng.randrange(1, len(w) - 1)
        w = w[:j] + " " + w[j:]
    else:  # missing space: glue to the next word
        if i + 1 < len(words):
            words[i : i + 2] = [w + words[i + 1]]
            return " ".join(words)
    words[i] = w
    return " ".join(words)


def generate(per_template: int = 60, seed: int = 0, obfuscate_rate: float = 0.2) -> list[Example]:
    """`per_template` rounds over every template, each with a random group, slur and filler."""
    rng = random.Random(seed)
    seen: set[str] = set()
    examples = []
    for _ in range(per_template):
        for label, maker in ((1, hateful), (0, non_hateful)):
            plural, singular = rng.choice(GROUPS)
            slur = rng.choice(SLURS)
            for text in maker(plural, singular, slur, rng):
                text = text[0].upper() + text[1:]
                if rng.random() < obfuscate_rate:
                    text = obfuscate(text, rng)
                if rng.random() < 0.3:
                    text = text.lower()
                if text not in seen:
                    seen.add(text)
                    examples.append(Example(text, label, SOURCE))
    rng.shuffle(examples)
    return examples
