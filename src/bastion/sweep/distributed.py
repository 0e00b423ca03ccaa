"""Sweeps past one machine: each candidate as a Ray task with its resource needs, so a
company sweeps large candidates across its GPU nodes with the same command.

A task opens Bastion from the same BASTION_HOME (a shared file system, and PostgreSQL as
the database when the nodes are several) and runs its candidate's levels exactly as the
in-process sweep does: through the pipeline, resuming levels already written to `out`
(which must be shared as well). Ray is an optional extra: `pip install 'bastion[ray]'`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.access import Principal
from bastion.errors import ConfigError
from bastion.sweep.runner import Candidate, sweep
from bastion.sweep.suites import AppSuite, TaskSuite

LOCAL = "local"  # start a Ray instance on this machine for the sweep


def _one_candidate(
    home: str,
    suite: AppSuite | TaskSuite,
    candidate: Candidate,
    principal: Principal,
    levels: list[int],
    out: str,
) -> list[dict[str, Any]]:
    """Runs on a Ray worker: Bastion opened from `home`, one candidate's levels."""
    from bastion.platform import Platform

    platform = Platform.open(Path(home))
    try:
        return sweep(platform, suite, [candidate], principal, levels, Path(out))
    finally:
        platform.close()


def sweep_on_ray(
    address: str,
    home: Path,
    suite: AppSuite | TaskSuite,
    chosen: list[Candidate],
    principal: Principal,
    levels: list[int],
    out: Path,
    cpus: float,
    gpus: float,
    on_candidate: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Every candidate as a Ray task asking for `cpus` and `gpus`; their levels in the
    candidates' order. `address`: LOCAL, "auto" or a cluster's address."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "sweep.ray_address is set but Ray is not installed: pip install 'bastion[ray]'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=None if address == LOCAL else address,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_one_candidate)
        pending = {task.remote(str(home), suite, c, principal, levels, str(out)): c for c in chosen}
        found: dict[str, list[dict[str, Any]]] = {}
        waiting = list(pending)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            candidate = pending[done[0]]
            found[candidate.name] = ray.get(done[0])
            on_candidate(f"{candidate.name}: done on the cluster")
        return [level for c in chosen for level in found[c.name]]
    finally:
        if started_here:
            ray.shutdown()
