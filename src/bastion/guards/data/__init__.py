"""Prompts written by the project (Apache-2.0) that guards train and measure on."""

from pathlib import Path

HERE = Path(__file__).parent
BENIGN_BUSINESS = HERE / "benign_business.txt"
BENIGN_EDGY_TRAIN = HERE / "benign_edgy_train.txt"
BENIGN_EDGY = HERE / "benign_edgy.txt"  # for measuring only: never trained on
BENIGN_DOCUMENTS_TRAIN = HERE / "benign_documents_train.txt"  # pasted e-mails, stories, notes
BENIGN_DOCUMENTS = HERE / "benign_documents.txt"  # for measuring only: never trained on
SHIPPED_BENIGN = (BENIGN_BUSINESS, BENIGN_EDGY_TRAIN, BENIGN_DOCUMENTS_TRAIN)
# The injection classifier's own: attacks in many languages and styles, and ordinary
# requests in the same languages (so that a language is no sign of an attack).
INJECTION_ATTACKS_TRAIN = HERE / "injection_attacks_train.txt"
INJECTION_ATTACKS = HERE / "injection_attacks.txt"  # for measuring only
BENIGN_MULTILINGUAL_TRAIN = HERE / "benign_multilingual_train.txt"
BENIGN_MULTILINGUAL = HERE / "benign_multilingual.txt"  # for measuring only
BENIGN_SHORT_TRAIN = HERE / "benign_short_train.txt"  # keywords, short asks, bits of data


def prompt_lines(path: Path) -> list[str]:
    """The prompts in a text file: one per line, blank lines and # comments skipped."""
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
