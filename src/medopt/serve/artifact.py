"""Fetch a stored model (ONNX or medopt model file), verify it, and wrap it as a numpy-in, logits-out runner.

An ONNX graph carries no class names or preprocessing of its own: the compress stage writes them into the artifact's
manifest ``meta``; for older artifacts without them they come from the parent medopt model file
(``manifest.parents``). Either way serving feeds the network exactly what training fed it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from pydantic import ValidationError

from medopt.config import DicomConfig, PreprocessConfig
from medopt.errors import MedoptError
from medopt.models.geometry import ModelGeometry, normalisation
from medopt.models.model_spec import ModelError
from medopt.serve.codec import InputSpec, ModelInfo
from medopt.serve.device import Device, import_torch
from medopt.serve.runners import Runner, onnx_runner, torch_runner
from medopt.store import ArtifactStore, Manifest

if TYPE_CHECKING:  # medopt model files need torch: imported through _model_file() only where one is read
    from types import ModuleType

    from medopt.models.model_file import ModelBundle

logger = logging.getLogger(__name__)

__all__ = ["Runner", "ServeError", "ServedModel", "describe_model", "load_served_model", "onnx_runner",
           "resolve_runtime", "torch_runner"]
ONNX_KIND = "model/onnx"
TORCH_KIND = "model/pytorch"
SERVING_META_KEYS = ("class_names", "task", "in_chans", "input_size", "preprocess")


class ServeError(MedoptError, ValueError):
    """The artifact cannot be served (wrong kind, missing parent model, unsupported runtime)."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded model: its runner, what it accepts, and who it is."""

    runner: Runner
    spec: InputSpec
    info: ModelInfo
    runtime: str


def _dicom_of(manifest: Manifest) -> DicomConfig:
    """The DICOM window used in training, from the resolved experiment config saved with the artifact."""
    data = ((manifest.config or {}).get("data") or {}).get("dicom")
    if not data:
        return DicomConfig()
    try:
        return DicomConfig.model_validate(data)
    except ValueError as exc:
        raise ServeError(f"artifact '{manifest.key}': unreadable data.dicom in its saved config ({exc})") from None


class Described(NamedTuple):
    """What a served model needs to know besides its weights: its geometry and preprocessing."""

    geometry: ModelGeometry
    preprocess: PreprocessConfig


def _bundle_description(bundle: ModelBundle) -> Described:
    return Described(bundle.geometry, bundle.preprocess)


