"""Due dates as people write them in Slack ("by Friday", "tomorrow", "EOD", "by Jan 9",
"2026-01-09", "this week", "in two weeks"), read relative to the day of the message.

A small rule set rather than a fuzzy date parser: fuzzy parsers read any number in a
message ("20% off", "Line 4") as a day. The most specific phrase wins (a stated date over
"tomorrow" over a weekday over "this week"); among equals, the first one written.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, timedelta

_MONTHS = {
    name: number
    for number in range(1, 13)
    for name in (calendar.month_name[number].lower(), calendar.month_abbr[number].lower())
} | {"sept": 9}
# Weekend abbreviations are left out: "sat" and "sun" are words more often than days.
_WEEKDAYS = {calendar.day_name[n].lower(): n for n in range(7)} | {
    "mon": 0,
    "tue": 1,
    "tues": 1,
    "wed": 2,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "fri": 4,
}
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10, "a": 1}

_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_COUNT = r"\d+|" + "|".join(_NUMBERS)

_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MONTH_DAY = re.compile(
    rf"\b(?P<month>{_MONTH})\.? (?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,? (?P<year>\d{{4}}))?",
    re.IGNORECASE,
)
_DAY_MONTH = re.compile(
    rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)? (?:of )?(?P<month>{_MONTH})\b(?:,? (?P<year>\d{{4}}))?",
    re.IGNORECASE,
)
_SAME_DAY = re.compile(
    r"\b(?:today|tonight|eod|end of (?:the )?day|cob|close of business|this (?:morning|"
    r"afternoon|evening))\b",
    re.IGNORECASE,
)
_TOMORROW = re.compile(r"\b(?:tomorrow|tmrw)\b", re.IGNORECASE)
_WEEKDAY_NAMED = re.compile(rf"\b(?P<day>{_WEEKDAY})\b\.?", re.IGNORECASE)
_IN_SPAN = re.compile(rf"\bin (?P<count>{_COUNT}) (?P<unit>days?|weeks?)\b", re.IGNORECASE)
_WEEK = re.compile(r"\b(?:(?P<next>next week)|this week|end of (?:the )?week|eow)\b", re.IGNORECASE)
_MONTH_END = re.compile(r"\b(?:end of (?:the )?month|eom)\b", re.IGNORECASE)


def _stated(written: date, month: str, day: str, year: str | None) -> date | None:
    """A month and day as written; without a year, the next such day on or after `written`."""
    try:
        found = date(int(year or written.year), _MONTHS[month.lower()], int(day))
    except ValueError:  # "Feb 30"
        return None
    if year is None and found < written:
        try:
            found = found.replace(year=found.year + 1)
        except ValueError:  # Feb 29 of a leap year, a year on
            return None
    return found


def _iso(match: re.Match[str], written: date) -> date | None:
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _month_day(match: re.Match[str], written: date) -> date | None:
    return _stated(written, match["month"], match["day"], match["year"])


def _weekday(match: re.Match[str], written: date) -> date:
    """The named weekday after the day of the message ("Friday" said on a Friday: next week)."""
    ahead = (_WEEKDAYS[match["day"].lower()] - written.weekday() - 1) % 7 + 1
    return written + timedelta(days=ahead)


def _span(match: re.Match[str], written: date) -> date:
    raw = match["count"].lower()
    count = int(raw) if raw.isdigit() else _NUMBERS[raw]
    return written + timedelta(days=count * (7 if match["unit"].lower().startswith("week") else 1))


def _week(match: re.Match[str], written: date) -> date:
    """The Friday of this week, or of next week."""
    friday = written + timedelta(days=4 - written.weekday())
    return friday + timedelta(days=7) if match["next"] else max(friday, written)


def _month_end(match: re.Match[str], written: date) -> date:
    return written.replace(day=calendar.monthrange(written.year, written.month)[1])


Reader = Callable[[re.Match[str], date], date | None]

# Most specific first: a stated date beats "tomorrow", which beats a weekday.
_RULES: list[tuple[re.Pattern[str], Reader]] = [
    (_ISO, _iso),
    (_MONTH_DAY, _month_day),
    (_DAY_MONTH, _month_day),
    (_SAME_DAY, lambda _, written: written),
    (_TOMORROW, lambda _, written: written + timedelta(days=1)),
    (_IN_SPAN, _span),
    (_WEEKDAY_NAMED, _weekday),
    (_WEEK, _week),
    (_MONTH_END, _month_end),
]


def due_date(text: str, written: date) -> date | None:
    """The due date `text` states, read relative to `written`; None when it states none."""
    for pattern, read in _RULES:
        for match in pattern.finditer(text):
            try:
                found = read(match, written)
            except OverflowError:  # "in 99999999 days": past the year 9999, no due date
                continue
            if found is not None:
                return found
    return None
