"""Synthetic auscultation recordings in the labels.csv dataset form (DESIGN 4.1).

The demo and the tests need data nobody has to download, that exercises every path the real data
does (mixed sample rates and bit depths, several recordings per patient, device noise) and whose
learnability is a dial: `easy`/`normal` carry distinct diagnostic cues, `hard` draws each patient's
sounds independently of the diagnosis so the accuracy gate can be seen to fail.

A recording is breath noise shaped by inspiration/expiration envelopes, faint heart sounds, and the
adventitious sounds of its "sound profile":
- Asthma: long, high-pitched expiratory wheezes (400-900 Hz) with harmonics, sometimes polyphonic;
- COPD: short low-pitched wheezes (rhonchi, 110-260 Hz), prolonged expiration, diminished breath;
- Pneumonia: coarse crackles (long, low damped transients) and bronchial (wider-band) breathing;
- Heart failure: fine late-inspiratory crackles (short, high), fast breathing and heart rate;
- Normal: breath and heart only.
The chest wall and stethoscope mode (bell / diaphragm / extended) filter the mix; the device adds
hiss and mains hum. Everything is drawn from `numpy.random.default_rng([seed, patient])`, so the
output is byte-identical for a seed.
"""
from __future__ import annotations

import csv
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq

logger = logging.getLogger(__name__)

CLASSES = ("Normal", "Asthma", "COPD", "Pneumonia", "Heart failure")
DIFFICULTIES = ("easy", "normal", "hard")
SAMPLE_RATES = (4000, 8000, 22050, 44100)
SUBTYPES = ("PCM_16", "PCM_24", "PCM_32")
LABEL_COLUMNS = (
    "file", "patient_id", "diagnosis", "recording_id", "location", "device", "filter_mode", "age", "sex",
    "sound_class",
)
# Unlabelled recordings keep their hidden truth beside the empty diagnosis, so a demo can score predictions.
TRUTH_COLUMN = "true_diagnosis"
LOCATIONS = ("P L U", "P L M", "P L L", "P R U", "P R M", "P R L", "A L U", "A R U", "A R M", "A L M")
FILTER_MODES = ("B", "D", "E")
# device -> (hiss level relative to breath, mains hum frequency)
DEVICES = {
    "Littmann 3200": (0.04, 60.0),
    "Meditron": (0.08, 50.0),
    "AKG C417L": (0.12, 50.0),
    "Littmann Classic II SE": (0.06, 60.0),
}
DURATION_RANGE = (8.0, 12.0)


class SynthError(ValueError):
    """Bad arguments for the generator (unknown difficulty, non-positive counts, occupied folder)."""


@dataclass(frozen=True)
class Difficulty:
    """How strongly the diagnosis shows in the sound.

    cue_gain scales wheeze/crackle amplitude against the breath; prevalence scales how many
    breathing cycles carry the cue; crosstalk is the chance that a cycle carries another class's
    cue; label_noise is the chance that a patient's sounds are drawn from a random class.
    """

    cue_gain: float
    prevalence: float
    crosstalk: float
    noise_gain: float
    label_noise: float


DIFFICULTY = {
    "easy": Difficulty(cue_gain=2.5, prevalence=1.0, crosstalk=0.0, noise_gain=0.7, label_noise=0.0),
    "normal": Difficulty(cue_gain=1.6, prevalence=0.75, crosstalk=0.08, noise_gain=1.0, label_noise=0.03),
    "hard": Difficulty(cue_gain=1.6, prevalence=0.75, crosstalk=0.15, noise_gain=1.3, label_noise=1.0),
}


@dataclass(frozen=True)
class Profile:
    """The sounds of one class: what the breathing looks like and which cues ride on it."""

    breaths_per_minute: tuple[float, float]
    ie_ratio: tuple[float, float]  # expiration / inspiration duration
    breath_band_hz: float  # corner of the breath-noise low-pass: wider = bronchial
    breath_gain: float
    heart_bpm: tuple[float, float]
    cue: str  # "none" | "high_wheeze" | "low_wheeze" | "coarse_crackle" | "fine_crackle"
    cycle_prevalence: float


