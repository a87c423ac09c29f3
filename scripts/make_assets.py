"""Regenerate facecue's bundled demo assets (src/facecue/assets/).

* portrait.png: scikit-image's ``astronaut`` (NASA photograph of Eileen Collins, public domain),
  saved as a file so that facecue does not depend on scikit-image's data at run time.
* speech.wav: an English sentence synthesized with espeak-ng (voice en-us), 16 kHz mono 16-bit.
  espeak-ng's output carries no third-party rights.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "src" / "facecue" / "assets"
SENTENCE = (
    "Hello! I am a talking face made by facecue. "
    "My lips move with the words, and my eyes, blinks and head follow the emotion."
)


def main() -> None:
    from PIL import Image
    from skimage import data

    ASSETS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(ASSETS / "portrait.png", optimize=True)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt-get install -y espeak-ng sox)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(ASSETS / "speech.wav")], check=True)
    print("wrote", *sorted(p.name for p in ASSETS.iterdir()))


if __name__ == "__main__":
    main()