def _meta_description(manifest: Manifest) -> Described | None:
    """The description the compress stage wrote into the manifest's meta; None when it wrote none (older artifact)."""
    meta = manifest.meta or {}
    present = [k for k in SERVING_META_KEYS if k in meta]
    if not present:
        return None
    missing = [k for k in SERVING_META_KEYS if k not in meta]
    if missing:
        raise ServeError(f"artifact '{manifest.key}': manifest meta lacks {', '.join(missing)}")
    names, task, in_chans = meta["class_names"], meta["task"], meta["in_chans"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ServeError(f"artifact '{manifest.key}': meta.class_names must be a non-empty list of strings")
    if not isinstance(task, str) or not isinstance(in_chans, int) or isinstance(in_chans, bool) or in_chans < 1:
        raise ServeError(f"artifact '{manifest.key}': meta.task must be a string and meta.in_chans an int >= 1, "
                         f"got {task!r} and {in_chans!r}")
    try:
        preprocess = PreprocessConfig.model_validate(meta["preprocess"])
    except ValidationError as exc:
        raise ServeError(f"artifact '{manifest.key}': unreadable meta.preprocess ({exc.errors()[0]['msg']})") from None
    mean, std = normalisation(preprocess)
    recorded = meta.get("geometry") or {"in_chans": in_chans, "input_size": meta["input_size"],
                                        "num_classes": len(names), "class_names": names, "task": task,
                                        "mean": mean, "std": std}  # artifacts older than the geometry entry
    try:
        return Described(ModelGeometry.from_dict(recorded), preprocess)
    except ModelError as exc:
        raise ServeError(f"artifact '{manifest.key}': meta.geometry: {exc}") from None


def _parent_key(store: ArtifactStore, manifest: Manifest) -> str:
    """The medopt model file an (older) ONNX artifact was exported from: its class names and preprocessing."""
    for key in manifest.parents:
        if store.exists(key) and store.manifest(key).kind == TORCH_KIND:
            return key
    raise ServeError(f"ONNX artifact '{manifest.key}' names no parent medopt model ({TORCH_KIND}) in its manifest; "
                     "class names and preprocessing come from it")


def _model_file() -> ModuleType:
    """``medopt.models.model_file`` (torch), or one clear line in an image without torch (the slim predictor).

    Raises:
        DeviceError: torch is not installed.
    """
    import_torch()
    from medopt.models import model_file

    return model_file


def _parent_bundle(store: ArtifactStore, manifest: Manifest, workdir: Path) -> ModelBundle:
    return _model_file().load_model_file(store.get_file(_parent_key(store, manifest), workdir / "parent.pt"))


def resolve_runtime(manifest: Manifest, runtime: str) -> str:
    """The runtime that will run ``manifest``'s model ("onnx" or "torch"), checked from the manifest alone.

    Raises:
        ServeError: the artifact is not a model, or ``runtime`` cannot run its kind.
    """
    kinds = {ONNX_KIND: "onnx", TORCH_KIND: "torch"}
    if manifest.kind not in kinds:
        raise ServeError(f"artifact '{manifest.key}' is a '{manifest.kind}', not a model ({', '.join(kinds)})")
    native = kinds[manifest.kind]
    if runtime not in ("auto", native):
        raise ServeError(f"serve.runtime '{runtime}' cannot run artifact '{manifest.key}' of kind '{manifest.kind}'")
    return native


def load_served_model(store: ArtifactStore, key: str, *, name: str, runtime: str, threads: int | None,
                      max_rows: int, workdir: Path, device: Device = "cpu") -> ServedModel:
    """Fetch ``key`` (sha256-verified by the store), build its runner on ``device`` and describe its input and
    identity.

    Raises:
        ArtifactNotFound / ArtifactCorrupted: missing artifact or hash mismatch (nothing is served).
        ServeError: not a model, or a runtime that cannot run it.
        DeviceError: ``device`` is not usable by the runtime, or a torch model in an image without torch.
    """
    manifest = store.manifest(key)
    chosen = resolve_runtime(manifest, runtime)
    path = store.get_file(key, workdir / Path(key).name)
    if chosen == "onnx":
        about = _meta_description(manifest) or _bundle_description(_parent_bundle(store, manifest, workdir))
        # the CPU call keeps the two-argument form that tests/serve/test_model.py patches in
        runner = onnx_runner(path, threads) if device == "cpu" else onnx_runner(path, threads, device)
    else:
        bundle = _model_file().load_model_file(path)
        about = _bundle_description(bundle)
        runner = torch_runner(bundle, threads, device)
    spec, info = _spec_and_info(manifest, about, name=name, max_rows=max_rows)
    logger.info("loaded %s (%s, %s runtime, sha256 %s)", key, manifest.kind, chosen, manifest.sha256[:12])
    return ServedModel(runner=runner, spec=spec, info=info, runtime=chosen)


def _spec_and_info(manifest: Manifest, about: Described, *, name: str, max_rows: int) -> tuple[InputSpec, ModelInfo]:
    """What the model accepts and who it is: the same for the predictor and a separate transformer."""
    spec = InputSpec(geometry=about.geometry, preprocess=about.preprocess, dicom=_dicom_of(manifest),
                     max_rows=max_rows)
    info = ModelInfo(name=name, version=manifest.sha256[:12], sha256=manifest.sha256,
                     class_names=about.geometry.class_names, task=about.geometry.task)
    return spec, info


def _file_description(path: Path) -> Described:
    """The recipe saved in a medopt model file, read with its weights memory-mapped: no model is built."""
    torch = import_torch()
    model_file = _model_file()
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        preprocess = PreprocessConfig.model_validate(payload["preprocess"])
        about = Described(model_file.geometry_of(payload, preprocess), preprocess)
    except Exception as exc:  # noqa: BLE001 - torch and pydantic raise many types for a bad file
        raise ServeError(f"{path.name} is not a readable medopt model file ({exc.__class__.__name__})") from None
    if payload.get("format") != model_file.FORMAT:
        raise ServeError(f"{path.name} is not a medopt model file (format {model_file.FORMAT} expected)")
    return about


def describe_model(store: ArtifactStore, key: str, *, name: str, max_rows: int,
                   workdir: Path) -> tuple[InputSpec, ModelInfo]:
    """``InputSpec`` and ``ModelInfo`` of a stored model without loading it, for a transformer that only decodes.

    Reads the manifest's meta (compress stage); for older ONNX artifacts and for medopt model files, only the
    recipe inside the model file (fetched to ``workdir``, sha256-verified; weights memory-mapped, no model or ORT
    session built).

    Raises:
        ArtifactNotFound / ArtifactCorrupted: missing artifact or hash mismatch.
        ServeError: not a model, or no readable description.
    """
    manifest = store.manifest(key)
    resolve_runtime(manifest, "auto")
    about = _meta_description(manifest)
    if about is None:
        source = key if manifest.kind == TORCH_KIND else _parent_key(store, manifest)
        about = _file_description(store.get_file(source, workdir / "described.pt"))
    return _spec_and_info(manifest, about, name=name, max_rows=max_rows)
