"""A small Keras CNN over log-mel windows, trained per window with class weights.

Lung-sound cues (wheezes: sustained tonal lines; crackles: short broadband clicks) are local
time-frequency patterns, so a few 3x3 conv blocks with global average pooling fit them with few
parameters; the dataset is small (tens of patients), so the model stays small and regularised
(batch norm, dropout), and early stopping watches the validation split only.

Each window's mel bands are centred on their own mean over time before the convolutions. A band's
average level says more about the stethoscope, its filter mode (KAUH's bell / diaphragm / extended
copies of one recording differ mostly there) and the chest than about the disease, and a model
this size on tens of patients learns those levels first: it identifies recordings instead of
sounds. The cues that matter (wheezes, crackles) are changes over time within a band, which the
centring keeps. On the real recordings this raised validation accuracy on the grouped-diagnosis
task from 0.37 to 0.55 (docs/model-quality.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 42
    patience: int = 6


def set_seed(seed: int) -> None:
    """Seed Python, numpy and TensorFlow, and use deterministic kernels (cheap on CPU)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights (n / (k * count_c)), so each present class carries equal total weight."""
    counts = np.bincount(labels, minlength=n_classes)
    present = np.count_nonzero(counts)
    return {c: (float(labels.size / (present * counts[c])) if counts[c] else 0.0) for c in range(n_classes)}


def input_std(windows: np.ndarray) -> float:
    """Standard deviation of the band-centred (n, frames, mels) training windows: the model's input scale."""
    return float((windows - windows.mean(axis=1, keepdims=True)).std())


def build_model(input_shape: tuple[int, int], n_classes: int, *, std: float, learning_rate: float):
    """(frames, mels) float32 -> class probabilities; bands centred per window, scaled by `std` (input_std)."""
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    def centre(windows):
        return windows - keras.ops.mean(windows, axis=1, keepdims=True)

    inputs = keras.Input(shape=input_shape, dtype="float32", name="log_mel")
    x = layers.Reshape((*input_shape, 1))(inputs)
    x = layers.Lambda(centre, name="centre_bands")(x)
    x = layers.Rescaling(1.0 / max(std, 1e-6))(x)
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        # Momentum 0.9, not Keras' 0.99: a small dataset gives few steps per epoch, and with 0.99 the
        # moving statistics used at inference lag far behind the batch statistics (validation at chance).
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="samay_lung_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    logger.info("model: %d parameters, TensorFlow %s", model.count_params(), tf.__version__)
    return model


def fit(model, train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
        n_classes: int, config: TrainingConfig):
    """Fit per window with class weights; stop on validation loss and keep the best epoch's weights."""
    from tensorflow import keras

    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True, verbose=0
    )
    return model.fit(
        train[0], train[1],
        validation_data=validation,
        epochs=config.epochs,
        batch_size=config.batch_size,
        class_weight=class_weights(train[1], n_classes),
        callbacks=[stop],
        shuffle=True,
        verbose=2,
    )
