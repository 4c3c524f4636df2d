"""Five deterministic "music-like" targets for the sequence-generation experiment.

The paper cuts five 320-sample pieces (about 7.3 ms at 44.1 kHz) from a piece of music that is
not available, and scales them to [-1, 1]. We synthesise stand-ins inside the project, so the
experiment needs no download and every run sees bit-identical targets:

0. ``pluck_E4``   Karplus-Strong plucked string at 329.6 Hz (E4).
1. ``chord_G3_B3`` two Karplus-Strong strings (196.0 Hz and 246.9 Hz) sounding together.
2. ``bow_C4``     bowed tone at 261.6 Hz: sawtooth-like harmonics (amplitude 1/n, 12 partials,
                  slight spectral roll-off), vibrato 5.5 Hz / 0.6 %, slow bow-pressure swell.
3. ``reed_A4``    clarinet-like tone at 440 Hz: odd harmonics only (1/n, up to the 11th),
                  vibrato 6 Hz / 0.4 %, an attack at the start of the excerpt (12 ms time constant).
4. ``duet_A2_C5`` plucked bass (Karplus-Strong, 110 Hz) under a bowed tone (523.3 Hz),
                  the two voices at 0.6 / 0.4 of the mix.

Construction details that matter for the task:
- Karplus-Strong: a delay line of ``round(fs / f0)`` samples filled with uniform noise from a
  fixed-seed ``numpy.random.default_rng``, fed back through the two-point average times a decay
  factor (0.996). Like a cut from a recording, the excerpt starts 6000 samples (136 ms) after the pluck,
  when the noise burst has been smoothed into a decaying, harmonic-rich periodic wave (but still
  with more high-frequency content than a bowed tone).
- Bowed / reed tones: additive synthesis with the instantaneous phase integrated from the
  vibrato-modulated frequency; partials above 10 kHz are left out.
- Scaling: each 320-sample excerpt is mapped affinely so that its minimum is -1 and its maximum
  is +1 (the paper's "scaled to [-1, 1]"); the excerpt is otherwise untouched (no mean removal).

Everything is float64 numpy; ``music_targets()`` returns a ``(5, 320)`` array, ``TARGET_NAMES``
names the rows.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 44_100
LENGTH = 320
PLUCK_OFFSET = 6000  # samples skipped after a pluck: the excerpt is "cut from the middle of a note"

TARGET_NAMES = ("pluck_E4", "chord_G3_B3", "bow_C4", "reed_A4", "duet_A2_C5")


def karplus_strong(f0: float, num_samples: int, seed: int, decay: float = 0.996) -> np.ndarray:
    """Plucked string: noise-filled delay line with an averaging, slightly lossy feedback."""
    period = int(round(SAMPLE_RATE / f0))
    line = np.random.default_rng(seed).uniform(-1.0, 1.0, period)
    out = np.empty(num_samples)
    for n in range(num_samples):
        out[n] = line[n % period]
        # the string's low-pass: average this sample with the next one in the loop
        line[n % period] = decay * 0.5 * (line[n % period] + line[(n + 1) % period])
    return out


def additive_tone(f0: float, num_samples: int, harmonics, amplitudes, vibrato_hz: float,
                  vibrato_depth: float, start: int = 0) -> np.ndarray:
    """Sum of harmonics of a vibrato-modulated fundamental; `start` offsets the time axis."""
    t = (np.arange(num_samples) + start) / SAMPLE_RATE
    freq = f0 * (1.0 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * t))
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE  # integrate frequency, so vibrato is smooth
    out = np.zeros(num_samples)
    for n, a in zip(harmonics, amplitudes):
        if n * f0 < 10_000:
            out += a * np.sin(n * phase + 0.3 * n)  # fixed per-partial phases: an asymmetric wave
    return out


def bowed_tone(f0: float, num_samples: int, start: int = 0) -> np.ndarray:
    """Sawtooth-like (all harmonics, 1/n with a gentle roll-off), vibrato and a bow swell."""
    n = np.arange(1, 13)
    tone = additive_tone(f0, num_samples, n, (1.0 / n) * np.exp(-0.08 * n), 5.5, 0.006, start)
    swell = 1.0 + 0.3 * np.linspace(0.0, 1.0, num_samples)
    return tone * swell


def reed_tone(f0: float, num_samples: int) -> np.ndarray:
    """Clarinet-like (odd harmonics), vibrato, and the attack of the note inside the excerpt."""
    n = np.arange(1, 12, 2)
    tone = additive_tone(f0, num_samples, n, 1.0 / n, 6.0, 0.004)
    attack = 1.0 - np.exp(-np.arange(num_samples) / (0.012 * SAMPLE_RATE))
    return tone * attack


def excerpt(signal: np.ndarray, start: int) -> np.ndarray:
    return signal[start:start + LENGTH]


def scale_to_unit_range(x: np.ndarray) -> np.ndarray:
    """Affine map of the excerpt onto [-1, 1] (min -> -1, max -> +1)."""
    lo, hi = x.min(), x.max()
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def music_targets() -> np.ndarray:
    """The five targets, shape (5, LENGTH), float64, each spanning exactly [-1, 1]."""
    total = PLUCK_OFFSET + LENGTH
    pluck = excerpt(karplus_strong(329.6, total, seed=1), PLUCK_OFFSET)
    chord = excerpt(karplus_strong(196.0, total, seed=2) + karplus_strong(246.9, total, seed=3),
                    PLUCK_OFFSET)
    bow = bowed_tone(261.6, LENGTH, start=5000)
    reed = reed_tone(440.0, LENGTH)
    duet = 0.6 * excerpt(karplus_strong(110.0, total, seed=4), PLUCK_OFFSET) \
        + 0.4 * bowed_tone(523.3, LENGTH, start=12_000)
    return np.stack([scale_to_unit_range(x) for x in (pluck, chord, bow, reed, duet)])
