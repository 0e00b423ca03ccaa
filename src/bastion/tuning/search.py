"""Hyperparameter search with Optuna: a few trials over a small space, each trained in its
own job folder with early stopping on validation loss and pruned by a median pruner; the
best trial is the one with the lowest validation loss.

The sampler is seeded, so a search started again after a crash proposes the same trials:
each trial's job resumes from its checkpoint, or returns its saved result at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.errors import BadRequest
from bastion.tuning.dataset import Dataset
from bastion.tuning.train import StepMetrics, TrainConfig, TrainResult, train


class SearchSpace(BaseModel):
    """What a trial may change; the rest comes from the base TrainConfig."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: tuple[float, float] = Field((2e-4, 3e-3), description="log-uniform range")
    rank: tuple[int, ...] = Field((4, 8, 16), description="LoRA ranks tried")
    epochs: tuple[float, ...] = Field((1.0, 2.0, 3.0), description="epoch budgets tried")


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    state: str  # complete, pruned
    best_val_loss: float | None
    steps: int


@dataclass
class SearchResult:
    best: TrainResult
    best_params: dict[str, Any]
    trials: list[Trial]

    def summary(self) -> dict[str, Any]:
        return {"best_params": self.best_params, "trials": [t.__dict__ for t in self.trials]}


def _trial_config(trial: Any, base: TrainConfig, space: SearchSpace) -> TrainConfig:
    lo, hi = space.learning_rate
    update: dict[str, Any] = {
        "learning_rate": trial.suggest_float("learning_rate", lo, hi, log=True),
        "epochs": trial.suggest_categorical("epochs", list(space.epochs)),
        "max_steps": 0,
    }
    if base.method == "lora":
        update["rank"] = trial.suggest_categorical("rank", list(space.rank))
    return base.model_copy(update=update)


def search(
    model_path: Path,
    data: Dataset,
    job_root: Path,
    base: TrainConfig,
    trials: int,
    *,
    space: SearchSpace | None = None,
    progress: bool = True,
) -> SearchResult:
    """Run `trials` trials (resuming those a killed search left) and return the best."""
    import optuna

    if trials < 1:
        raise BadRequest("a search needs at least one trial")
    if not data.splits["validation"]:
        raise BadRequest("a search chooses on validation loss: the dataset has no validation split")
    space = space or SearchSpace()
    if not base.eval_every:  # every trial must report validation losses to be pruned
        base = base.model_copy(update={"eval_every": 5, "patience": base.patience or 2})
    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=base.seed, n_startup_trials=min(trials, 3)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=base.eval_every),
    )
    results: dict[int, TrainResult] = {}

    def objective(trial: Any) -> float:
        config = _trial_config(trial, base, space)

        def report(m: StepMetrics) -> bool:
            if m.val_loss is None:
                return False
            trial.report(m.val_loss, m.step)
            return bool(trial.should_prune())

        job = job_root / f"trial-{trial.number:03d}"
        result = train(
            model_path, data, job, config, resume=True, on_step=report, progress=progress
        )
        results[trial.number] = result
        if result.stopped_because == "callback":
            raise optuna.TrialPruned()
        return result.best_val_loss if result.best_val_loss is not None else math.inf

    study.optimize(objective, n_trials=trials)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise BadRequest(
            f"all {trials} trials were pruned; run more trials or widen the search space"
        )
    summary = [
        Trial(
            t.number,
            t.params,
            t.state.name.lower(),
            results[t.number].best_val_loss,
            results[t.number].steps,
        )
        for t in study.trials
        if t.number in results
    ]
    return SearchResult(results[study.best_trial.number], study.best_trial.params, summary)