PROFILES = {
    "Normal": Profile((12, 18), (1.3, 1.7), 350.0, 1.0, (60, 80), "none", 0.0),
    "Asthma": Profile((16, 24), (1.8, 2.4), 380.0, 1.0, (75, 100), "high_wheeze", 0.9),
    "COPD": Profile((14, 22), (2.6, 3.4), 320.0, 0.65, (70, 95), "low_wheeze", 0.85),
    "Pneumonia": Profile((20, 28), (1.2, 1.6), 900.0, 1.2, (85, 110), "coarse_crackle", 0.9),
    "Heart failure": Profile((20, 28), (1.2, 1.6), 350.0, 0.9, (90, 115), "fine_crackle", 0.9),
}
CUE_SOUND_CLASS = {
    "none": "normal", "high_wheeze": "wheeze", "low_wheeze": "wheeze",
    "coarse_crackle": "crackle", "fine_crackle": "crackle",
}
CUES = tuple(CUE_SOUND_CLASS)[1:]


@dataclass(frozen=True)
class RecordingPlan:
    """Everything about one recording that is decided before rendering (the labels.csv row)."""

    recording_id: str
    patient_id: str
    diagnosis: str
    profile: str
    location: str
    device: str
    filter_mode: str
    age: int
    sex: str
    sample_rate: int
    subtype: str
    seconds: float
    loudness: float
    seed: tuple[int, ...]


@dataclass(frozen=True)
class SynthSummary:
    """What was written, for the CLI summary and the tests."""

    out: Path
    labels_csv: Path
    patients: int
    recordings: int
    audio_seconds: float
    patients_by_diagnosis: dict[str, int]
    recordings_by_sample_rate: dict[int, int]
    recordings_by_subtype: dict[str, int]
    recordings_by_sound_class: dict[str, int] = field(default_factory=dict)


