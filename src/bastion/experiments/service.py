"""Experiments as the platform uses them: assign arms, take feedback, report, guard, decide."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from bastion.access import Principal
from bastion.audit import AuditLog
from bastion.config import BastionConfig, ExperimentConfig, ModelConfig, VariantConfig
from bastion.errors import BadRequest, Conflict
from bastion.experiments.assignment import assign
from bastion.experiments.metrics import METRICS, ArmData, collect
from bastion.experiments.report import build_report
from bastion.experiments.stats import guardrail_breached
from bastion.experiments.store import ExperimentStore, FeedbackStore
from bastion.storage import Database

log = logging.getLogger("bastion.experiments")
GUARDRAIL_CHECK_SECONDS = 30.0

# A model's bias gate: why its last bias report fails the gate (empty: it passes), or None
# when it has no report. The wiring passes the evaluation's (`saved_report_gate`).
BiasGate = Callable[[str], list[str] | None]


class Experiments:
    def __init__(
        self,
        db: Database,
        config: BastionConfig,
        audit: AuditLog,
        bias_gate: BiasGate,
        models: Callable[[], list[ModelConfig]] | None = None,
    ) -> None:
        self.config = config
        self.bias_gate = bias_gate  # judges the report `bastion eval bias` saved for a model
        self.models = models or (lambda: config.models)  # configured and fine-tuned models
        self.store = ExperimentStore(db, config, self.models)
        self.feedback = FeedbackStore(db, audit)
        self._audit = audit

    def create_configured(self) -> None:
        """Create the experiments listed in bastion.yaml that do not exist yet."""
        for spec in self.config.experiments:
            # created on an earlier start (or the app runs another): leave it
            with contextlib.suppress(Conflict):
                self.store.create(spec)

    def assign(
        self, principal: Principal, app: str, account: str | None, trace_id: str
    ) -> tuple[ExperimentConfig, VariantConfig, str] | None:
        """The experiment, arm and unit kind for this request, or None (not enrolled)."""
        running = self.store.running(principal.tenant, app)
        if running is None:
            return None
        spec = running.spec
        unit = {"user": principal.user, "account": account, "request": trace_id}[spec.unit]
        if unit is None:
            return None  # an account experiment, and the request named no account
        arm = assign(spec, running.salt, unit, running.stopped_arms)
        if arm is None:
            return None
        variant = next(v for v in spec.variants if v.name == arm)
        return spec, variant, spec.unit

    def observations(
        self, tenant: str, name: str
    ) -> tuple[ExperimentConfig, dict[str, ArmData], dict[str, Any]]:
        spec, state = self.store.get(tenant, name)
        records = [
            r
            for r in self._audit.records(tenant)
            if ((r.get("extra") or {}).get("experiment") or {}).get("name") == name
        ]
        arms = collect(spec, records, self.feedback.for_traces(tenant), self.models())
        return spec, arms, state

    def report(self, tenant: str, name: str) -> tuple[dict[str, Any], dict[str, ArmData]]:
        """The report, after stopping any arm whose guardrail is breached."""
        spec, arms, state = self.observations(tenant, name)
        if self._enforce_guardrails(tenant, spec, arms, state):
            state = self.store.get(tenant, name)[1]  # the arms just stopped
        return build_report(spec, arms, state), arms

    def check_guardrails(self, tenant: str, name: str) -> list[str]:
        """Stop every challenger arm that surely worsens a guardrail metric beyond its limit."""
        return self._enforce_guardrails(tenant, *self.observations(tenant, name))

    def _enforce_guardrails(
        self,
        tenant: str,
        spec: ExperimentConfig,
        arms: dict[str, ArmData],
        state: dict[str, Any],
    ) -> list[str]:
        if state["status"] != "running":
            return []
        control = spec.variants[0].name
        stopped = []
        for guardrail in spec.guardrails:
            info = METRICS[guardrail.metric]
            base = arms[control].values.get(guardrail.metric, [])
            for variant in spec.variants[1:]:
                values = arms[variant.name].values.get(guardrail.metric, [])
                if len(base) < 3 or len(values) < 3:
                    continue
                if guardrail_breached(
                    base, values, guardrail.max_worsening, higher_is_worse=not info.higher_is_better
                ):
                    limit = f"{guardrail.max_worsening:g}"
                    why = f"guardrail {guardrail.metric} worse by more than {limit}"
                    if self.store.stop_arm(tenant, spec.name, variant.name, why):
                        log.warning(
                            "experiment %s: arm %s stopped: %s", spec.name, variant.name, why
                        )
                        stopped.append(variant.name)
        return stopped

    def watch_guardrails(self, every_seconds: float = GUARDRAIL_CHECK_SECONDS) -> threading.Event:
        """Check every running experiment's guardrails in a background thread; set the
        returned event to stop it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every_seconds):
                for experiment in self.store.list():
                    if experiment["status"] == "running":
                        try:
                            self.check_guardrails(experiment["tenant"], experiment["name"])
                        except Exception:  # one broken experiment must not stop the others
                            log.exception("guardrail check of %s failed", experiment["name"])

        threading.Thread(target=loop, name="bastion-guardrails", daemon=True).start()
        return stop

    def stop(self, tenant: str, name: str) -> None:
        self.store.set_status(tenant, name, "stopped")

    def promote(self, tenant: str, name: str, arm: str, force: bool = False) -> dict[str, Any]:
        """End the experiment naming the winner; the admin then makes it the app's default.
        The winner's model must pass the bias gate on its last `bastion eval bias` report
        (`force` overrides a failing report, never a missing one that bias_gate.required
        requires)."""
        spec, _ = self.store.get(tenant, name)
        variant = next((v for v in spec.variants if v.name == arm), None)
        if variant is None:
            raise BadRequest(f"no arm '{arm}' in '{name}'; arms: {[v.name for v in spec.variants]}")
        outcome = {
            "promoted": arm,
            "variant": variant.model_dump(mode="json"),
            "bias_gate": self._bias_gate(spec, variant, force),
        }
        self.store.set_status(tenant, name, "promoted", outcome)
        return outcome

    def _bias_gate(self, spec: ExperimentConfig, variant: VariantConfig, force: bool) -> Any:
        app = next((a for a in self.config.apps if a.name == spec.app), None)
        model = variant.model or (app.model if app else None) or self.config.resolved_default_model
        reasons = self.bias_gate(model)
        command = f"`bastion eval bias --model {model}`"
        if reasons is None:
            if self.config.bias_gate.required:
                raise Conflict(f"no bias report for model '{model}': run {command} first")
            return "no report"
        if reasons and not force:
            raise Conflict(
                f"model '{model}' fails the bias gate ({'; '.join(reasons)}); promote with "
                f"force to override, or rerun {command} after fixing it"
            )
        return reasons or "pass"
