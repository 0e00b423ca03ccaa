"""Prompts written by the project (Apache-2.0) that guards train and measure on."""

from pathlib import Path

HERE = Path(__file__).parent
BENIGN_BUSINESS = HERE / "benign_business.txt"
BENIGN_EDGY_TRAIN = HERE / "benign_edgy_train.txt"
BENIGN_EDGY = HERE / "benign_edgy.txt"  # for measuring only: never trained on
BENIGN_DOCUMENTS_TRAIN = HERE / "benign_documents_train.txt"  # pasted e-mails, stories, notes
BENIGN_DOCUMENTS = HERE / "benign_documents.txt"  # for measuring only: never trained on
SHIPPED_BENIGN = (BENIGN_BUSINESS, BENIGN_EDGY_TRAIN, BENIGN_DOCUMENTS_TRAIN)


def prompt_lines(path: Path) -> list[str]:
    """The prompts in a text file: one per line, blank lines and # comments skipped."""
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
