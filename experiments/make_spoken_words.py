"""Build the spoken-word substitute data set for experiment 2 (TIMIT is not available).

The paper's 25 words (5 groups sharing a suffix) are each spoken by 7 synthetic voices of
espeak-ng; 5 voices are used for training and 2 are held out for testing (125 / 50
sequences), as the paper's 5 / 2 speaker split. Features follow the paper: 12 MFCCs + log
energy (13 channels), 25 ms windows every 10 ms, pre-emphasis 0.97, each channel normalised
with the training set's mean and std.

Generation-time requirements only (the committed .npz makes them unnecessary at run time):
    apt-get install -y espeak-ng        # Debian package, tested with 1.51
    pip install python_speech_features  # 0.6; needs numpy and scipy

Usage:
    python -m experiments.make_spoken_words                 # -> experiments/out/spoken_words.npz
    python -m experiments.make_spoken_words --update-data   # rewrite the committed data set

Run time: a few seconds. Output: experiments/out/spoken_words.npz (ignored by git) or --out
FILE; only --update-data rewrites the committed experiments/data/spoken_words.npz that
experiments.spoken_words reads by default.
"""
import os
import subprocess
import tempfile

import numpy as np

from .common import HERE, OUT_DIR, make_parser

COMMITTED = HERE / "data" / "spoken_words.npz"

WORDS = [
    "making", "walking", "cooking", "looking", "working",
    "biblical", "cyclical", "technical", "classical", "critical",
    "tradition", "addition", "audition", "recognition", "competition",
    "musicians", "discussions", "regulations", "accusations", "conditions",
    "subway", "leeway", "freeway", "highway", "hallway",
]

# (espeak-ng voice, words per minute, pitch 0-99, split). Accents, voice variants, speeds and
# pitches all differ so that the two test voices are unseen "speakers".
VOICES = [
    ("en-us+m1", 150, 45, "train"),
    ("en-gb+f2", 165, 62, "train"),
    ("en-gb-scotland+m3", 140, 38, "train"),
    ("en-us+f4", 175, 70, "train"),
    ("en-029+m7", 155, 50, "train"),
    ("en-gb-x-rp+f1", 160, 66, "test"),
    ("en-us-nyc+m2", 145, 35, "test"),
]

SAMPLE_RATE = 16000  # TIMIT's rate; espeak-ng speaks at 22050 Hz and is resampled


def synthesize(word, voice, speed, pitch):
    """Speak one word with espeak-ng; return a float waveform at SAMPLE_RATE."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                        "-w", path, word], check=True)
        rate, wave = wavfile.read(path)
    wave = wave.astype(np.float64) / 32768.0
    return resample_poly(wave, SAMPLE_RATE, rate)


def trim_silence(wave, rel_threshold=0.02, pad=0.01):
    """Cut espeak's leading/trailing silence (TIMIT words are cut from sentences, no pauses)."""
    loud = np.flatnonzero(np.abs(wave) > rel_threshold * np.abs(wave).max())
    margin = int(pad * SAMPLE_RATE)
    return wave[max(loud[0] - margin, 0): loud[-1] + margin + 1]


def features(wave):
    """12 MFCCs + log energy every 10 ms over 25 ms windows, pre-emphasis 0.97 -> (T, 13)."""
    from python_speech_features import mfcc

    # appendEnergy replaces cepstrum c0 by the frame's log energy: 12 cepstra + energy.
    return mfcc(wave, samplerate=SAMPLE_RATE, winlen=0.025, winstep=0.01, numcep=13,
                nfilt=26, nfft=512, preemph=0.97, appendEnergy=True).astype(np.float32)


def build():
    """Return the data set as a dict of arrays ready for np.savez_compressed."""
    feats, labels, speakers, is_test = [], [], [], []
    for speaker, (voice, speed, pitch, split) in enumerate(VOICES):
        for label, word in enumerate(WORDS):
            feats.append(features(trim_silence(synthesize(word, voice, speed, pitch))))
            labels.append(label)
            speakers.append(speaker)
            is_test.append(split == "test")
    lengths = np.array([len(f) for f in feats], dtype=np.int32)
    is_test = np.array(is_test)
    train_frames = np.concatenate([f for f, t in zip(feats, is_test) if not t])
    mean, std = train_frames.mean(0), train_frames.std(0)
    # Stored already normalised (float16 keeps the file small; 3 significant digits is far
    # below the training noise of std 0.6). Offsets index the concatenated frames.
    frames = ((np.concatenate(feats) - mean) / std).astype(np.float16)
    return dict(
        frames=frames,
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32),
        labels=np.array(labels, dtype=np.int16),
        speakers=np.array(speakers, dtype=np.int16),
        is_test=is_test,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        words=np.array(WORDS),
        voices=np.array(["%s -s %d -p %d (%s)" % v for v in VOICES]),
    )


def build_parser():
    parser = make_parser("make_spoken_words", __doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, metavar="FILE",
                       help="where to write the .npz (default: experiments/out/spoken_words.npz, "
                            "which git ignores)")
    where.add_argument("--update-data", action="store_true",
                       help="write the committed experiments/data/spoken_words.npz instead of --out")
    return parser


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    if args.update_data:
        args.out = str(COMMITTED)
    elif args.out is None:
        args.out = str(OUT_DIR / "spoken_words.npz")
    return args


def main(argv=None):
    args = parse_args(argv)
    data = build()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **data)
    lengths = np.diff(data["offsets"])
    print("wrote %s: %d sequences (%d train / %d test), %d-%d frames (mean %.0f), %d KB"
          % (args.out, len(lengths), (~data["is_test"]).sum(), data["is_test"].sum(),
             lengths.min(), lengths.max(), lengths.mean(), os.path.getsize(args.out) // 1024))


if __name__ == "__main__":
    main()
