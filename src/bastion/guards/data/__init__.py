"""Prompts written by the project (Apache-2.0) that guards train and measure on."""

from pathlib import Path

HERE = Path(__file__).parent
BENIGN_BUSINESS = HERE / "benign_business.txt"
BENIGN_EDGY_TRAIN = HERE / "benign_edgy_train.txt"
BENIGN_EDGY = HERE / "benign_edgy.txt"  # for measuring only: never trained on
SHIPPED_BENIGN = (BENIGN_BUSINESS, BENIGN_EDGY_TRAIN)
