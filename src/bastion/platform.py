"""Wires the parts together once per process: config, database, access, models, audit,
grounding, experiments, tuned models, pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.access import AccessStore, Policy
from bastion.access.limits import Limits
from bastion.audit import AuditLog
from bastion.config import CONFIG_FILE_NAME, BastionConfig, bastion_home, load_config
from bastion.evaluation.bias import saved_report_gate
from bastion.experiments.service import Experiments
from bastion.grounding.service import Grounding
from bastion.models import ModelRegistry
from bastion.models.embedded import model_cache_root
from bastion.observability import configure_tracing
from bastion.pipeline import Pipeline
from bastion.storage import Database
from bastion.tuning.registry import TunedModels

if TYPE_CHECKING:
    from bastion.tuning.job import TuningContext


@dataclass
class Platform:
    home: Path
    config: BastionConfig
    db: Database
    access: AccessStore
    policy: Policy
    registry: ModelRegistry
    audit: AuditLog
    grounding: Grounding
    experiments: Experiments
    pipeline: Pipeline
    tuned: TunedModels

    @classmethod
    def open(cls, home: Path | None = None, config: BastionConfig | None = None) -> Platform:
        """Load the configuration from `home` (default BASTION_HOME) and migrate the database."""
        home = home or bastion_home()
        config = config or load_config(home / CONFIG_FILE_NAME)
        configure_tracing(config.tracing)
        db = Database.for_home(home, config.storage.url, config.storage.sqlite_synchronous)
        db.migrate()
        access = AccessStore(db, cache_seconds=config.access.key_cache_seconds)
        tuned = TunedModels(db, home / "tuned")
        registry = ModelRegistry(config.models, model_cache_root(home), discover=tuned.served)
        audit = AuditLog(db, retain_text=config.audit.retain_text)
        grounding = Grounding(config, home, db)
        bias_gate = saved_report_gate(home / "reports", config.bias_gate)
        experiments = Experiments(db, config, audit, bias_gate, registry.configs)
        experiments.create_configured()
        limits = Limits(db, config.access.limits)
        pipeline = Pipeline.build(
            config, access, registry, audit, grounding, experiments, home, limits
        )
        return cls(
            home,
            config,
            db,
            access,
            Policy(config.access),
            registry,
            audit,
            grounding,
            experiments,
            pipeline,
            tuned,
        )

    def tuning(self) -> TuningContext:
        """The parts that fine-tuning uses (tuning never imports this wiring module)."""
        from bastion.tuning.job import TuningContext  # torch: only when tuning

        return TuningContext(
            home=self.home,
            config=self.config,
            registry=self.registry,
            policy=self.policy,
            tuned=self.tuned,
            experiments=self.experiments.store,
        )

    def close(self) -> None:
        self.db.dispose()
