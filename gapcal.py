import sys, dataclasses; sys.path.insert(0, "/work/main/src")
import numpy as np
from facecue.cues import extract_cues, FaceCues
from facecue.generate import generate
from facecue.render import render
from facecue.io import read_image, VideoWriter, write_image
from facecue.motion import open_mouth
gap = lambda n: n[..., 14, 1] - n[..., 13, 1]
amounts = np.repeat([0.0, 0.03, 0.06, 0.1, 0.15, 0.2], 5)
for name in sys.argv[1].split(","):
    portrait = f"/tmp/exp/work/{name}_first.png"
    res = generate(portrait, "/tmp/exp/work/silence2.wav", "/tmp/exp/work/rest.mp4", emotion="neutral", workers=0, blink_rate=0, size=256, full=False)
    c = res.cues
    n = len(amounts)
    norm = np.repeat(c.normalized[:1], n, 0).astype(np.float64)
    norm = open_mouth(norm, amounts).astype(np.float32)
    cues = dataclasses.replace(c, normalized=norm, scale=c.scale[:1].repeat(n), rotation=c.rotation[:1].repeat(n, 0), translation=c.translation[:1].repeat(n, 0), gaze=c.gaze[:1].repeat(n, 0), aperture=c.aperture[:1].repeat(n, 0), valid=np.ones(n, bool))
    from facecue.landmarks import detect_landmarks
    image = read_image(portrait)
    pl = detect_landmarks(image)
    pc = FaceCues.from_landmarks(pl[None], 25, (image.shape[1], image.shape[0]))
    frames = list(render(image, pc.landmarks()[0], cues.landmarks(), output_size=256, full=False))
    with VideoWriter("/tmp/exp/work/gapcal.mp4", 25) as w:
        for f in frames: w.write(f)
    got = gap(extract_cues("/tmp/exp/work/gapcal.mp4", fps=25).normalized)
    want = gap(norm)
    write_image(f"/tmp/exp/gapcal_{name}.png", np.concatenate([frames[i] for i in (2, 12, 22, 27)], 1))
    print(name, " ".join(f"{w:.3f}->{g:.3f}" for w, g in zip(want[2::5], got[2::5])), flush=True)
