"""Make the training cache of facecue's bundled stage-1 network (no paired MEAD audio-video here).

Usage: python scripts/make_teacher_data.py --out cache/teacher [--utterances 600] [-j 2]

Design (see docs/MODEL_CARD.md): every training clip pairs real or synthetic speech with the cue
sequence the **phonetic cue model** (facecue.phonetic) makes for it:

* speech: English sentences (written for this script) spoken by espeak-ng with many voices,
  variants, rates and pitches, with pauses between sentences; plus real speech of 5 speakers
  (../shared/data/speech/styletalk_*.wav, cut at pauses). The 4 other real recordings there
  (LibriSpeech x2, LJSpeech, JFK) are never used: they are the held-out lip-sync test set.
* mouth timing: pocketsphinx forced alignment to the known text (espeak) or all-phone decoding
  (real speech) -> visemes with co-articulation; mouth shapes, emotion expressions, head-pose,
  gaze and blink statistics are the real-data priors of facecue.phonetic (MEAD + talking videos).
* emotion and intensity: drawn uniformly (8 MEAD emotions, MEAD levels 1..3 -> 1/3, 2/3, 1).
* identity: the rest shape of a real face (shared portraits, MEAD actors, talking-video speakers;
  never the bundled demo portrait).
* the network hears the speech with mild noise and gain changes (SNR 20-45 dB), so that it does
  not rely on espeak's clean signal.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SENTENCES = [
    "The morning bus was late again, so we walked along the river.",
    "Please pass me the blue bowl before the soup gets cold.",
    "My brother bought a boat and moved to a small island.",
    "Who would have thought that a mouse could move so fast?",
    "We need more paper, more pens, and a bigger table.",
    "I have never seen such a beautiful view from the top of a mountain.",
    "Could you open the window? It is very warm in here.",
    "The museum opens at nine and closes at five on weekdays.",
    "She whispered something, but nobody could hear her.",
    "Fresh bread and butter make a perfect breakfast.",
    "Our team played well, but the other side was much stronger.",
    "You should visit the old market while you are in town.",
    "Maybe we can meet by the fountain at noon.",
    "The weather forecast promised sunshine, yet it rained all day.",
    "Watch out for the wet floor near the front door.",
    "I am not angry, I am just a little disappointed.",
    "This is the best news I have heard all week!",
    "Why did you move the boxes without asking me?",
    "A quiet voice is often more powerful than a loud one.",
    "The children laughed when the puppy chased its own tail.",
    "Nothing about this plan makes any sense to me.",
    "We were waiting for hours, and nobody told us anything.",
    "Thank you so much for coming to my birthday party.",
    "The lamp flickered, and then the whole room went dark.",
    "He played the violin beautifully at the wedding.",
    "Move the blue marble to the middle of the map.",
    "Bob bought my mom a blue boat for her birthday.",
    "Peter picked a peck of pickled peppers from the pot.",
    "Whose woolen shoes are those by the window?",
    "Few of you will ever forget that famous voyage.",
    "Think about the things that truly matter to you.",
    "The judge was fair, but the verdict was harsh.",
    "Our cat sleeps on the warm roof every afternoon.",
    "Yesterday I found an old photograph of my grandmother.",
    "Please remember to lock the garage before you leave.",
    "It is much too early to make a decision about this.",
    "The pilot announced that we would land in twenty minutes.",
    "Every summer we rent a cabin by the lake.",
    "I cannot believe you ate the whole pizza by yourself!",
    "The doctor said I should rest and drink more water.",
    "A gentle breeze moved the leaves of the oak tree.",
    "Look at the moon, it is so big and bright tonight.",
    "We should have listened to the warning on the radio.",
    "My phone battery died in the middle of the call.",
    "The bakery on the corner makes wonderful apple pie.",
    "You promised you would be here on time, and you were not.",
    "Music filled the room as the band began to play.",
    "Her new book is about a boy who builds a robot.",
    "Let me know when you are ready to go.",
    "The traffic was terrible on the way to the airport.",
    "Somebody left the lights on in the empty office.",
    "What a wonderful surprise to see you here!",
    "The river flooded the fields after the storm.",
    "I would like a cup of tea with milk, please.",
    "They painted the fence white and the door bright red.",
    "Our neighbours are moving to another city next month.",
    "It smells awful, what on earth is in that box?",
    "Be careful, the knife is very sharp.",
    "I feel so alone when everyone is away.",
    "Run, there is something moving in the bushes!",
    "The price of food keeps going up every month.",
    "We had a lovely picnic in the park on Sunday.",
    "My boss wants the report by Monday morning.",
    "Please speak slowly, my English is not very good.",
    "The cold wind blew through the open window.",
    "Mother made a huge pot of vegetable soup.",
    "Nobody believed him when he told the truth.",
    "Go over there and wait for me by the gate.",
    "I usually jog along the beach before work.",
    "The old man smiled and waved at the passing train.",
    "You owe me an apology for what you said.",
    "Our flight was cancelled because of the fog.",
    "The zoo has two new baby elephants.",
    "Jump over the puddle or your shoes will get wet.",
    "Maybe the answer was right in front of us all along.",
    "Three blue birds sat on the wire above the road.",
    "How many times do I have to remind you?",
    "Oh no, I think I left my wallet on the bus.",
    "The movie was so boring that I fell asleep.",
    "We will build a bridge across the valley.",
    "Autumn leaves were falling in the quiet garden.",
    "Put the milk back in the fridge when you are done.",
    "I beg you, please do not tell anyone about this.",
    "A warm bath and a good book, that is my plan.",
    "The soldiers marched through the muddy village.",
    "What time does the last boat leave the harbour?",
    "You look wonderful in that blue dress.",
    "The numbers on the screen were moving too quickly.",
    "Open your mouth wide and say ah.",
    "We lost the map, so we followed the moon.",
    "Pull the rope as hard as you can.",
    "Who broke my favourite mug?",
    "Good morning everyone, welcome to the meeting.",
    "I truly hope you feel better very soon.",
    "The shop was closed, so we went home empty handed.",
    "Everybody was shouting at the same time.",
    "Bring your umbrella, the sky looks grey and heavy.",
    "My grandfather grew beans and potatoes in his garden.",
    "This soup is too salty, but the bread is fine.",
    "The wolves howled under the pale winter moon.",
]

ESPEAK_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "adam", "Alex", "Alicia",
                   "Andrea", "Andy", "Annie", "belinda", "benjamin", "david", "ed", "edward", "john", "linda", "max",
                   "Michael", "paul", "rob", "robert", "steph", "zac", "grandpa", "klatt", "iven", "Lee", "quincy"]
HELD_OUT_VARIANTS = ("f5", "m7", "quincy")  # voices of the validation split
REAL_TRAINING_SPEECH = ("styletalk_KristiNoem", "styletalk_Obama_clip1", "styletalk_andrew_clip_1",
                        "styletalk_feifeili_clip1", "styletalk_reagan_clip1")


def identity_pool(data: Path) -> list:
    """Single-frame FaceCues of real faces (never the bundled demo portrait)."""
    from facecue.cues import extract_cues
    from facecue.io import iter_video_frames

    pool = []
    for image in sorted((data / "portraits").glob("*")):
        if "astronaut" in image.name:
            continue
        pool.append(extract_cues(image))
    for clip in sorted((data / "mead_clips").glob("*_neutral_level1_001.mp4")) + sorted((data / "talking").glob("*.mp4")):
        frame = next(iter(iter_video_frames(clip)))
        pool.append(extract_cues(frame))
    return pool


def synthesize(text_parts: list[str], voice: str, variant: str, rate: int, pitch: int, rng) -> np.ndarray:
    from facecue.io import read_audio

    pieces = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, text in enumerate(text_parts):
            wav = Path(tmp) / f"{k}.wav"
            subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(rate), "-p", str(pitch), "-w", str(wav), text],
                           check=True, capture_output=True)
            pieces.append(read_audio(wav))
            pieces.append(np.zeros(int(rng.uniform(0.15, 0.9) * 16000), np.float32))
    lead = np.zeros(int(rng.uniform(0.1, 0.6) * 16000), np.float32)
    return np.concatenate([lead, *pieces])


def augment(audio: np.ndarray, rng) -> np.ndarray:
    gain = 10 ** (rng.uniform(-12, 3) / 20)
    audio = audio * gain / (np.abs(audio).max() + 1e-9) * 0.7
    snr_db = rng.uniform(20, 45)
    power = np.mean(audio**2) + 1e-12
    noise = rng.standard_normal(len(audio)) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def make_clip(job: dict) -> dict:
    from facecue.audio import loudness_envelope, mel_frames, recognize_phones
    from facecue.constants import EMOTIONS
    from facecue.data import save_clip
    from facecue.phonetic import phonetic_cues

    rng = np.random.default_rng(job["seed"])
    pool = _POOL
    identity = pool[rng.integers(len(pool))]
    if job["kind"] == "espeak":
        clean = synthesize(job["text"], job["voice"], job["variant"], job["rate"], job["pitch"], rng)
        phones = recognize_phones(clean, text=" ".join(job["text"]))
    else:
        clean = job["audio"]
        phones = recognize_phones(clean)
    heard = augment(clean, rng)
    emotion = EMOTIONS[rng.integers(len(EMOTIONS))]
    intensity = float(rng.integers(1, 4)) / 3.0
    cues = phonetic_cues(heard, identity, emotion, intensity, seed=int(job["seed"]), phones=phones)
    n = cues.n_frames
    path = Path(job["out"]) / "clips" / f"{job['clip_id']}.npz"
    save_clip(path, cues, mel_frames(heard, 25.0, n), loudness_envelope(heard, 25.0, n), clip_id=job["clip_id"],
              emotion=emotion, intensity=intensity, speaker=job["speaker"], source="facecue.phonetic teacher",
              audio_source=job.get("audio_source", "espeak-ng"))
    return {"clip_id": job["clip_id"], "file": f"clips/{job['clip_id']}.npz", "emotion": emotion,
            "intensity": f"{intensity:.4f}", "speaker": job["speaker"], "n_frames": n, "fps": "25",
            "valid_fraction": "1.000", "source": "facecue.phonetic teacher", "audio_source": job.get("audio_source", "espeak-ng")}


_POOL: list = []


def _init(pool) -> None:
    global _POOL
    _POOL = pool
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def real_speech_chunks(data: Path, max_s: float = 9.0) -> list[tuple[str, np.ndarray]]:
    """Real training speech cut at the quietest point near every max_s seconds."""
    from facecue.audio import loudness_envelope
    from facecue.io import read_audio

    out = []
    for name in REAL_TRAINING_SPEECH:
        audio = read_audio(data / "speech" / f"{name}.wav")
        rms = loudness_envelope(audio, 100.0)
        start = 0
        while start < len(audio) - 16000:
            stop = min(len(audio), start + int(max_s * 16000))
            if stop < len(audio):
                lo = start + int(0.6 * max_s * 16000)
                window = rms[lo // 160 : stop // 160]
                stop = (lo // 160 + int(np.argmin(window))) * 160 if len(window) else stop
            out.append((name, audio[start:stop]))
            start = stop
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--utterances", type=int, default=600, help="espeak utterances")
    parser.add_argument("--real-repeats", type=int, default=4, help="emotions drawn per real speech chunk")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed (apt-get install -y espeak-ng)")
    from facecue.data import _write_index

    rng = np.random.default_rng(args.seed)
    (args.out / "clips").mkdir(parents=True, exist_ok=True)
    jobs = []
    for k in range(args.utterances):
        n_sentences = int(rng.integers(1, 4))
        variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
        voice = ESPEAK_VOICES[rng.integers(len(ESPEAK_VOICES))]
        jobs.append(dict(kind="espeak", clip_id=f"espeak_{k:05d}", seed=int(rng.integers(1 << 31)), out=str(args.out),
                         text=[SENTENCES[i] for i in rng.choice(len(SENTENCES), n_sentences, replace=False)],
                         voice=voice, variant=variant, rate=int(rng.integers(115, 205)), pitch=int(rng.integers(25, 75)),
                         speaker=f"espeak-{variant}"))
    for c, (name, audio) in enumerate(real_speech_chunks(args.data)):
        for r in range(args.real_repeats):
            jobs.append(dict(kind="real", clip_id=f"real_{name}_{c:03d}_{r}", seed=int(rng.integers(1 << 31)),
                             out=str(args.out), audio=audio, speaker=f"real-{name}", audio_source=name))
    pool = identity_pool(args.data)
    print(f"{len(jobs)} clips, {len(pool)} identities", flush=True)
    from tqdm import tqdm

    rows = {}
    with mp.get_context("spawn").Pool(args.jobs, initializer=_init, initargs=(pool,)) as workers:
        for row in tqdm(workers.imap_unordered(make_clip, jobs), total=len(jobs), desc="teacher clips"):
            rows[row["clip_id"]] = row
    _write_index(args.out, rows)
    write_teacher_settings(args.out)
    print(f"wrote {len(rows)} clips to {args.out}")


def write_teacher_settings(out: Path) -> None:
    """Record the teacher's emotion settings in the cache (``stage1.TEACHER_FILE``): the trainer
    stores them in its checkpoints, and the network path adds only what the expression set at
    inference draws unlike the one the network learnt (``stage1.add_expression_changes``)."""
    import json

    from facecue.phonetic import PRIORS_VERSION, emotion_settings
    from facecue.stage1 import TEACHER_FILE

    settings = {**emotion_settings(), "priors_version": PRIORS_VERSION}
    (out / TEACHER_FILE).write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
