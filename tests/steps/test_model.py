"""Training pieces of steps/model.py: random crops of whole recordings, and the averaged ensemble."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from steps import train
from steps.features import FeatureConfig, log_mel_frames, log_mel_windows
from steps.model import average_models, build_model, member_seed, random_crops, recording_frames
from tests.steps.conftest import TRAIN_HYPERPARAMETERS, TrainedRun


def test_recording_frames_undo_the_overlapping_windows() -> None:
    config = FeatureConfig()
    audio = np.random.default_rng(0).standard_normal(config.sample_rate * 11).astype(np.float32)
    frames, windows = log_mel_frames(audio, config), log_mel_windows(audio, config)

    rebuilt = recording_frames(windows, config.frames_per_window_hop)

    assert rebuilt.shape[0] <= frames.shape[0]
    np.testing.assert_array_equal(rebuilt, frames[: rebuilt.shape[0]])
    assert rebuilt.shape[0] > frames.shape[0] - config.frames_per_window_hop


def test_random_crops_are_slices_of_their_own_recording_with_its_label_and_weight() -> None:
    rng = np.random.default_rng(1)
    recordings = [rng.standard_normal((n, 4)).astype(np.float32) for n in (30, 12, 50)]
    counts, labels, weights = np.array([3, 1, 5]), np.array([0, 1, 0]), np.array([0.5, 2.0, 0.5], dtype=np.float32)
    crops = random_crops(recordings, counts, labels, weights, frames=10, batch_size=4, seed=3)

    def epoch() -> list[tuple[np.ndarray, int, float]]:
        return [item for i in range(len(crops)) for item in zip(*crops[i])]

    first = epoch()
    assert len(first) == counts.sum() and len(crops) == 3
    for x, label, weight in first:
        assert x.shape == (10, 4)
        owners = [r for r, rec in enumerate(recordings)
                  if any(np.array_equal(x, rec[s:s + 10]) for s in range(rec.shape[0] - 9))]
        assert len(owners) == 1 and labels[owners[0]] == label and weights[owners[0]] == weight
    crops.on_epoch_end()
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, epoch()))


def test_the_ensemble_outputs_the_mean_of_its_members_probabilities() -> None:
    x = np.random.default_rng(2).standard_normal((5, 126, 32)).astype(np.float32)
    members = [build_model((126, 32), 3, std=1.0, learning_rate=1e-3, name=f"m{i}") for i in range(2)]
    for i, member in enumerate(members):
        member.set_weights([w + 0.1 * (i + 1) for w in member.get_weights()])

    ensemble = average_models(members, (126, 32))

    expected = np.mean([member.predict(x, verbose=0) for member in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert average_models(members[:1], (126, 32)) is members[0]
    assert member_seed(7, 0) == 7 and len({member_seed(7, m) for m in range(3)}) == 3


def test_train_refuses_an_empty_ensemble(trained_run: TrainedRun, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--members must be at least 1"):
        train.main(train.parse_args([
            *TRAIN_HYPERPARAMETERS, "--members", "0", "--sm-model-dir", str(tmp_path / "model"),
            "--train", str(trained_run.splits / "train"), "--validation", str(trained_run.splits / "validation")]))


def test_train_exports_an_averaged_ensemble_trained_on_random_crops(trained_run: TrainedRun, tmp_path: Path) -> None:
    import tensorflow as tf

    summary = train.main(train.parse_args([
        *TRAIN_HYPERPARAMETERS, "--epochs", "2", "--members", "2", "--random-crops", "1",
        "--sm-model-dir", str(tmp_path / "model"), "--output-data-dir", str(tmp_path / "output"),
        "--train", str(trained_run.splits / "train"), "--validation", str(trained_run.splits / "validation")]))

    assert [m["seed"] for m in summary["members"]] == [7, 1007]
    assert summary["hyperparameters"]["members"] == 2 and summary["hyperparameters"]["random_crops"] is True
    serve = tf.saved_model.load(str(tmp_path / "model" / "1")).signatures["serving_default"]
    windows = np.zeros((3, FeatureConfig().frames_per_window, FeatureConfig().n_mels), dtype=np.float32)
    (probabilities,) = serve(log_mel=tf.constant(windows)).values()
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)
