"""Named constants of facecue's signal chain. Derived values are computed here, never retyped."""

from __future__ import annotations

# --- audio ---------------------------------------------------------------------------------
SAMPLE_RATE = 16_000  # Hz, mono; every audio path resamples to this
N_FFT = 400  # samples per STFT window (25 ms at 16 kHz)
HOP_LENGTH = 160  # samples between STFT frames (10 ms at 16 kHz)
MEL_FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 100 mel frames per second
N_MELS = 80  # mel bands of the log-mel features
MEL_FMIN = 55.0  # Hz, lowest mel band edge
MEL_FMAX = SAMPLE_RATE / 2  # Hz, highest mel band edge (Nyquist)
MEL_SUBFRAMES = 4  # mel vectors per video frame (exact at 25 fps: 100 / 25)

# --- video ---------------------------------------------------------------------------------
DEFAULT_FPS = 25.0  # frames per second of generated video (MEAD / EAT convention)
CROP_SIZE = 256  # px, side of aligned face crops (MEAD / EAT convention)

# --- landmarks -----------------------------------------------------------------------------
N_MESH_POINTS = 468  # MediaPipe Face Mesh vertices
N_IRIS_POINTS = 10  # 5 per eye, appended by refine_landmarks=True
N_LANDMARKS = N_MESH_POINTS + N_IRIS_POINTS  # 478

# Iris indices (refine_landmarks=True): centre first, then 4 points on the iris rim.
# "Right"/"left" are the subject's own, as in MediaPipe: the subject's right eye is on the
# image's left side for a frontal, unmirrored photo.
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)

# Eye corners: (outer, inner) per eye.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)

# Eyelid pairs (upper, lower) across the eye opening, outer to inner.
RIGHT_EYELID_PAIRS = ((160, 144), (159, 145), (158, 153))
LEFT_EYELID_PAIRS = ((387, 373), (386, 374), (385, 380))

# Eyelid contours, outer to inner corner (upper and lower, same length, paired by position).
RIGHT_UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
RIGHT_LOWER_LID = (7, 163, 144, 145, 153, 154, 155)
LEFT_UPPER_LID = (466, 388, 387, 386, 385, 384, 398)
LEFT_LOWER_LID = (249, 390, 373, 374, 380, 381, 382)

# Inner-lip midline (upper, lower) and mouth corners.
INNER_LIP_MID = (13, 14)
MOUTH_CORNERS = (61, 291)

# The glabella between the brows and the nose down to its wings (its hull): where anger's and
# disgust's creases are (glabellar lines, nose wrinkle).
GLABELLA_NOSE = (9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 48, 278, 122, 351, 193, 417)

CUES_FORMAT_VERSION = 1  # bump when FaceCues' .npz layout changes

# --- emotions ------------------------------------------------------------------------------
# MEAD's 8 classes; the position in this tuple is the class id of every model and data file.
EMOTIONS = ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised")
MEAD_LEVELS = 3  # MEAD intensity levels 1..3; level n is intensity n / MEAD_LEVELS in 0..1
