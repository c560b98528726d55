"""The model artifact (DESIGN 4.7): what train.py writes into SM_MODEL_DIR and evaluate.py reads back.

Layout (SageMaker tars SM_MODEL_DIR into model.tar.gz):
    1/                      TensorFlow SavedModel, signature serving_default: float32 [None, frames, mels]
    code/inference.py       the TF-Serving handler (steps/serving/inference.py)
    code/steps/__init__.py, code/steps/audio.py, code/steps/features.py
                            the feature code copied from the steps package that trained the model
    code/requirements.txt   librosa, soundfile (installed by the TF-Serving container)
    labels.json             class names in model output order
    features.json           the FeatureConfig
    training.json           the training split's label counts (the majority baseline) and the fit summary
The artifact runs alone: nothing in it refers back to the repository.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
from pathlib import Path

import steps
from steps import audio, features
from steps.features import FeatureConfig

logger = logging.getLogger(__name__)

MODEL_VERSION = 1
LABELS_FILE = "labels.json"
TRAINING_FILE = "training.json"
STEPS_DIR = Path(steps.__file__).resolve().parent
HANDLER_SOURCE = STEPS_DIR / "serving" / "inference.py"
REQUIREMENTS_SOURCE = STEPS_DIR / "requirements.txt"
FEATURE_MODULES = (audio, features)


class ArtifactError(ValueError):
    """A model artifact is missing a part; the message names it."""


def write_code(code_dir: Path) -> None:
    """code/: the handler plus the exact feature modules this process imported (training's code)."""
    package = code_dir / "steps"
    package.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HANDLER_SOURCE, code_dir / "inference.py")
    shutil.copyfile(REQUIREMENTS_SOURCE, code_dir / "requirements.txt")
    (package / "__init__.py").write_text('"""Feature code packaged from the training job\'s steps package."""\n')
    for module in FEATURE_MODULES:
        shutil.copyfile(module.__file__, package / Path(module.__file__).name)


def export_artifact(model, model_dir: Path, classes: list[str], config: FeatureConfig, training: dict) -> Path:
    """Write the full artifact into model_dir (SM_MODEL_DIR) and return it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.export(str(model_dir / str(MODEL_VERSION)), verbose=False)
    write_code(model_dir / "code")
    (model_dir / LABELS_FILE).write_text(json.dumps(list(classes)) + "\n")
    config.save(model_dir)
    training = {"model_version": weights_id(model_dir / str(MODEL_VERSION)), **training}
    (model_dir / TRAINING_FILE).write_text(json.dumps(training, indent=2) + "\n")
    logger.info("artifact written: %s", sorted(p.name for p in model_dir.iterdir()))
    return model_dir


def weights_id(savedmodel: Path) -> str:
    """A short hash of the trained weights: the model version the endpoint reports.

    TF Serving's own version is the folder name, `1` for every artifact, so it cannot tell two
    trained models apart in the predictions table; the weights can (and identical weights are,
    rightly, the same version).
    """
    digest = hashlib.sha256()
    for path in sorted((savedmodel / "variables").glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def extract_model_tarball(model_dir: Path, destination: Path) -> Path:
    """Unpack <model_dir>/model.tar.gz (or accept an already unpacked artifact) into destination."""
    tarball = model_dir / "model.tar.gz"
    if tarball.is_file():
        with tarfile.open(tarball) as tar:
            # The "data" filter refuses absolute paths and links out of the folder; container Pythons
            # older than 3.10.12/3.11.4 lack it, and there only well-formed member names are taken.
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, filter="data")
            else:
                _check_members(tar)
                tar.extractall(destination)
        return destination
    if (model_dir / LABELS_FILE).is_file():
        return model_dir
    raise ArtifactError(f"{model_dir} holds neither model.tar.gz nor an unpacked model artifact")


def _check_members(tar: tarfile.TarFile) -> None:
    for member in tar.getmembers():
        if member.name.startswith("/") or ".." in Path(member.name).parts or member.issym() or member.islnk():
            raise ArtifactError(f"model.tar.gz member {member.name!r} points outside the artifact")


def savedmodel_dir(artifact_dir: Path) -> Path:
    """The highest integer version folder (TF Serving's rule)."""
    versions = [p for p in artifact_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise ArtifactError(f"no SavedModel version folder in {artifact_dir}")
    return max(versions, key=lambda p: int(p.name))


def read_artifact_json(artifact_dir: Path, name: str):
    path = artifact_dir / name
    if not path.is_file():
        raise ArtifactError(f"model artifact has no {name}")
    return json.loads(path.read_text())
