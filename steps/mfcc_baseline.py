"""The yardstick the CNN is judged against: MFCC statistics + logistic regression (issue 4's reference).

steps.real_data_report scores it on exactly the recordings and patient-grouped folds the pipeline's
own Preprocess job writes, so the comparison in docs/model-quality.md is paired fold by fold rather
than against a figure measured on other splits. It is a report-side reference, never deployed, so it
may use scikit-learn (the pipeline's Evaluate image need not have it).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from steps.audio import load_audio
from steps.features import FeatureConfig

N_MFCC = 20


def mfcc_statistics(path: Path, config: FeatureConfig | None = None) -> np.ndarray:
    """Mean and standard deviation over time of each MFCC: one fixed-length vector per recording.

    Decoded and resampled by the pipeline's own loader; frames and mel bands as the CNN's features.
    """
    import librosa

    config = config or FeatureConfig()
    samples = load_audio(path, sample_rate=config.sample_rate)
    mfcc = librosa.feature.mfcc(
        y=samples, sr=config.sample_rate, n_mfcc=N_MFCC, n_fft=config.n_fft, hop_length=config.hop_length,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
    )
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float64)


def fit_predict(x_train: np.ndarray, y_train: Sequence[str], x_test: np.ndarray) -> list[str]:
    """Standardise, fit a plain (unweighted, L2, C=1) logistic regression, predict the test recordings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(x_train, list(y_train))
    return [str(label) for label in model.predict(x_test)]