def synthesize_dataset(
    out: str | Path,
    *,
    patients: int = 40,
    seed: int = 42,
    difficulty: str = "normal",
    recordings_per_patient: int = 3,
    unlabelled: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write `out/labels.csv` and `out/audio/<recording_id>.wav`; return what was written.

    `progress(done, total)` is called after each recording. `overwrite` replaces an earlier
    dataset in `out`; any other non-empty folder is refused so nothing of the user's is clobbered.
    """
    plans = plan_dataset(
        patients=patients, seed=seed, difficulty=difficulty, recordings_per_patient=recordings_per_patient,
        unlabelled=unlabelled,
    )
    out = Path(out)
    audio_dir = _prepare_folder(out, overwrite)
    spec = DIFFICULTY[difficulty]
    rows, sound_classes = [], Counter()
    for done, plan in enumerate(plans, start=1):
        samples, sound_class = render_recording(plan, spec)
        sf.write(audio_dir / f"{plan.recording_id}.wav", samples, plan.sample_rate, subtype=plan.subtype, format="WAV")
        rows.append(_label_row(plan, sound_class, unlabelled))
        sound_classes[sound_class] += 1
        if progress is not None:
            progress(done, len(plans))
    labels_csv = out / "labels.csv"
    columns = LABEL_COLUMNS + ((TRUTH_COLUMN,) if unlabelled else ())
    with labels_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    logger.info("wrote %d synthetic recordings to %s", len(plans), out)
    first_of_patient = {plan.patient_id: plan.diagnosis for plan in plans}
    return SynthSummary(
        out=out,
        labels_csv=labels_csv,
        patients=len(first_of_patient),
        recordings=len(plans),
        audio_seconds=round(sum(plan.seconds for plan in plans), 3),
        patients_by_diagnosis=dict(Counter(first_of_patient.values())),
        recordings_by_sample_rate=dict(Counter(plan.sample_rate for plan in plans)),
        recordings_by_subtype=dict(Counter(plan.subtype for plan in plans)),
        recordings_by_sound_class=dict(sound_classes),
    )


def plan_dataset(
    *,
    patients: int = 40,
    seed: int = 42,
    difficulty: str = "normal",
    recordings_per_patient: int = 3,
    unlabelled: bool = False,
) -> list[RecordingPlan]:
    """Decide every recording's metadata (pure and deterministic; no audio is rendered).

    Diagnoses are balanced (round-robin, then shuffled); sample rate and bit depth cycle with
    co-prime periods so even a handful of recordings mixes them, independently of the diagnosis.
    """
    _check_arguments(patients, difficulty, recordings_per_patient)
    spec = DIFFICULTY[difficulty]
    master = np.random.default_rng([seed, 0])
    diagnoses = [CLASSES[i % len(CLASSES)] for i in range(patients)]
    master.shuffle(diagnoses)
    prefix = f"synth-{'u' if unlabelled else ''}{difficulty[0]}{seed}"
    plans = []
    for index, diagnosis in enumerate(diagnoses):
        rng = np.random.default_rng([seed, 1, index])
        patient_id = f"{prefix}-p{index + 1:03d}"
        profile = str(rng.choice(CLASSES)) if rng.random() < spec.label_noise else diagnosis
        device = str(rng.choice(list(DEVICES)))
        age, sex = int(rng.integers(8, 90)), str(rng.choice(["F", "M"]))
        loudness = float(rng.uniform(0.25, 0.8))
        locations = rng.permutation(LOCATIONS)
        for k in range(recordings_per_patient):
            serial = len(plans)
            plans.append(
                RecordingPlan(
                    recording_id=f"{patient_id}-r{k + 1}",
                    patient_id=patient_id,
                    diagnosis=diagnosis,
                    profile=profile,
                    location=str(locations[k % len(locations)]),
                    device=device,
                    filter_mode=FILTER_MODES[int(rng.integers(len(FILTER_MODES)))],
                    age=age,
                    sex=sex,
                    sample_rate=SAMPLE_RATES[serial % len(SAMPLE_RATES)],
                    subtype=SUBTYPES[serial % len(SUBTYPES)],
                    seconds=round(float(rng.uniform(*DURATION_RANGE)), 3),
                    loudness=loudness * float(rng.uniform(0.8, 1.2)),
                    seed=(seed, 2, index, k),
                )
            )
    return plans


def render_recording(plan: RecordingPlan, spec: Difficulty) -> tuple[np.ndarray, str]:
    """Synthesize one recording at its own sample rate; return (samples in [-1, 1], sound_class)."""
    rng = np.random.default_rng(plan.seed)
    rate = plan.sample_rate
    n = int(round(plan.seconds * rate))
    profile = PROFILES[plan.profile]
    cycles = _breathing_cycles(rng, plan.seconds, profile)
    breath = _breath(rng, n, rate, cycles, profile)
    heart = _heart(rng, n, rate, profile)
    cues, present = _adventitious(rng, n, rate, cycles, profile, spec)
    level = np.sqrt(np.mean(breath**2)) + 1e-12
    chest = breath + 0.35 * level * heart + spec.cue_gain * level * cues
    filtered = _chest_and_stethoscope(chest, rate, plan.filter_mode)
    hiss_level, hum_hz = DEVICES[plan.device]
    noise = spec.noise_gain * level * (hiss_level * rng.standard_normal(n) + 0.5 * hiss_level * _hum(n, rate, hum_hz))
    mix = filtered + noise
    mix *= plan.loudness / (np.max(np.abs(mix)) + 1e-12)
    return mix.astype(np.float32), _sound_class(present)


def _check_arguments(patients: int, difficulty: str, recordings_per_patient: int) -> None:
    if difficulty not in DIFFICULTY:
        raise SynthError(f"difficulty {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
    if patients < 1:
        raise SynthError(f"patients must be at least 1 (got {patients})")
    if recordings_per_patient < 1:
        raise SynthError(f"recordings per patient must be at least 1 (got {recordings_per_patient})")


def _prepare_folder(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SynthError(f"{out} is not empty (pass overwrite / --force to replace a dataset there)")
        shutil.rmtree(out / "audio", ignore_errors=True)
        (out / "labels.csv").unlink(missing_ok=True)
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    return audio_dir


def _label_row(plan: RecordingPlan, sound_class: str, unlabelled: bool) -> dict[str, object]:
    row = {
        "file": f"audio/{plan.recording_id}.wav",
        "patient_id": plan.patient_id,
        "diagnosis": "" if unlabelled else plan.diagnosis,
        "recording_id": plan.recording_id,
        "location": plan.location,
        "device": plan.device,
        "filter_mode": plan.filter_mode,
        "age": plan.age,
        "sex": plan.sex,
        "sound_class": sound_class,
    }
    if unlabelled:
        row[TRUTH_COLUMN] = plan.diagnosis
    return row


@dataclass(frozen=True)
class _Cycles:
    """Breathing cycles in seconds: start of inspiration, end of inspiration, end of expiration."""

    start: np.ndarray
    split: np.ndarray
    end: np.ndarray


def _breathing_cycles(rng: np.random.Generator, seconds: float, profile: Profile) -> _Cycles:
    period = 60.0 / rng.uniform(*profile.breaths_per_minute)
    ie = rng.uniform(*profile.ie_ratio)
    count = int(np.ceil(seconds / period)) + 2
    periods = period * rng.uniform(0.9, 1.1, count)  # breath-to-breath variability
    start = np.cumsum(periods) - periods - rng.uniform(0, period)  # recording starts mid-cycle
    split = start + periods / (1.0 + ie)
    return _Cycles(start=start, split=split, end=start + periods)


def _filtered(signal: np.ndarray, rate: int, response: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a zero-phase frequency response; the FFT runs at a fast (5-smooth) length, then is cut back."""
    n = signal.size
    size = next_fast_len(n, real=True)
    spectrum = rfft(signal, size)
    spectrum *= response(rfftfreq(size, 1.0 / rate))
    return irfft(spectrum, size)[:n]


def _breath(rng: np.random.Generator, n: int, rate: int, cycles: _Cycles, profile: Profile) -> np.ndarray:
    """Band-limited noise under an envelope: a loud inspiration, then a softer, longer expiration."""
    corner = profile.breath_band_hz

    def band(f: np.ndarray) -> np.ndarray:
        return (f / (f + 80.0)) / np.sqrt(1.0 + (f / corner) ** 4)

    noise = _filtered(rng.standard_normal(n), rate, band)
    t = np.arange(n) / rate
    i = np.clip(np.searchsorted(cycles.start, t, side="right") - 1, 0, cycles.start.size - 1)
    inspiring = t < cycles.split[i]
    phase_in = (t - cycles.start[i]) / (cycles.split[i] - cycles.start[i])
    phase_out = (t - cycles.split[i]) / (cycles.end[i] - cycles.split[i])
    envelope = np.where(inspiring, np.sin(np.pi * phase_in) ** 2, 0.5 * np.sin(np.pi * np.clip(phase_out, 0, 1)) ** 1.5)
    return profile.breath_gain * envelope * noise


def _heart(rng: np.random.Generator, n: int, rate: int, profile: Profile) -> np.ndarray:
    """S1 and S2: low damped thumps (40-90 Hz) at the heart rate, heard faintly through the chest."""
    beat = 60.0 / rng.uniform(*profile.heart_bpm)
    onsets = np.arange(rng.uniform(0, beat), n / rate, beat)
    signal = np.zeros(n)
    for onset in onsets:
        _add_transient(signal, rate, onset, rng.uniform(40, 60), 0.025, 1.0)
        _add_transient(signal, rate, onset + 0.3 * beat, rng.uniform(60, 90), 0.018, 0.7)
    return signal / (np.max(np.abs(signal)) + 1e-12)


def _adventitious(
    rng: np.random.Generator, n: int, rate: int, cycles: _Cycles, profile: Profile, spec: Difficulty
) -> tuple[np.ndarray, set[str]]:
    """Wheezes and crackles, cycle by cycle; returns the signal and which cue kinds it holds."""
    signal, present = np.zeros(n), set()
    duration = n / rate
    for start, split, end in zip(cycles.start, cycles.split, cycles.end):
        if end <= 0 or start >= duration:
            continue
        cue = profile.cue
        if rng.random() < spec.crosstalk:
            cue = str(rng.choice(CUES))
        elif cue == "none" or rng.random() >= profile.cycle_prevalence * spec.prevalence:
            continue
        if _CUE_RENDERERS[cue](rng, signal, rate, start, split, end):
            present.add(cue)
    return signal, present


def _high_wheeze(
    rng: np.random.Generator, signal: np.ndarray, rate: int, start: float, split: float, end: float
) -> bool:
    length = (end - split) * rng.uniform(0.55, 0.9)
    onset = split + rng.uniform(0.05, 0.15) * (end - split)
    added = _add_tone(signal, rate, onset, length, rng.uniform(400, 900), rng.uniform(-0.15, 0.05), 1.0, (0.35, 0.12))
    if rng.random() < 0.4:  # polyphonic: a second, independent tone
        added |= _add_tone(signal, rate, onset, length * 0.8, rng.uniform(500, 1000), 0.0, 0.6, (0.2,))
    return added


def _low_wheeze(
    rng: np.random.Generator, signal: np.ndarray, rate: int, start: float, split: float, end: float
) -> bool:
    added = False
    for _ in range(int(rng.integers(1, 4))):
        length = rng.uniform(0.2, 0.5)
        onset = rng.uniform(split, max(split, end - length))
        pitch, glide = rng.uniform(110, 260), rng.uniform(-0.1, 0.1)
        added |= _add_tone(signal, rate, onset, length, pitch, glide, 1.8, (0.7, 0.5, 0.3))
    return added


def _coarse_crackles(
    rng: np.random.Generator, signal: np.ndarray, rate: int, start: float, split: float, end: float
) -> bool:
    """Early-inspiratory and expiratory coarse crackles: long (tau 4-8 ms), low (150-350 Hz)."""
    times = np.concatenate([
        rng.uniform(start, start + 0.5 * (split - start), int(rng.integers(3, 7))),
        rng.uniform(split, split + 0.4 * (end - split), int(rng.integers(1, 4))),
    ])
    return _add_crackles(rng, signal, rate, times, (150, 350), (0.004, 0.008), 4.0)


def _fine_crackles(
    rng: np.random.Generator, signal: np.ndarray, rate: int, start: float, split: float, end: float
) -> bool:
    """Late-inspiratory fine crackles: short (tau 0.6-1.5 ms), high (600-1400 Hz), many."""
    times = rng.uniform(start + 0.5 * (split - start), split, int(rng.integers(8, 18)))
    return _add_crackles(rng, signal, rate, times, (600, 1400), (0.0006, 0.0015), 5.0)


_CUE_RENDERERS = {
    "high_wheeze": _high_wheeze,
    "low_wheeze": _low_wheeze,
    "coarse_crackle": _coarse_crackles,
    "fine_crackle": _fine_crackles,
}


def _add_crackles(
    rng: np.random.Generator, signal: np.ndarray, rate: int, times: np.ndarray,
    freq_range: tuple[float, float], tau_range: tuple[float, float], amplitude: float,
) -> bool:
    added = False
    for onset in times:
        added |= _add_transient(
            signal, rate, onset, rng.uniform(*freq_range), rng.uniform(*tau_range), amplitude * rng.uniform(0.6, 1.2)
        )
    return added


def _add_transient(signal: np.ndarray, rate: int, onset: float, freq: float, tau: float, amplitude: float) -> bool:
    """A damped sinusoid (the classic crackle / heart-sound model); False when it falls outside."""
    first = int(round(onset * rate))
    length = int(6 * tau * rate) + 1
    lo, hi = max(first, 0), min(first + length, signal.size)
    if lo >= hi:
        return False
    t = (np.arange(lo, hi) - first) / rate
    signal[lo:hi] += amplitude * np.exp(-t / tau) * np.sin(2 * np.pi * freq * t)
    return True


def _add_tone(
    signal: np.ndarray, rate: int, onset: float, length: float, freq: float, glide: float, amplitude: float,
    harmonics: tuple[float, ...],
) -> bool:
    """A sustained tone with a slow pitch glide, a smooth envelope and decaying harmonics."""
    first = int(round(onset * rate))
    count = int(length * rate)
    lo, hi = max(first, 0), min(first + count, signal.size)
    if lo >= hi or count < 2:
        return False
    x = (np.arange(lo, hi) - first) / count
    pitch = freq * (1.0 + glide * x)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    envelope = np.sin(np.pi * x) ** 0.5
    nyquist = rate / 2
    tone = np.sin(phase)
    for order, weight in enumerate(harmonics, start=2):
        if order * freq * (1 + max(glide, 0)) < 0.9 * nyquist:
            tone += weight * np.sin(order * phase)
    signal[lo:hi] += amplitude * envelope * tone
    return True


def _chest_and_stethoscope(signal: np.ndarray, rate: int, filter_mode: str) -> np.ndarray:
    """Bell favours low frequencies, diaphragm cuts them, extended is broad; all roll off by 2 kHz."""

    def response(freqs: np.ndarray) -> np.ndarray:
        rolloff = 1.0 / np.sqrt(1.0 + (freqs / 1800.0) ** 8)
        if filter_mode == "B":
            return rolloff / np.sqrt(1.0 + (freqs / 500.0) ** 2) * 1.6
        if filter_mode == "D":
            return rolloff * freqs / (freqs + 120.0)
        return rolloff

    return _filtered(signal, rate, response)


def _hum(n: int, rate: int, hz: float) -> np.ndarray:
    t = np.arange(n) / rate
    return np.sin(2 * np.pi * hz * t) + 0.5 * np.sin(2 * np.pi * 3 * hz * t)


def _sound_class(present: set[str]) -> str:
    kinds = sorted({CUE_SOUND_CLASS[cue] for cue in present})
    return "+".join(kinds) if kinds else "normal"
