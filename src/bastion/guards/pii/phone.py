"""Phone numbers: Presidio's recognizer (python-phonenumbers over several regions), asked
only about the stretches of text that can hold a number, and only for the regions whose
numbers can be that long. Same matches, except ISO dates ("2025-10-01" is a valid number
in some regions, and a date in every structured answer); a 1 KB prompt with a few numbers
cost ~4 ms before, mostly parsing every short number ("order 5521") once per region."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata
from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

# Digits joined the way the matcher's candidates join them: up to four punctuation
# characters (or an "x") between groups, as in "+33 4 72" or "(555) 123-4567".
_DIGIT_RUN = re.compile(r"\+?\d(?:(?:[^\w]|[xX]){0,4}\d)*")
# Characters kept on each side of a run: a leading "(", an extension ("ext. 12"), and
# the neighbours the matcher checks before accepting a candidate.
MARGIN = 16
_ISO_DATE = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])")


def _shortest_number(region: str) -> int:
    metadata = PhoneMetadata.metadata_for_region(region)
    desc = metadata.general_desc if metadata else None
    if desc is None:  # a region phonenumbers does not know: no length is ruled out
        return 0
    return int(min([*desc.possible_length, *(desc.possible_length_local_only or ())]))


def _one_international_number(run: str) -> bool:
    """A run that is exactly one number written with its country code ("+33 4 72 00 00 00")
    parses the same whatever the region."""
    if not run.startswith("+"):
        return False
    try:
        number = phonenumbers.parse(run)
    except NumberParseException:
        return False
    if not phonenumbers.is_valid_number(number):  # the matcher would try parts of it
        return False
    digits = len(str(number.country_code)) + len(phonenumbers.national_significant_number(number))
    return digits == sum(c.isdigit() for c in run)


def digit_windows(text: str) -> Iterator[tuple[int, int, list[str]]]:
    """Merged (start, end, runs) windows around the runs of digits in `text`."""
    window: tuple[int, int, list[str]] | None = None
    for run in _DIGIT_RUN.finditer(text):
        start, end = max(0, run.start() - MARGIN), min(len(text), run.end() + MARGIN)
        if window and start <= window[1]:
            window = (window[0], end, [*window[2], run.group(0)])
            continue
        if window:
            yield window
        window = (start, end, [run.group(0)])
    if window:
        yield window


class WindowedPhoneRecognizer(PhoneRecognizer):
    """Same matches as Presidio's PhoneRecognizer, found window by window."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shortest = {r: _shortest_number(r) for r in self.supported_regions}

    def _regions_for(self, runs: list[str]) -> list[str]:
        """A candidate lies within one run: a region is needed only when some run has at
        least as many digits as its shortest number (any one region finds an
        international number)."""
        national = [r for r in runs if not _one_international_number(r)]
        longest = max((sum(c.isdigit() for c in r) for r in national), default=0)
        regions = [r for r in self.supported_regions if longest >= self._shortest[r]]
        return regions or list(self.supported_regions[:1])

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        results = []
        for start, end, runs in digit_windows(text):
            window = text[start:end]
            for region in self._regions_for(runs):
                for match in phonenumbers.PhoneNumberMatcher(
                    window, region, leniency=cast(int, self.leniency)
                ):
                    if _ISO_DATE.fullmatch(match.raw_string):
                        continue
                    try:  # Presidio's labelling: the number's own region when it parses
                        found = phonenumbers.region_code_for_number(
                            phonenumbers.parse(window[match.start : match.end])
                        )
                    except NumberParseException:
                        found = region
                    result = self._get_recognizer_result(  # type: ignore[no-untyped-call]
                        match, window, found, nlp_artifacts
                    )
                    result.start += start
                    result.end += start
                    results.append(result)
        return EntityRecognizer.remove_duplicates(results)
