"""The extension points: guards, connectors, model backends and apps are plug-ins.

Every part, built in or not, is a `Part` that a module hands to one of the hooks in
`bastion.plugins.hookspecs`. Bastion's own parts are found exactly as a third-party
package's are: through the `bastion` entry-point group (see pyproject.toml), loaded once per
process on first use. `register()` adds a plug-in module or object in-process (tests,
notebooks). The configuration, the pipeline, the grounding connectors, the model registry
and the apps all read the parts from here, so adding a part never means editing them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, TypeVar

import pluggy
from pydantic import BaseModel, ConfigDict

from bastion.errors import ConfigError
from bastion.plugins import hookspecs

ENTRY_POINT_GROUP = "bastion"
hookimpl = pluggy.HookimplMarker(ENTRY_POINT_GROUP)

Kind = Literal["guard", "connector", "backend", "app"]
KINDS: tuple[Kind, ...] = ("guard", "connector", "backend", "app")
_HOOKS: dict[Kind, str] = {
    "guard": "register_guards",
    "connector": "register_connectors",
    "backend": "register_backends",
    "app": "register_apps",
}


@dataclass(frozen=True, kw_only=True)
class Part:
    """What every part declares; each kind's spec (GuardSpec, ConnectorSpec, BackendSpec,
    AppSpec) adds how it is built and what it contributes."""

    name: str
    description: str = ""
    #: Its configuration: `guards.<name>` for a guard, `settings` of the entry that uses it
    #: for a connector, backend or app. None: nothing to configure.
    settings: type[BaseModel] | None = None
    #: Fields it adds to every `apps[]` entry (per-app overrides), e.g. `toxicity_action`.
    app_settings: type[BaseModel] | None = None
    #: Common fields an entry using it must set (a csv source needs `path`).
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A misspelt key must be an error naming it, whatever the plug-in's model says.
        model = self.settings
        if model is not None and model.model_config.get("extra") != "forbid":
            strict = type(model.__name__, (model,), {"model_config": ConfigDict(extra="forbid")})
            object.__setattr__(self, "settings", strict)


class PluginError(ConfigError):
    """A plug-in failed to load or registered something invalid."""


P = TypeVar("P", bound=Part)


class PartRegistry:
    """The parts of each kind, by name; entry points are loaded on first use."""

    def __init__(self) -> None:
        self._manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self._manager.add_hookspecs(hookspecs)
        self._lock = threading.RLock()
        self._entry_points_loaded = False
        self._parts: dict[Kind, dict[str, Part]] = {}
        #: Bumped whenever the set of plug-ins changes, so derived models can be rebuilt.
        self.version = 0

    def register(self, plugin: object, name: str | None = None) -> None:
        """Add a plug-in (a module or object with `@hookimpl` functions) in this process."""
        with self._lock:
            self._load_entry_points()
            self._manager.register(plugin, name)
            self._changed()

    def unregister(self, plugin: object) -> None:
        with self._lock:
            self._manager.unregister(plugin)
            self._changed()

    def parts(self, kind: Kind, spec: type[P]) -> dict[str, P]:
        """Every registered part of `kind`, by name, checked to be a `spec`."""
        with self._lock:
            found = self._parts.get(kind)
            if found is None:
                found = self._parts[kind] = self._collect(kind)
        wrong = [p for p in found.values() if not isinstance(p, spec)]
        if wrong:
            raise PluginError(
                f"a plug-in registered {wrong[0]!r} as a {kind}; a {kind} must be a {spec.__name__}"
            )
        return found  # type: ignore[return-value]

    def names(self, kind: Kind) -> list[str]:
        return sorted(self.parts(kind, Part))

    def part(self, kind: Kind, name: str) -> Part | None:
        return self.parts(kind, Part).get(name)

    def _collect(self, kind: Kind) -> dict[str, Part]:
        self._load_entry_points()
        found: dict[str, Part] = {}
        owners: dict[str, str] = {}

        def register(part: Part) -> None:
            if not isinstance(part, Part):
                raise PluginError(f"{plugin}: register() takes a Part, not {part!r}")
            if part.name in found:
                raise PluginError(
                    f"two plug-ins register a {kind} named '{part.name}': "
                    f"{owners[part.name]} and {plugin}; uninstall one of them"
                )
            found[part.name], owners[part.name] = part, plugin

        hook = getattr(self._manager.hook, _HOOKS[kind])
        for impl in reversed(hook.get_hookimpls()):  # in registration order
            plugin = self._manager.get_name(impl.plugin) or repr(impl.plugin)
            impl.function(**{arg: register for arg in impl.argnames})
        return found

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        try:
            self._manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # an installed plug-in that cannot be imported
            raise PluginError(
                f"a Bastion plug-in failed to load ({type(exc).__name__}: {exc}); fix or "
                "uninstall the package that provides it (`pip list` shows the installed ones)"
            ) from exc
        if not self._manager.get_plugins():
            raise PluginError(
                "no Bastion parts are registered: the package's entry points are missing; "
                "reinstall it (`pip install -e .` in a source checkout)"
            )

    def _changed(self) -> None:
        self._parts.clear()
        self.version += 1


registry = PartRegistry()
register = registry.register
unregister = registry.unregister

__all__ = [
    "KINDS",
    "Kind",
    "Part",
    "PartRegistry",
    "PluginError",
    "hookimpl",
    "register",
    "registry",
]
