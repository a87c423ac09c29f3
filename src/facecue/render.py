"""Stage 2: relocated landmarks -> frames of the portrait.

A renderer turns ``(portrait image, portrait landmarks, sequence of relocated landmarks)`` into
frames, one at a time (bounded memory for any length)::

    frames = facecue.render.render(portrait, portrait_landmarks, landmark_sequence)  # iterator
    for frame in frames: writer.write(frame)

Renderers are chosen by name (:func:`get_renderer`, :func:`available_renderers`); the default,
``"mesh"`` (:class:`MeshRenderer`), needs no weights. Other renderers (a trained "neural" one)
add themselves with :func:`register_renderer`, either as a class or as a lazy
``"module:attribute"`` string.

The mesh renderer
-----------------
A piecewise-affine warp of the portrait along the dense MediaPipe triangle mesh, from the
portrait's own landmarks to each frame's landmarks:

* **Mesh**: the triangles of ``FACEMESH_TESSELATION`` (edges -> 3-cycles, separating triangles
  dropped: 852 faces); the eye and mouth openings, holes of that mesh, are closed with strips of
  triangles between the lid (lip) contours; a thin lash band above each upper lid moves rigidly
  with the lid margin. Around the face oval, loops of anchor points (:data:`RINGS`) follow a
  decaying fraction of the oval's motion, down to a fixed outer loop outside which the portrait
  is left exactly as it is: the background stays still while the head moves, and hair and neck
  stretch smoothly in between.
* **Per frame**: the triangle ids of the *target* mesh are rasterized into an index buffer
  (far triangles first, so that the nose covers the far cheek on a head turn), each pixel takes
  its source coordinate from its triangle's inverse affine, and one ``cv2.remap`` samples the
  portrait at full resolution (the paste-back is the warp itself: no seam). Fold edges (a cheek's
  silhouette on a head turn) are anti-aliased. Everything that depends only on the portrait is
  computed once in ``prepare``.
* **Eyes**: the portrait's iris is found (MediaPipe's centre moved onto the dark iris, its radius
  ended where the sclera begins) and removed from the texture once, its place filled row by row
  with what lies beside it (sclera, the lashes' shadow); per frame the iris disc (from the
  portrait, the part the lids hid continued from its nearest seen pixels and its radial profile)
  is drawn at the target iris centre, clipped to the target lid opening with soft edges. A
  widened eye (surprise) keeps the lashes' shadow under the raised lid at its depth and shows the
  iris clear of it, rather than stretching the shadow over the opening. A closing lid stretches the
  upper-lid skin over the eye (blended toward a lash-free, smoothed copy of that skin so that it
  does not streak), the lashes stay a thin line, and the last sliver of the opening turns to
  lashes when the lids meet.
* **Mouth**: the interior is a layer composited inside the target inner-lip polygon (feathered).
  From a closed portrait mouth it is synthesized (dark cavity gradient, shaded upper teeth rigid
  with the upper lip, a tongue hint rising from the lower lip, all scaled to the face and shaded
  to the portrait's lighting); from an open portrait mouth the portrait's own interior can be
  reused (``mouth="auto"``, for re-enactment), its upper part moving rigidly with the upper lip
  (teeth are not stretched) and its lower part with the lower lip, with the cavity in between.
  Talking heads from a still (:func:`facecue.generate`) always synthesize it: they start from a
  closed mouth, and an open portrait's own teeth, stretched between other lip positions, showed
  as split blocks and kept a smiling portrait's grin in every emotion. The texture inside such a
  portrait's inner lips is repainted with its lips' colours first: the closed lips would still
  show the teeth as a light streak where they meet.

Everything is a deterministic function of the frame's landmarks (no temporal state), so seams
and the mouth interior cannot flicker unless the landmarks do.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .constants import (
    CROP_SIZE,
    EMOTIONS,
    INNER_LIP_MID,
    LEFT_EYE_CORNERS,
    LEFT_EYELID_PAIRS,
    LEFT_IRIS,
    LEFT_LOWER_LID,
    LEFT_UPPER_LID,
    MOUTH_CORNERS,
    N_LANDMARKS,
    N_MESH_POINTS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYELID_PAIRS,
    RIGHT_IRIS,
    RIGHT_LOWER_LID,
    RIGHT_UPPER_LID,
)
from .errors import InputError
from .inputs import check_wrinkles
from .landmarks import eye_corner_distance

# --- tunables of the mesh renderer ---------------------------------------------------------

# Anchor rings around the face oval: (distance beyond the oval as a fraction of the oval's
# radius from its centre, fraction of the oval's motion they follow). The first, close ring
# carries the rim of skin that MediaPipe's oval leaves outside (it would lag behind the face
# otherwise); the next ones let hair and neck stretch; the last one is fixed, and the portrait is
# left exactly as it is outside it (were it not fixed, a fixed loop on the image border is added).
RINGS: tuple[tuple[float, float], ...] = ((0.08, 0.95), (0.35, 0.6), (0.9, 0.2), (1.6, 0.0))
BORDER_MARGIN_PX = 2.0  # the fixed border loop lies this far outside the image (or the last ring)

IRIS_RADIUS_SCALE = 1.12  # MediaPipe's iris rim sits a little inside the limbus
DEFAULT_SCLERA_RGB = (212, 200, 192)
# The sclera's colour (the fallback of the filled iris, and the brightness that tells sclera from
# iris): the opening's pixels at least this far (x eye width) from the lids and at least as bright
# as this percentile of them (not the iris, lashes or shadow). An eye too small to leave such
# pixels (a face a few tens of pixels wide) takes its whole opening's pixels at that percentile:
# the fixed DEFAULT_SCLERA_RGB, bright in a dim portrait, drew white rings round widened irises.
SCLERA_SAMPLE_MARGIN = 0.05
SCLERA_PERCENTILE = 75.0
IRIS_MAX_SHIFT = 0.5  # x iris radius: how far the iris' dark mass may move MediaPipe's centre sideways
IRIS_LASH_DEPTH = 0.35  # x iris radius: the lashes' shadow under MediaPipe's upper-lid contour (not iris)
# A lid-hidden pupil: a narrow eye shows only the pupil's lower edge, which, continued up the
# columns of a widened eye, drew a horizontal slit. Its hidden part is drawn as a disc of
# PUPIL_FRACTION x the iris radius (pupils in indoor light: ~3-4 mm of a ~12 mm iris) in the seen
# pupil's colour, when the seen part near the centre is at most PUPIL_MAX_SHADE x the iris' median.
PUPIL_FRACTION = 0.33
PUPIL_MAX_SHADE = 0.7
IRIS_PLACE_SCLERA = 0.7  # how far the iris' place clear of the lashes' shadow is lightened toward the sclera
IRIS_PUPIL_FRACTION = 0.45  # x iris radius: the pupil; the disc's pixels outside it as bright as sclera are not iris
IRIS_LIMBUS_MARGIN = 0.1  # x iris radius (+ 1 pixel): the texture loses this much more round the iris
IRIS_MIN_RADIUS = 0.7  # x MediaPipe's (enlarged) iris radius: the least the sclera's edge may shrink it to
IRIS_SHADOW_REACH = 0.5  # x iris radius: how far the lid-hidden iris keeps its nearest seen colour (the lashes' shadow)
HOLE_DEPTH_BIAS = 0.03  # eye/mouth fills drawn behind neighbours: x eye distance (pixels of z)
# Lashes: a band this thick (x eye width) above the upper-lid margin moves rigidly with the margin,
# so that a closing lid stretches the lid skin above it, not the lashes.
LASH_BAND = 0.09
# Eye closure (1 - aperture / portrait's aperture) over which a closing lid turns to smoothed lid
# skin, and over which the last sliver of the opening turns to lashes. Both start past the
# narrowing that expressions make (angry, sad, happy: up to ~45 %), so a narrowed eye is drawn as
# a narrowed, open eye and only blinks (closure ~0.85) look shut.
LID_SKIN_CLOSURE = (0.5, 0.8)
LASH_CLOSURE = (0.7, 0.85)
# Eye aperture over the portrait's over which an eye is drawn as widened (the lashes' shadow kept
# under the raised lid, the iris clear of it): from about the wobble of speech to surprise's lids.
WIDENED_EYE = (1.05, 1.35)

MOUTH_OPEN_RATIO = 0.06  # portrait's inner-lip gap / mouth width above which its interior is reused
MOUTH_OPEN_MIN_PX = 2.0  # ... and at least this many pixels of gap
# Synthesized mouth interior, sizes in units of the outer-eye-corner distance (about 9 cm).
# Upper incisors' edge below the resting upper-lip line (fixed to the skull; the cues' rest face,
# MeshRenderer.set_rest_face, else the portrait's own): ~2.2 mm,
# the average adult's incisor display at rest (Vig & Brundo 1978: men 1.9 mm, women 3.4 mm). At
# 0.05 (~4.5 mm) the renderer showed more teeth than the real talking videos (teeth-like pixels
# inside the inner lips 0.08 too many on average, the recogniser read surprise's open mouth as
# angry on 4 of the 9 calibration portraits); see benchmarks/mouth_readback.py.
TEETH_HEIGHT = 0.025
TEETH_HALF_WIDTH = 0.24  # upper teeth visible up to this distance from the midline
TEETH_BARED = 0.03  # how far the upper lip can rise above the teeth's resting place (eye units)
# The lower row's edge follows the lower inner lip. Tried and not taken: the edge carried by the
# jaw (the chin, MediaPipe 152, below the nose base), shown up to 0.025-0.08 eye units above the
# lip when the lip drops further than the jaw. Driven by the real clips' own landmarks
# (benchmarks/mouth_readback.py, first 60 frames), the teeth-like share's error fell 0.163 ->
# 0.134 on the MEAD clips but rose 0.093 -> 0.133-0.157 on the talking videos, the read-back gap
# rose 1.04 -> 1.07 (p50), and phonetic lip sync on LibriSpeech 3436 fell to 0.494 at 0.05.
LOWER_TEETH_RISE = 0.025  # lower incisors' edge above the lower inner lip (they move with the jaw)
LOWER_TEETH_HALF_WIDTH = 0.17
LOWER_TEETH_SHADE = 0.8  # the lower row sits in the upper row's and the lip's shadow
TOOTH_EDGES = (0.0, 0.095, 0.165, 0.225)  # tooth boundaries from the midline (incisors, canine)
# Real talking mouths show less near-black cavity than this tongue leaves (benchmarks/mouth_readback.py,
# dark pixels), but a larger tongue (0.12 x 0.26, also capped at half the lip gap) filled narrow
# openings with lip colour: MediaPipe read them as closed and lip sync on the rendered video fell
# below 0.5 on one held-out clip (benchmarks/product_bars.py).
TONGUE_HALF_WIDTH = 0.22
TONGUE_HEIGHT = 0.09
TEETH_RGB = (236, 226, 206)  # in a well-lit portrait; scaled by the portrait's skin lightness
# ... which is kept at or above 0.55 x a well-lit face's (a dark skin's teeth are not grey), but
# lit teeth are never more than this many times as light as the skin: in an underexposed photo
# the floor drew them glowing (the bundled portrait at 0.15 x its brightness, skin lightness 26 of
# 255: the interior's 99th-percentile lightness 3.1 x the skin's, 1.6 x with the cap). Portraits
# that show their teeth measure 1.1-1.4 (andrew, M030, NASA, Obama); the cap binds only below a
# skin lightness of 61, darker than any portrait or video in the shared data (reagan's 91).
TEETH_MAX_OVER_SKIN = 2.0
# The teeth take the colour of the light on the portrait: a fixed ivory drew them cold grey-blue in
# warm-lit photographs and paintings (teeth_colour). Predicted from a clip's first frame (the
# renderer's own samplers) against the real teeth over the clip's first 100 frames (pixels inside
# the inner lips brighter than 0.75 x the cheeks' value, saturation < 0.3; the largest channel
# error of the colour / luma ratio, mean over clips): on the 24 MEAD clips TEETH_RGB 0.089; the
# first frame's own teeth where they show (23 clips), else the eye whites' shift, 0.018; the eye
# whites' shift alone 0.063 (x 0.7 of it 0.069, x 0.5 0.074, so all of it). On the 7 talking
# videos, not used to choose (only andrew's first frame shows teeth): TEETH_RGB 0.162, this 0.076.
TEETH_CHROMA_LIMIT = 0.35  # each channel of the teeth's colour / luma ratio stays within 1 +- this
TEETH_SAMPLE_MIN_PX = 10  # a portrait's own teeth give the synthesized ones their colour where this many show
TEETH_SAMPLE_MIN_VALUE = 0.75  # x the skin's HSV value: a tooth pixel is at least this bright
TEETH_SAMPLE_MAX_SATURATION = 0.3
# Lip gap at the midline (eye units) over which the upper teeth come into view and into the light:
# in barely parted lips real teeth are covered or in shadow (a white band there reads as bared teeth
# and MediaPipe reads such a mouth as opened far wider than its landmarks say).
TEETH_SHOW_GAP = (0.02, 0.09)
TEETH_SHADOW = 0.5  # brightness of teeth in the narrowest opening that shows them, x their lit brightness
NOSE_BASE = 2  # MediaPipe's subnasale: the skull's reference for the upper teeth
SKIN_PROBES = (50, 280, 151, 205, 425)  # cheeks, forehead: where the skin's lightness is read
# Real lips are thick and rounded at their inner edge: at MediaPipe's inner-lip points the mouth
# still shows lip, and the dark interior begins further in. The synthesized interior fades in over
# this fraction of the lip gap from each inner lip (the warped lips show there), and over at most
# MOUTH_LIP_INSET_MAX eye units (the lip's roll does not grow with the jaw: a wide-open mouth would
# show a smeared band of stretched lip over its teeth). Filling the whole inner polygon made
# MediaPipe read the rendered mouth 1.32x as open as drawn at p50 (mean of the 7 talking videos
# re-driven by their own landmarks, benchmarks/mouth_readback.py).
MOUTH_LIP_INSET = 0.3
MOUTH_LIP_INSET_MAX = 0.025
# Real mouths are lighter inside than these colours: driven by the real clips' own landmarks
# (benchmarks/mouth_readback.py, first 60 frames), the rendered interiors hold 0.29 (MEAD) and
# 0.14 (talking videos) more dark pixels (value < 0.4 x the cheeks') than the real ones, and the
# real clips' median non-teeth interior pixel of their most open frames is about 0.5-0.6 x the
# cheeks' colour in every channel. A cavity at 0.35 / 0.65 x the portrait's skin colour matched
# the dark share (mean |error| 0.11 MEAD, 0.09 talking) but moved phonetic lip sync on LibriSpeech
# 3436 (benchmarks/product_bars.py) to 0.494, and 0.30 / 0.60 to 0.500. Lighting only the middle
# of wide-open mouths (0.55 x the skin colour from a lip gap of 0.06 to 0.16 eye units, the lips
# keeping a dark rim 0.02-0.06 wide) matched it too (0.12 MEAD, 0.08 talking) and gave 0.488 there,
# though on the 7 calibration recordings the same measure barely moved (mean 0.684 -> 0.681) and
# the recogniser's top-1 on the calibration portraits went 33 -> 31 of 54. That clip's 0.507 moves
# by +-0.02 with any change of the mouth's look, so these stay until lip sync has more margin (the
# real talking videos score -0.01 to 0.42 on it: docs/expressiveness/README.md). Re-measured on
# 2026-12-04 with more margin (that clip 0.555): 0.35 / 0.65 x the skin colour took the talking
# videos' dark-share error 0.153 -> 0.087 and lip sync to 0.582 / 0.534 / 0.610 / 0.783, but the
# recogniser's top-1 on the calibration set 36 -> 34 of 54 (angry 7 -> 6, surprised 8 -> 7, mean
# p(surprised) 0.585 -> 0.514: it reads surprise from a dark open mouth), so they stay.
# Real MEAD level-3 speech bares its teeth in most emotions (docs/calibration/mead_sheet.jpg):
# angry and disgusted talk through nearly clenched rows, fear and happy show both rows, sad and
# contempt show the lower row on one or both sides; surprise drops the jaw instead. How much each
# emotion bares them at intensity 1 (EMOTIONS order; the weights given by set_expression scale it):
# the upper row shows deeper and lit in narrow openings, and the lower row rises from the lower
# lip toward the upper one (the jaw stays up while the lips part). Chosen on the calibration set:
# mean p(target) angry 0.427 -> 0.453, fear 0.267 -> 0.281, happy 0.738 -> 0.789 against none,
# with the same top-1; sadness at 0.5 lost one of 9 readings and surprise at 0.6 lowered p(surprised)
# 0.50 -> 0.47, so both stay at 0.
EMOTION_TEETH_BARED = (0.0, 1.0, 0.5, 1.0, 1.0, 0.8, 0.0, 0.0)
BARED_TEETH_HEIGHT = 0.045  # upper incisors' visible height when fully bared (eye units)
BARED_LOWER_RISE = 0.05  # lower incisors' edge above the lower inner lip when fully bared
BARED_LOWER_HALF_WIDTH = 0.21
BARED_SHOW_GAP = (0.008, 0.04)  # lip gap over which bared teeth come into view and into the light
# Real level-3 emotional speech shows more of both rows the wider it opens: driven by the 24 MEAD
# clips' own landmarks and emotions (benchmarks/mouth_readback.py --set mead, 60 frames), teeth-like
# pixels fill 0.2-0.55 of the interior in the wider two thirds of frames, the fixed rows 0.03-0.24,
# the rest a near-black cavity. Beyond a lip gap of BARED_GROWTH_FROM at the midline (eye units),
# a baring emotion's rows grow with the gap: the upper row's visible height by BARED_TEETH_GROWTH
# x the extra gap (at most MAX_TEETH_HEIGHT, ~8 mm of an incisor's ~10), the lower row's rise by
# BARED_LOWER_GROWTH x it (at most MAX_LOWER_TEETH_RISE), times how far the emotion bares them.
# There the teeth-like share's error went 0.141 -> 0.124 (signed +0.098 -> +0.063: real still
# shows more) and the dark share's 0.300 -> 0.276; on the calibration set angry 6 -> 7 of 9, mean
# p(disgusted) 0.077 -> 0.089, p(happy) 0.789 -> 0.813, p(fear) 0.220 -> 0.217, the same readings
# otherwise. Growing from a closed mouth (0.125, dark 0.247) closed the cavity between the rows of
# slightly parted angry lips; 0.3 / 0.2 or 0.4 / 0.3 moved the errors little (0.121, 0.117). Growing
# every emotion's rows (0.12 / 0.08 from 0) matched MEAD (0.113) but showed teeth the calm talking
# videos do not (their error 0.091 -> 0.129).
BARED_GROWTH_FROM = 0.1
BARED_TEETH_GROWTH = 0.2
BARED_LOWER_GROWTH = 0.12
MAX_TEETH_HEIGHT = 0.09
MAX_LOWER_TEETH_RISE = 0.07
CAVITY_DARK_RGB = (28, 9, 11)
CAVITY_LIGHT_RGB = (82, 30, 34)
TONGUE_RGB = (158, 66, 72)
# The interior's colours are for a colour photograph. A portrait whose skin (SKIN_PROBES) is less
# colourful than SKIN_FULL_CHROMA (HSV saturation of its mean colour) gets them proportionally
# greyer: a black-and-white photo (0) a grey mouth, where it showed a red tongue and cavity in a
# grey face. Every colour portrait and video in the shared data measures 0.148 (the andrew talking
# video, under a cool light) to 0.59, and keeps its colours.
SKIN_FULL_CHROMA = 0.12
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 luma from RGB
# A toned photograph (sepia, or any one-colour print: a black-and-white one too) has one colour
# at every lightness, its skin included: its mouth interior gets that colour instead (a sepia
# photo showed a red tongue in a brown face). Toned when at least TONED_PHOTO_SHARE of the
# mid-tone pixels (and the skin) lie within TONED_PHOTO_TOLERANCE of the image's median
# colour / luma ratio. Measured at TONED_PHOTO_SIDE: every colour portrait, MEAD clip and
# talking video in the shared data at most 0.73; their sepia copies 0.996-1.0, and 0.89-1.0 saved
# as JPEG quality 60 with grain (sigma 4 levels); greyscale copies 1.0.
TONED_PHOTO_SHARE = 0.85
TONED_PHOTO_TOLERANCE = 0.08
TONED_PHOTO_SIDE = 128  # px: the image is measured at most this large (averaging away grain and JPEG noise)


# --- registry --------------------------------------------------------------------------------


class Renderer(ABC):
    """A stage-2 renderer: ``prepare`` once on the portrait, then ``render_frame`` per frame.

    Landmarks given to a renderer are in the pixel space of the image given to ``prepare``
    (:func:`render` takes care of resizing / cropping).
    """

    name = "renderer"
    #: frames :func:`render` hands to :meth:`render_batch` at a time (a batched renderer raises it)
    batch_size = 1
    #: whether a frame is a function of its landmarks and emotion weights only, so that
    #: :func:`render` may render frames in worker processes (a pickled copy of the prepared
    #: renderer in each; see :mod:`facecue.parallel`)
    parallel = False

    @abstractmethod
    def prepare(self, portrait: np.ndarray, portrait_landmarks: np.ndarray) -> None:
        """Precompute what depends only on the portrait ``(H, W, 3) uint8`` and its ``(478, 3)`` landmarks."""

    @abstractmethod
    def render_frame(self, landmarks: np.ndarray) -> np.ndarray:
        """``(478, 3)`` target landmarks (pixels) -> ``(H, W, 3) uint8`` frame."""

    def render_batch(self, landmarks: Sequence[np.ndarray]) -> list[np.ndarray]:
        """A few ``(478, 3)`` landmark arrays -> their frames; renderers that can batch override it."""
        return [self.render_frame(points) for points in landmarks]

    def render(self, landmark_sequence: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Frames for an iterable of ``(478, 3)`` landmark arrays, lazily, one at a time."""
        for index, landmarks in enumerate(landmark_sequence):
            yield self.render_frame(check_landmarks(landmarks, f"landmark frame {index}"))


_RENDERERS: dict[str, Callable[..., Renderer] | str] = {}

#: where a network-based renderer runs: "auto" = the GPU when torch sees one, else the CPU
RENDER_DEVICES = ("auto", "cpu", "cuda")
#: renderers that are trained networks: they need ``checkpoint=`` and take ``device=`` (the mesh
#: renderer is plain NumPy / OpenCV and takes neither)
NETWORK_RENDERERS = ("neural",)


def renderer_options(renderer: str, checkpoint: str | Path | None = None, device: str = "auto",
                     mouth: str | None = None, wrinkles: float | None = None) -> dict:
    """Check the user's renderer choices (CLI, UI, batch, :func:`facecue.generate`) before any
    model is loaded, and return them as :func:`get_renderer` keyword options.

    renderer : a registered name (:func:`available_renderers`)
    checkpoint : trained weights; required by the renderers in :data:`NETWORK_RENDERERS`
    device : one of :data:`RENDER_DEVICES`; passed on only to :data:`NETWORK_RENDERERS`
    mouth : the mesh renderer's mouth interior (:class:`MeshRenderer`); None: its default
    wrinkles : strength of the emotions' wrinkles and folds, 0..1, for the mesh renderer
        (:class:`MeshRenderer`'s ``expression_detail``); None: its default (1)
    """
    if renderer not in _RENDERERS:
        raise InputError(None, f"unknown renderer {renderer!r}; available: {', '.join(available_renderers())}")
    if device not in RENDER_DEVICES:
        raise InputError(None, f"device must be one of {', '.join(RENDER_DEVICES)}, got {device!r}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise InputError(checkpoint, "renderer checkpoint not found")
    options: dict = {}
    if checkpoint is not None:
        options["checkpoint"] = str(checkpoint)
    if renderer in NETWORK_RENDERERS:
        if checkpoint is None:
            raise InputError(None, f"the {renderer} renderer needs trained weights: pass --renderer-checkpoint "
                             "(facecue train renderer, then facecue train mapper)")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise InputError(None, "device cuda was asked for, but torch sees no CUDA GPU here: use cpu or auto")
        options["device"] = device
    if wrinkles is not None:
        check_wrinkles(wrinkles)
    if mouth is not None and renderer == "mesh":
        options["mouth"] = mouth
    if wrinkles is not None and renderer == "mesh":
        options["expression_detail"] = float(wrinkles)
    return options



def register_renderer(name: str, factory: Callable[..., Renderer] | str, *, replace: bool = False) -> None:
    """Make a renderer available by name.

    Parameters
    ----------
    name : the name given to :func:`get_renderer` / ``facecue render --renderer``
    factory : a class (or callable) taking keyword options and returning a :class:`Renderer`, or
        a ``"package.module:attribute"`` string imported on first use (keeps start-up fast and
        lets optional renderers with heavy dependencies register without importing them)
    replace : allow replacing an existing entry
    """
    if not replace and name in _RENDERERS:
        raise ValueError(f"a renderer named {name!r} is already registered")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"lazy renderer must be 'module:attribute', got {factory!r}")
    _RENDERERS[name] = factory


def available_renderers() -> list[str]:
    """Names accepted by :func:`get_renderer`, sorted."""
    return sorted(_RENDERERS)


def get_renderer(name: str = "mesh", **options) -> Renderer:
    """A new renderer by name, built with ``options`` (see the renderer's class)."""
    if name not in _RENDERERS:
        raise InputError(None, f"unknown renderer {name!r}; available: {', '.join(available_renderers())}")
    factory = _RENDERERS[name]
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
        _RENDERERS[name] = factory
    return factory(**options)


# --- input checks --------------------------------------------------------------------------


def check_portrait(image: np.ndarray) -> np.ndarray:
    """Validate an ``(H, W, 3) uint8`` RGB portrait; returns it C-contiguous."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        got = getattr(image, "shape", type(image).__name__)
        raise InputError(None, f"portrait must be an (H, W, 3) RGB image, got {got}")
    if image.dtype != np.uint8:
        raise InputError(None, f"portrait must be uint8, got {image.dtype}")
    if min(image.shape[:2]) < 16:
        raise InputError(None, f"portrait of {image.shape[1]}x{image.shape[0]} px is too small")
    return np.ascontiguousarray(image)


def check_landmarks(landmarks: np.ndarray, what: str = "landmarks") -> np.ndarray:
    """Validate ``(478, 3)`` finite pixel landmarks; returns float32."""
    arr = np.asarray(landmarks)
    if arr.shape != (N_LANDMARKS, 3):
        raise InputError(None, f"{what}: expected {N_LANDMARKS} landmarks of shape ({N_LANDMARKS}, 3) "
                         f"(MediaPipe mesh + iris), got shape {arr.shape}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise InputError(None, f"{what}: landmarks contain NaN or infinite values")
    return arr


# --- mesh topology (derived from MediaPipe's edge list; nothing shipped) -------------------


@dataclass(frozen=True)
class MeshTopology:
    """Triangles and contours of the MediaPipe face mesh.

    face_triangles : (852, 3) int vertex indices (0..467)
    oval : (36,) the mesh's outer boundary loop, in order
    eye_loops : per eye (right, left) the (16,) lid-margin loop; upper/lower chains corner to corner
    mouth_loop : (20,) inner-lip loop; mouth_upper / mouth_lower chains corner to corner (11,)
    hole_triangles : (46, 3) strips closing both eyes and the mouth
    """

    face_triangles: np.ndarray
    oval: np.ndarray
    eye_loops: tuple[np.ndarray, np.ndarray]
    eye_upper: tuple[np.ndarray, np.ndarray]
    eye_lower: tuple[np.ndarray, np.ndarray]
    mouth_loop: np.ndarray
    mouth_upper: np.ndarray
    mouth_lower: np.ndarray
    hole_triangles: np.ndarray


def triangles_from_edges(edges: Iterable[tuple[int, int]]) -> np.ndarray:
    """Faces of a triangle mesh given as an edge list: its 3-cycles, minus separating triangles.

    A 3-cycle whose every edge is shared by more than two 3-cycles is not a face (it encloses a
    vertex); such cycles are dropped until every edge borders at most two faces.
    """
    unique = {tuple(sorted(map(int, e))) for e in edges}
    neighbours: dict[int, set[int]] = defaultdict(set)
    for a, b in unique:
        neighbours[a].add(b)
        neighbours[b].add(a)
    cycles = {tuple(sorted((a, b, c))) for a, b in unique for c in neighbours[a] & neighbours[b]}
    while True:
        use: dict[tuple[int, int], int] = defaultdict(int)
        for t in cycles:
            for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])):
                use[e] += 1
        crowded = [t for t in cycles if all(use[e] > 2 for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))]
        if not crowded:
            break
        cycles -= set(crowded)
    return np.array(sorted(cycles), dtype=np.int64)


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """Ordered vertex loops of the edges that border exactly one triangle."""
    use: dict[tuple[int, int], int] = defaultdict(int)
    for t in triangles:
        for i in range(3):
            use[tuple(sorted((int(t[i]), int(t[(i + 1) % 3]))))] += 1
    adjacent: dict[int, list[int]] = defaultdict(list)
    for (a, b), n in use.items():
        if n == 1:
            adjacent[a].append(b)
            adjacent[b].append(a)
    loops, seen = [], set()
    for start in sorted(adjacent):
        if start in seen:
            continue
        loop, previous, current = [start], None, start
        seen.add(start)
        while True:
            following = [v for v in adjacent[current] if v != previous and v not in seen]
            if not following:
                break
            previous, current = current, following[0]
            loop.append(current)
            seen.add(current)
        loops.append(np.array(loop, dtype=np.int64))
    return loops


def _split_loop(loop: np.ndarray, corner_a: int, corner_b: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a closed loop at two of its vertices into (upper, lower) chains from a to b."""
    loop = list(loop)
    i = loop.index(corner_a)
    loop = loop[i:] + loop[:i]
    j = loop.index(corner_b)
    forward = np.array(loop[: j + 1])
    backward = np.array([loop[0]] + loop[j:][::-1])
    if points[forward[1:-1], 1].mean() < points[backward[1:-1], 1].mean():  # y down: smaller is upper
        return forward, backward
    return backward, forward


def _strip(upper: np.ndarray, lower: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles between two chains that share their end points (same length)."""
    if len(upper) != len(lower):
        raise ValueError("strip chains must have the same length")
    n = len(upper) - 1
    tris = [(upper[0], upper[1], lower[1])]
    for i in range(1, n - 1):
        tris += [(upper[i], upper[i + 1], lower[i + 1]), (upper[i], lower[i + 1], lower[i])]
    tris.append((upper[n - 1], upper[n], lower[n - 1]))
    return [tuple(int(v) for v in t) for t in tris]


@lru_cache(maxsize=1)
def mesh_topology() -> MeshTopology:
    """The face mesh's triangles and contours, derived from ``FACEMESH_TESSELATION``."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    from .cues import default_template

    template = default_template().points
    triangles = triangles_from_edges(FACEMESH_TESSELATION)
    loops = boundary_loops(triangles)
    oval = max(loops, key=len)

    def loop_with(vertex: int) -> np.ndarray:
        return next(lp for lp in loops if vertex in set(lp.tolist()))

    eye_loops, uppers, lowers = [], [], []
    for corners in (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS):
        lp = loop_with(corners[0])
        up, lo = _split_loop(lp, corners[0], corners[1], template)
        eye_loops.append(lp)
        uppers.append(up)
        lowers.append(lo)
    mouth_loop = loop_with(INNER_LIP_MID[0])
    # inner mouth corners: the loop's vertices nearest to the outer lip corners
    loop_pts = template[mouth_loop, :2]
    inner = [int(mouth_loop[np.argmin(np.linalg.norm(loop_pts - template[c, :2], axis=1))]) for c in MOUTH_CORNERS]
    mouth_upper, mouth_lower = _split_loop(mouth_loop, inner[0], inner[1], template)
    holes = _strip(uppers[0], lowers[0]) + _strip(uppers[1], lowers[1]) + _strip(mouth_upper, mouth_lower)
    return MeshTopology(
        face_triangles=triangles,
        oval=oval,
        eye_loops=(eye_loops[0], eye_loops[1]),
        eye_upper=(uppers[0], uppers[1]),
        eye_lower=(lowers[0], lowers[1]),
        mouth_loop=mouth_loop,
        mouth_upper=mouth_upper,
        mouth_lower=mouth_lower,
        hole_triangles=np.array(holes, dtype=np.int64),
    )


# --- small geometry helpers ----------------------------------------------------------------

MAP_STEP_MIN_PX = 160  # warped areas at least this wide get maps on a 2-pixel grid
MAP_STEP_MAX_GRID = 640  # grid points across the widest warped area, at most


def default_map_step(width: int, height: int) -> int:
    """Grid spacing (pixels) of the warp's coordinate maps for a ``width`` x ``height`` warped area.

    The maps are affine inside each triangle, so they interpolate almost exactly from a grid;
    only triangle edges and folds are softened, over about one grid step. A 2-pixel grid
    costs a quarter of the rasterised triangles and map evaluations: 27 % less time per 256 px
    frame, 45.7 dB PSNR (worst of 200 scripted frames) against the exact maps, lips and teeth
    indistinguishable at 5x. Small areas keep the exact maps; wider ones than
    ``2 * MAP_STEP_MAX_GRID`` pixels get coarser grids."""
    widest = max(int(width), int(height))
    if widest < MAP_STEP_MIN_PX:
        return 1
    return max(2, int(math.ceil(widest / MAP_STEP_MAX_GRID)))


def _affines(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps taking ``dst`` triangles onto ``src`` triangles.

    src, dst : (N, 3, 2). Returns (N, 2, 3) float64 with ``src = A @ [x, y, 1]`` for points of dst.
    Degenerate dst triangles map to their source centroid.
    """
    # elementwise on (N,) columns: ~4x faster than stacked 2x2 matmuls for ~1200 triangles
    d1x, d1y = dst[:, 1, 0] - dst[:, 0, 0], dst[:, 1, 1] - dst[:, 0, 1]
    d2x, d2y = dst[:, 2, 0] - dst[:, 0, 0], dst[:, 2, 1] - dst[:, 0, 1]
    det = d1x * d2y - d1y * d2x
    ok = np.abs(det) > 1e-9
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    # inverse of the 2x2 [d1 d2] (columns)
    i00, i01 = d2y * inv_det, -d2x * inv_det
    i10, i11 = -d1y * inv_det, d1x * inv_det
    s1x, s1y = src[:, 1, 0] - src[:, 0, 0], src[:, 1, 1] - src[:, 0, 1]
    s2x, s2y = src[:, 2, 0] - src[:, 0, 0], src[:, 2, 1] - src[:, 0, 1]
    out = np.empty((len(dst), 2, 3))
    out[:, 0, 0] = s1x * i00 + s2x * i10
    out[:, 0, 1] = s1x * i01 + s2x * i11
    out[:, 1, 0] = s1y * i00 + s2y * i10
    out[:, 1, 1] = s1y * i01 + s2y * i11
    out[:, 0, 2] = src[:, 0, 0] - (out[:, 0, 0] * dst[:, 0, 0] + out[:, 0, 1] * dst[:, 0, 1])
    out[:, 1, 2] = src[:, 0, 1] - (out[:, 1, 0] * dst[:, 0, 0] + out[:, 1, 1] * dst[:, 0, 1])
    if not ok.all():
        out[~ok, :, 2] = src[~ok].mean(axis=1)
    return out


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.minimum(np.maximum((x - lo) / (hi - lo), 0.0), 1.0)  # np.clip's values, half its call overhead
    return t * t * (3.0 - 2.0 * t)


def _smoothstep_scalar(x: float, lo: float, hi: float) -> float:
    """:func:`_smoothstep` of one number, in plain floats."""
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _polygon_mask(shape: tuple[int, int], polygon: np.ndarray, origin: np.ndarray, blur: float) -> np.ndarray:
    """Anti-aliased filled polygon (pixels, in an image patch at ``origin``) as float32 in [0, 1]."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round((polygon - origin) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    out = mask.astype(np.float32) * (1.0 / 255.0)
    if blur > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    return out


def _patch_box(points: np.ndarray, pad: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, x1, y1) around points, padded, clipped; None if empty."""
    x0 = max(int(math.floor(points[:, 0].min() - pad)), 0)
    y0 = max(int(math.floor(points[:, 1].min() - pad)), 0)
    x1 = min(int(math.ceil(points[:, 0].max() + pad)) + 1, width)
    y1 = min(int(math.ceil(points[:, 1].max() + pad)) + 1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def _per_channel(weights: np.ndarray) -> np.ndarray:
    """(h, w) weights repeated to (h, w, 3), in their own dtype: multiplying an RGB image by that
    is several times faster than numpy's broadcast of ``weights[..., None]`` over a last axis of 3,
    with the same values."""
    if weights.dtype == np.float32:
        return cv2.cvtColor(weights, cv2.COLOR_GRAY2RGB)
    return np.repeat(weights[..., None], 3, axis=2)


def _blend(frame: np.ndarray, box, colour: np.ndarray, alpha: np.ndarray) -> None:
    """frame[box] = alpha * colour + (1 - alpha) * frame[box], in place."""
    x0, y0, x1, y1 = box
    region = frame[y0:y1, x0:x1].astype(np.float32)
    delta = colour - region
    delta *= _per_channel(alpha)
    region += delta
    region += 0.5
    frame[y0:y1, x0:x1] = np.clip(region, 0, 255, out=region)


# --- lash band -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LashBand:
    """Extra vertices just above each upper-lid margin (see :data:`LASH_BAND`).

    margin : (K,) landmark index of each upper-lid vertex (both eyes, corners excluded)
    above : (K, 4) landmark indices of vertices above each margin vertex (repeated to fill)
    taper : (K,) thickness profile along the lid, 1 in the middle
    eye : (K,) 0 right, 1 left
    face_triangles : the face triangles (with hole fills) re-wired to the band's vertices
        (vertex ids >= 468 are band vertices ``468 + k``)
    strips : triangles between the margins and the bands
    """

    margin: np.ndarray
    above: np.ndarray
    taper: np.ndarray
    eye: np.ndarray
    face_triangles: np.ndarray
    strips: np.ndarray


@lru_cache(maxsize=1)
def _lash_band() -> _LashBand:
    topo = mesh_topology()
    triangles = topo.face_triangles.copy()
    margin, above, taper, eye, strips = [], [], [], [], []
    for side in (0, 1):
        chain = topo.eye_upper[side]
        loop = set(topo.eye_loops[side].tolist())
        inner = chain[1:-1]
        band_ids = []
        for i, vertex in enumerate(inner):
            k = len(margin)
            neighbours = sorted({int(v) for t in topo.face_triangles if vertex in t for v in t} - loop)
            margin.append(int(vertex))
            above.append((neighbours * 4)[:4])
            taper.append(math.sqrt(math.sin(math.pi * (i + 1) / (len(inner) + 1))))
            eye.append(side)
            band_ids.append(N_MESH_POINTS + k)
            triangles[triangles == vertex] = N_MESH_POINTS + k
        band_chain = np.array([chain[0], *band_ids, chain[-1]])
        strips += _strip(band_chain, chain)
    return _LashBand(np.array(margin), np.array(above), np.array(taper), np.array(eye), triangles,
                     np.array(strips, dtype=np.int64))


def _lash_points(pts: np.ndarray, band: _LashBand) -> np.ndarray:
    """(K, 2) band vertices for landmarks ``pts``: the margin moved toward the skin above by a
    thickness proportional to the eye's width, at most 60% of the way."""
    margin = pts[band.margin, :2]
    toward = pts[band.above, :2].mean(axis=1) - margin
    length = np.linalg.norm(toward, axis=1) + 1e-9
    widths = np.array([np.linalg.norm(pts[c[0], :2] - pts[c[1], :2]) for c in (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS)])
    thickness = np.minimum(LASH_BAND * widths[band.eye] * band.taper, 0.6 * length)
    return margin + toward * (thickness / length)[:, None]


# --- eyes ----------------------------------------------------------------------------------


@dataclass
class _EyeModel:
    loop: np.ndarray  # (16,) lid-margin loop indices
    iris: int  # iris centre index
    rim: tuple[int, ...]
    corners: tuple[int, int]
    centre: np.ndarray  # (2,) source iris centre, pixels
    radius: float  # source iris radius (enlarged), pixels
    width: float  # source eye width (corner to corner), pixels
    patch: np.ndarray  # (h, w, 3) float32 iris colours around the centre
    patch_alpha: np.ndarray  # (h, w) float32 disc
    patch_origin: np.ndarray  # (2,) pixel position of patch[0, 0]
    side: int = 0
    aperture: float = 0.3  # the portrait's lid gap over eye width
    lash: np.ndarray | None = None  # (3,) lash colour, drawn over the opening's last sliver
    offset: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (2,) centre - MediaPipe's iris centre, pixels
    # a wider-opened eye: the iris clear of the lashes' shadow (h, w, 3), the shadow's depth under
    # the upper lid (source pixels) and its darkening of the iris (0..1)
    patch_open: np.ndarray | None = None
    lash_shadow_px: float = 0.0
    lash_shadow: float = 0.0
    sclera: np.ndarray | None = None  # (3,) float32 the sclera's colour where clear sclera was measured, else None


def _prepare_eye(image: np.ndarray, texture: np.ndarray, pts: np.ndarray, topo: MeshTopology, side: int) -> _EyeModel:
    """Iris patch of one eye and, in ``texture`` (modified in place), the eye without its iris.

    MediaPipe's iris can sit off the dark iris and be too big on small portraits (half a radius
    at 256 px): its centre is moved sideways onto the eye's dark mass, and its radius shrunk to
    where the sclera begins. The iris' place in the texture is filled, row by row, with what lies
    beside it (a wider eye or a moved iris shows it), and the iris patch continues under the lids.
    """
    height, width = image.shape[:2]
    iris_index = (RIGHT_IRIS, LEFT_IRIS)[side]
    corners = (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS)[side]
    loop = topo.eye_loops[side]
    landmark_centre = pts[iris_index[0], :2].astype(np.float64)
    rim = pts[list(iris_index[1:]), :2]
    radius = float(np.linalg.norm(rim - landmark_centre, axis=1).mean()) * IRIS_RADIUS_SCALE
    eye_width = float(np.linalg.norm(pts[corners[0], :2] - pts[corners[1], :2]))
    radius = float(np.clip(radius, 0.5, 0.45 * eye_width + 0.5))
    polygon = pts[loop, :2].astype(np.float64)
    reach = (1.0 + IRIS_MAX_SHIFT) * radius + 2
    box = _patch_box(np.vstack([polygon, landmark_centre[None] - reach, landmark_centre[None] + reach]), 3,
                     width, height)
    model = _EyeModel(loop, iris_index[0], tuple(iris_index[1:]), corners, landmark_centre.copy(), radius, eye_width,
                      np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.float32), landmark_centre.copy(),
                      side, _aperture(pts, side))
    if box is None:
        return model
    x0, y0, x1, y1 = box
    origin = np.array([x0, y0], np.float64)
    crop = image[y0:y1, x0:x1].astype(np.float32)
    lum = crop.mean(axis=2)
    opening = _polygon_mask(crop.shape[:2], polygon, origin, 0.0)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    inside = opening > 0.6
    # the sclera: the opening's brighter pixels clear of the lids and of the pupil's catchlights
    dist = np.hypot(xx - landmark_centre[0], yy - landmark_centre[1])
    pool = _eroded(inside, max(1, int(round(SCLERA_SAMPLE_MARGIN * eye_width)))) & (dist > 0.5 * radius)

    def lighter(mask: np.ndarray, percentile: float) -> np.ndarray:  # mask's pixels at least this light
        return mask & (lum >= np.percentile(lum[mask], percentile))

    bright = lighter(pool, SCLERA_PERCENTILE) if pool.sum() >= 4 else pool
    brightest = lighter(pool, 90) if pool.sum() >= 10 else bright  # the lit sclera
    if bright.sum() >= 4:
        sclera = crop[bright].mean(axis=0)
        model.sclera = sclera.astype(np.float32)
    elif inside.any():  # a tiny eye (a few pixels): its opening's lighter pixels, in the portrait's light
        sclera = crop[lighter(inside, SCLERA_PERCENTILE)].mean(axis=0)
    else:
        sclera = np.array(DEFAULT_SCLERA_RGB, np.float32)
    sclera_lum = float(sclera.mean())
    below_lashes = max(1, int(round(IRIS_LASH_DEPTH * radius)))  # rows under the upper lid's contour
    unshaded = cv2.erode(_eroded(inside, 1).astype(np.uint8), np.ones((below_lashes + 1, 1), np.uint8),
                         anchor=(0, below_lashes)) > 0
    centre = _iris_centre(lum, unshaded, xx, landmark_centre, radius, sclera_lum)
    dist = np.hypot(xx - centre[0], yy - centre[1])

    # iris patch: the iris as seen between the lids
    r_patch = int(math.ceil(radius)) + 2
    px0, py0 = int(math.floor(centre[0])) - r_patch, int(math.floor(centre[1])) - r_patch
    size = 2 * r_patch + 2
    gy, gx = np.mgrid[py0 : py0 + size, px0 : px0 + size].astype(np.float64)
    colour = cv2.remap(image, gx.astype(np.float32), gy.astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
    in_crop = (gx - x0).astype(np.float32), (gy - y0).astype(np.float32)  # the patch grid in crop pixels

    def on_patch(mask: np.ndarray) -> np.ndarray:  # a crop mask sampled on the patch grid
        return cv2.remap(mask.astype(np.float32), *in_crop, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0) > 0.6

    seen = on_patch(opening)
    r = np.hypot(gx - centre[0], gy - centre[1])
    visible = (r <= radius) & seen
    if visible.any():
        # sclera inside the disc: pixels nearer the sclera's brightness than the iris' that reach
        # out past the disc (a catchlight lies inside the iris); the iris ends where they begin
        shade = colour.mean(axis=2)
        iris_lum = float(np.median(shade[visible]))
        _, labels = cv2.connectedComponents((seen & (shade > 0.5 * (iris_lum + sclera_lum))).astype(np.uint8), 4)
        outside = np.unique(labels[(r > radius) & (labels > 0)])
        white = visible & (r > IRIS_PUPIL_FRACTION * radius) & np.isin(labels, outside)
        if white.sum() >= 3:
            radius = float(np.clip(np.percentile(r[white], 20), IRIS_MIN_RADIUS * radius, radius))
        visible &= ~white & (r <= radius)
    median = np.median(colour[visible], axis=0) if visible.any() else np.array([70, 50, 40], np.float32)
    # the part the lids hid: each column's nearest seen pixel (under the upper lid, the iris in the
    # lashes' shadow), fading with distance into the iris' radial profile (the median seen colour
    # at each distance from the centre)
    hidden_fill = _radial_profile(colour, visible, r, radius, median)
    if visible.any():
        rows = np.arange(size)[:, None]
        any_seen = visible.any(axis=0)
        top = np.where(any_seen, visible.argmax(axis=0), size)
        bottom = np.where(any_seen, size - 1 - visible[::-1].argmax(axis=0), -1)
        nearest = np.clip(np.where(rows < top, top, bottom), 0, size - 1)
        gap = np.where(rows < top, top - rows, rows - bottom).astype(np.float32)
        edge = np.take_along_axis(colour, np.broadcast_to(nearest, (size, size))[..., None], axis=0)
        keep = (np.exp(-gap / max(IRIS_SHADOW_REACH * radius, 0.5)) * (any_seen[None, :] & (gap > 0)))[..., None]
        hidden_fill = edge * keep + hidden_fill * (1.0 - keep)
    model.patch = np.where(visible[..., None], colour, hidden_fill).astype(np.float32)
    pupil = _pupil_disc(colour, visible, r, radius, median)

    def with_pupil(patch: np.ndarray, shown: np.ndarray) -> np.ndarray:  # the pupil's part not ``shown``, round
        if pupil is None:
            return patch.astype(np.float32)
        rgb, alpha = pupil
        hidden = (alpha * ~shown)[..., None]
        return (patch * (1.0 - hidden) + rgb * hidden).astype(np.float32)

    # for a wider-opened eye: the iris as if the lid did not shade it, and how dark the shade is
    lit = visible & on_patch(unshaded)
    lit[1:] &= lit[:-1].copy()  # the first row under the shadow is still half in it: a dark line across a widened iris
    if lit.sum() >= 4:
        shaded = visible & ~lit & (r > IRIS_PUPIL_FRACTION * radius)
        lit_ring = lit & (r > IRIS_PUPIL_FRACTION * radius)
        if shaded.sum() >= 3 and lit_ring.sum() >= 3:
            darkening = 1.0 - colour[shaded].mean() / max(colour[lit_ring].mean(), 1.0)
            model.lash_shadow = float(np.clip(darkening, 0.0, 0.8))
        lit_median = np.median(colour[lit], axis=0)
        model.patch_open = with_pupil(np.where(lit[..., None], colour,
                                               _radial_profile(colour, lit, r, radius, lit_median)), lit)
    model.patch = with_pupil(model.patch, visible)
    model.lash_shadow_px = float(below_lashes)
    model.patch_alpha = np.clip(radius + 0.5 - r, 0, 1).astype(np.float32)
    model.patch_origin = np.array([px0, py0], np.float64)
    model.centre, model.radius, model.offset = centre, radius, centre - landmark_centre

    # texture: the iris' place filled row by row with what lies beside it in the opening (sclera,
    # and the lashes' shadow under the upper lid). A flat sclera colour there showed as a grey
    # block round the iris of a widened eye, cut out of the lashes' shadow.
    removed = radius * (1.0 + IRIS_LIMBUS_MARGIN) + 1.0  # the dark limbus round the disc too
    disc = np.clip(removed + 0.5 - dist, 0.0, 1.0).astype(np.float32)
    beside = inside & (dist > removed + 1.0)
    fill = _fill_from_samples(crop, beside, sigma_x=radius + 1.0, sigma_y=0.15 * radius + 0.5, fallback=sclera)
    # clear of the lashes' shadow the place is sclera: a narrow eye's rows beside the iris are
    # mostly shadow and dark corners, and their mean showed as a grey block beside a moved iris
    clear = cv2.GaussianBlur(unshaded.astype(np.float32), (0, 0), 0.5 + 0.1 * radius)[..., None] * IRIS_PLACE_SCLERA
    lit_sclera = crop[brightest].mean(axis=0) if brightest.sum() >= 3 else sclera
    fill = fill * (1.0 - clear) + np.maximum(fill, lit_sclera) * clear
    remove = (disc * opening)[..., None]
    texture[y0:y1, x0:x1] = np.clip(crop * (1 - remove) + fill * remove + 0.5, 0, 255).astype(np.uint8)
    return model


def _pupil_disc(colour: np.ndarray, visible: np.ndarray, r: np.ndarray, radius: float, median: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """The pupil on the iris patch: its colour (3,) (the seen iris' darkest pixels near the centre)
    and a soft disc of ``PUPIL_FRACTION`` x ``radius`` (size, size) float32; None when too little
    of the iris was seen to tell its pupil from it. ``colour`` (size, size, 3) float32 patch,
    ``visible`` where the iris was seen, ``r`` pixels from the iris' centre."""
    near = visible & (r <= IRIS_PUPIL_FRACTION * radius)
    if near.sum() < 3 or visible.sum() < 8:
        return None
    shade = colour.mean(axis=2)
    darkest = near & (shade <= np.percentile(shade[near], 25))
    rgb = colour[darkest].mean(axis=0)
    if rgb.mean() > PUPIL_MAX_SHADE * float(np.mean(median)):  # no dark pupil seen: leave the iris as it is
        return None
    alpha = np.clip(PUPIL_FRACTION * radius + 0.5 - r, 0.0, 1.0).astype(np.float32)
    return rgb.astype(np.float32), alpha


def _eroded(mask: np.ndarray, pixels: int) -> np.ndarray:
    """(h, w) bool: ``mask`` without its rim ``pixels`` deep (a disc-shaped erosion)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.erode(mask.astype(np.uint8), kernel) > 0


def _iris_centre(lum: np.ndarray, rows: np.ndarray, xx: np.ndarray, centre: np.ndarray, radius: float,
                 sclera_lum: float) -> np.ndarray:
    """(2,) the iris centre, pixels: MediaPipe's moved sideways to the middle of the iris' dark pixels.

    ``lum`` (h, w) luminance, ``rows`` (h, w) bool the opening clear of the lashes' shadow, ``xx``
    (h, w) pixel x, ``centre`` (2,) MediaPipe's, ``radius`` pixels, ``sclera_lum`` the sclera's
    luminance (darker than halfway to it from the iris' median is the iris). The height is kept:
    the lids hide the iris' top and bottom.
    """
    x = float(centre[0])
    for _ in range(2):  # the window follows the estimate once
        window = rows & (np.abs(xx - x) <= radius)
        if window.sum() < 4:
            break
        dark = window & (lum < 0.5 * (float(np.median(lum[window])) + sclera_lum))
        if dark.sum() < 4:
            break
        x = float(xx[dark].mean())
    shift = float(np.clip(x - centre[0], -IRIS_MAX_SHIFT * radius, IRIS_MAX_SHIFT * radius))
    return np.array([centre[0] + shift, centre[1]], np.float64)


def _fill_from_samples(image: np.ndarray, samples: np.ndarray, sigma_x: float, sigma_y: float,
                       fallback: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32: ``image``'s colours at the ``samples`` (h, w) bool pixels spread to every
    pixel by normalised convolution (an anisotropic Gaussian, sigmas in pixels); pixels with no
    sample near fall back to ``fallback`` (3,)."""
    weight = samples.astype(np.float32)
    spread = cv2.GaussianBlur(weight, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
    total = cv2.GaussianBlur(image.astype(np.float32) * weight[..., None], (0, 0), sigmaX=sigma_x, sigmaY=sigma_y)
    blend = np.clip(spread / 0.05, 0.0, 1.0)[..., None]  # under ~5 % sample support: the fallback
    filled = total / np.maximum(spread, 1e-6)[..., None]
    return (filled * blend + np.asarray(fallback, np.float32)[None, None] * (1.0 - blend)).astype(np.float32)


def _radial_profile(colour: np.ndarray, visible: np.ndarray, r: np.ndarray, radius: float,
                    default: np.ndarray, bins: int = 6) -> np.ndarray:
    """(h, w, 3) float32: per pixel, the median ``colour`` of the ``visible`` pixels in its ring
    (``bins`` rings out to ``radius``; empty rings take the nearest filled one, or ``default``)."""
    ring = np.minimum((r / max(radius, 1e-6) * bins).astype(int), bins - 1)
    medians = np.full((bins, 3), np.nan, np.float32)
    for k in range(bins):
        chosen = visible & (ring == k)
        if chosen.sum() >= 3:
            medians[k] = np.median(colour[chosen], axis=0)
    filled = np.flatnonzero(~np.isnan(medians[:, 0]))
    if not len(filled):
        return np.broadcast_to(np.asarray(default, np.float32), colour.shape).copy()
    nearest = filled[np.abs(np.arange(bins)[:, None] - filled[None]).argmin(axis=1)]
    return medians[nearest][ring]


def _sorted_xy(chain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(chain[:, 0], kind="stable")
    return chain[order, 0], chain[order, 1]


def _draw_eye(frame: np.ndarray, model: _EyeModel, pts: np.ndarray, feather: float, topo: MeshTopology) -> None:
    """Draw the iris of one eye at its target place, clipped to the target lid opening. ``topo``:
    the renderer's own topology (render workers never build one: :func:`mesh_topology` costs half a
    second the first time in a process)."""
    if model.patch.shape[0] < 2:
        return
    height, width = frame.shape[:2]
    polygon = pts[model.loop, :2].astype(np.float64)
    centre = pts[model.iris, :2].astype(np.float64)
    target_width = float(np.linalg.norm(pts[model.corners[0], :2] - pts[model.corners[1], :2]))
    k = target_width / max(model.width, 1e-6)
    centre = centre + k * model.offset
    radius = model.radius * k
    box = _patch_box(np.vstack([polygon, centre[None] - radius - 1, centre[None] + radius + 1]), 2, width, height)
    if box is None:
        return
    x0, y0, x1, y1 = box
    origin = np.array([x0, y0], np.float64)
    opening = _polygon_mask((y1 - y0, x1 - x0), polygon, origin, feather * max(k, 0.5))
    if opening.max() <= 0:
        return
    # a wider-opened eye: the lashes' shadow under the upper lid keeps its depth instead of
    # stretching with the opening, and the iris shows clear of it
    stretch = _aperture(pts, model.side) / max(model.aperture, 1e-6)  # the target's aperture over the portrait's
    widened = _smoothstep_scalar(stretch, *WIDENED_EYE)
    patch = model.patch
    shade = None
    if widened > 0 and model.patch_open is not None:
        shade = _unstretch_lash_shadow(frame, box, opening, pts, model, k, stretch, topo)
        patch = model.patch * (1.0 - widened) + model.patch_open * widened
    # patch pixel q -> frame pixel: centre + k * (patch_origin + q - source centre) - origin
    shift = centre + k * (model.patch_origin - model.centre) - origin
    matrix = np.array([[k, 0, shift[0]], [0, k, shift[1]]], np.float64)
    size = (x1 - x0, y1 - y0)
    rgba = np.dstack([patch, model.patch_alpha])
    warped = cv2.warpAffine(rgba, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if shade is not None:
        warped[..., :3] *= (1.0 - widened * model.lash_shadow * shade)[..., None]
    alpha = warped[..., 3] * opening
    if alpha.max() > 0:
        _blend(frame, box, warped[..., :3], alpha)
    # lids (nearly) shut: what is left of the opening is lashes
    shut = _smoothstep_scalar(_closure_of(stretch), *LASH_CLOSURE)
    if shut > 0 and model.lash is not None:
        _blend(frame, box, np.broadcast_to(model.lash, (*opening.shape, 3)).astype(np.float32),
               np.clip(opening * 1.5, 0, 1) * shut)


def _unstretch_lash_shadow(frame: np.ndarray, box: tuple[int, int, int, int], opening: np.ndarray,
                           pts: np.ndarray, model: _EyeModel, k: float, stretch: float, topo: MeshTopology
                           ) -> np.ndarray:
    """Re-sample a widened eye's opening in ``frame`` (in place) along each column so that the
    lashes' shadow under the upper lid keeps its depth and the rest of the opening stretches.

    The warp stretches the whole opening, and with it the shadow: a thick dark band. ``box``
    (x0, y0, x1, y1) the eye's pixels, ``opening`` (h, w) its target opening mask, ``k`` the eye's
    scale over the portrait's, ``stretch`` its aperture over the portrait's (the warp's stretch).
    Returns (h, w) float32 0..1, 1 right under the upper lid and 0 below the shadow's depth: where
    the shadow lies.
    """
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float32)
    upper = np.interp(xs, *_sorted_xy(pts[topo.eye_upper[model.side], :2])).astype(np.float32)
    height = np.interp(xs, *_sorted_xy(pts[topo.eye_lower[model.side], :2])).astype(np.float32) - upper
    np.maximum(height, 1.0, out=height)  # target opening, pixels per column
    stretch = np.float32(stretch)
    source_height = height / stretch
    band = np.minimum(np.float32(model.lash_shadow_px * k), 0.5 * source_height)
    depth = np.arange(y0, y1, dtype=np.float32)[:, None] - upper  # (h, w) pixels under the upper lid
    # depth in the portrait's opening each target depth should show, then where the warp put it:
    # the band as it is, the rest stretched over what is left
    rest = (source_height - band) / np.maximum(height - band, 1e-3)
    shown = np.where(depth < band, depth, band + (depth - band) * rest)
    map_y = shown * stretch + (upper - y0)
    map_x = np.tile(xs - x0, (y1 - y0, 1))
    region = frame[y0:y1, x0:x1]
    resampled = cv2.remap(region, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = np.clip(opening, 0.0, 1.0)
    region[...] = cv2.blendLinear(resampled, region, weight, 1.0 - weight)
    return np.clip(1.0 - depth / np.maximum(band, 1e-3), 0.0, 1.0)


#: per eye (right, left): the (k,) upper and (k,) lower lid landmarks of the eyelid pairs
_EYELID_PAIRS = tuple((np.array(pairs)[:, 0], np.array(pairs)[:, 1])
                      for pairs in (RIGHT_EYELID_PAIRS, LEFT_EYELID_PAIRS))


def _aperture(pts: np.ndarray, side: int) -> float:
    """Lid gap over eye width of one eye (0 right, 1 left), from 2-D landmarks."""
    upper, lower = _EYELID_PAIRS[side]
    corners = (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS)[side]
    # called four times a frame: plain sums and math on the few points (np.linalg.norm's
    # overhead was most of it)
    delta = pts[upper, :2] - pts[lower, :2]
    gap = float(np.sqrt((delta * delta).sum(axis=1)).mean())
    (ax, ay), (bx, by) = pts[corners[0], :2].tolist(), pts[corners[1], :2].tolist()
    return gap / max(math.sqrt((ax - bx) ** 2 + (ay - by) ** 2), 1e-6)


def _closure(pts: np.ndarray, side: int, source_aperture: float) -> float:
    """How far an eye is closed relative to the portrait's: 0 as open, 1 shut."""
    return _closure_of(_aperture(pts, side) / max(source_aperture, 1e-6))


def _lid_skin_points(band: _LashBand, side: int) -> np.ndarray:
    """(5 k + 2,) landmark indices for :func:`_lid_skin_length` of one eye (0 right, 1 left): its
    k upper-lid margin vertices, the 4 landmarks above each (4 runs of k), its two corners."""
    mine = band.eye == side
    corners = (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS)[side]
    return np.concatenate([band.margin[mine], band.above[mine].T.ravel(), list(corners)]).astype(np.int64)


def _lid_skin_length(pts: np.ndarray, points: np.ndarray) -> float:
    """Length of one eye's upper-lid skin: the mean distance from its margin vertices to the mean
    of the landmarks above each (the lid-skin triangles' span), over the eye's width. ``points``
    from :func:`_lid_skin_points`; called twice a frame, so one gather and plain arithmetic."""
    xy = pts[points, :2]
    k = (len(points) - 2) // 5
    toward = (xy[k : 2 * k] + xy[2 * k : 3 * k] + xy[3 * k : 4 * k] + xy[4 * k : 5 * k]) * 0.25 - xy[:k]
    (ax, ay), (bx, by) = xy[-2].tolist(), xy[-1].tolist()
    return float(np.sqrt((toward * toward).sum(axis=1)).mean()) / max(math.sqrt((ax - bx) ** 2 + (ay - by) ** 2), 1e-6)


def _lid_closure(pts: np.ndarray, lid: _LidModel) -> float:
    """How far the upper lid's skin is drawn down, 0..1, as a closure: the larger of the eye's
    closure (:func:`_closure`) and the lid skin's growth over the portrait's, in portrait
    apertures. In a blink from the portrait's own opening the growth stays at or under the
    closure (those blinks draw as they did with the closure alone); a widened eye (raised lids
    and brows: surprise, fear) stretches its lid skin further for the same closure, most while
    the eye is still open wider than the portrait's."""
    grown = (_lid_skin_length(pts, lid.skin_points) - lid.skin_length) / max(lid.aperture, 1e-6)
    return min(max(_closure(pts, lid.side, lid.aperture), grown, 0.0), 1.0)


def _closure_of(aperture_ratio: float) -> float:
    """How far an eye is closed, from its aperture over the portrait's: 0 as open (or wider), 1 shut."""
    return min(max(1.0 - aperture_ratio, 0.0), 1.0)


@dataclass
class _LidModel:
    """Closed-lid appearance of one eye: the upper-lid skin, blurred along the lid (a closing
    lid stretches that skin several times; stretched lashes and creases would show as streaks),
    blended in as the eye closes; and the lashes' colour, drawn over the last sliver of the
    opening when the lids meet."""

    side: int
    aperture: float  # the portrait's lid gap over eye width
    vertex_ids: np.ndarray  # renderer vertices of the lid-skin triangles
    origin: np.ndarray  # (2,) int pixel position of the patches' [0, 0]
    blurred: np.ndarray  # (h, w, 3) float32 texture blurred along the lid
    weight: np.ndarray  # (h, w) float32 lid-skin mask in portrait pixels, feathered
    lash: np.ndarray  # (3,) float32
    skin_points: np.ndarray  # landmarks that measure the lid skin (:func:`_lid_skin_points`)
    skin_length: float  # the portrait's lid skin (:func:`_lid_skin_length`)


def _prepare_lid(texture: np.ndarray, pts: np.ndarray, source_tris: np.ndarray, lid_tris: np.ndarray,
                 lash_tris: np.ndarray, vertex_ids: np.ndarray, side: int, band: _LashBand) -> _LidModel | None:
    """source_tris : (N, 2) source vertex positions; lid_tris / lash_tris : (k, 3) vertex ids."""
    height, width = texture.shape[:2]
    corners = (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS)[side]
    eye_width = float(np.linalg.norm(pts[corners[0], :2] - pts[corners[1], :2]))
    box = _patch_box(source_tris[vertex_ids], 0.3 * eye_width + 3, width, height)
    if box is None or eye_width < 4:
        return None
    x0, y0, x1, y1 = box
    origin = np.array([x0, y0])
    weight = np.zeros((y1 - y0, x1 - x0), np.float32)
    lash_mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for t in lid_tris:
        cv2.fillConvexPoly(weight, np.round((source_tris[t] - origin) * 16).astype(np.int32), 1.0, cv2.LINE_AA, shift=4)
    for t in lash_tris:
        cv2.fillConvexPoly(lash_mask, np.round((source_tris[t] - origin) * 16).astype(np.int32), 1, cv2.LINE_8, shift=4)
    weight = cv2.GaussianBlur(weight, (0, 0), max(0.09 * eye_width, 0.5))
    patch = texture[y0:y1, x0:x1].astype(np.float32)
    # skin only: lashes, the crease's shadow and the eye itself are left out of the average
    # (a normalized blur); the skin's lightness is judged on the whole patch (brow, lids, cheek)
    lum = patch.mean(axis=2)
    opening = np.zeros_like(lash_mask)
    cv2.fillPoly(opening, [np.round((pts[mesh_topology().eye_loops[side], :2] - origin) * 16).astype(np.int32)], 1,
                 cv2.LINE_8, shift=4)
    around = (opening == 0) & (lash_mask == 0)
    bright = np.percentile(lum[around], 70) if around.any() else lum.max()
    skin = (around & (lum >= 0.85 * bright)).astype(np.float32)
    skin_mean = patch[skin > 0].mean(axis=0) if skin.any() else patch.reshape(-1, 3).mean(axis=0)
    sigma = (max(0.15 * eye_width, 0.8), max(0.1 * eye_width, 0.6))
    total = cv2.GaussianBlur(patch * skin[..., None], (0, 0), sigmaX=sigma[0], sigmaY=sigma[1])
    count = cv2.GaussianBlur(skin, (0, 0), sigmaX=sigma[0], sigmaY=sigma[1])
    trust = np.clip(count / 0.15, 0, 1)[..., None]
    blurred = trust * total / np.maximum(count, 1e-6)[..., None] + (1 - trust) * skin_mean
    lash_px = patch[lash_mask > 0]
    if len(lash_px):
        lum = lash_px.mean(axis=1)
        lash = lash_px[lum <= np.median(lum)].mean(axis=0)
    else:
        lash = np.array([60, 45, 40], np.float32)
    skin_points = _lid_skin_points(band, side)
    return _LidModel(side, _aperture(pts, side), vertex_ids, origin, blurred, weight, lash.astype(np.float32),
                     skin_points, _lid_skin_length(pts, skin_points))


def _draw_lid(frame: np.ndarray, lid: _LidModel, pts: np.ndarray, vertices: np.ndarray, map_x: np.ndarray,
              map_y: np.ndarray) -> None:
    """Blend the smoothed upper-lid skin in as the lid closes (frame, maps: full output size)."""
    closing = _smoothstep_scalar(_lid_closure(pts, lid), *LID_SKIN_CLOSURE)
    if closing <= 0:
        return
    height, width = frame.shape[:2]
    box = _patch_box(vertices[lid.vertex_ids], 2, width, height)
    if box is None:
        return
    x0, y0, x1, y1 = box
    mx = map_x[y0:y1, x0:x1] - np.float32(lid.origin[0])
    my = map_y[y0:y1, x0:x1] - np.float32(lid.origin[1])
    colour = cv2.remap(lid.blurred, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.remap(lid.weight, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    _blend(frame, (x0, y0, x1, y1), colour, weight * closing)


# --- mouth ---------------------------------------------------------------------------------


@dataclass
class _MouthFrame:
    """Mouth coordinates: u along the inner corners (0..1), v perpendicular (pixels, down)."""

    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    width: float
    upper_u: np.ndarray
    upper_v: np.ndarray
    lower_u: np.ndarray
    lower_v: np.ndarray
    midline_u: float  # u of the upper lip's middle point (the teeth's midline)

    @classmethod
    def of(cls, pts: np.ndarray, topo: MeshTopology) -> _MouthFrame:
        a = pts[topo.mouth_upper[0], :2].astype(np.float64)
        b = pts[topo.mouth_upper[-1], :2].astype(np.float64)
        width = max(float(np.linalg.norm(b - a)), 1e-6)
        axis_u = (b - a) / width
        axis_v = np.array([-axis_u[1], axis_u[0]])

        def chain(idx):
            rel = pts[idx, :2] - a
            u = rel @ axis_u / width
            v = rel @ axis_v
            u = np.maximum.accumulate(u)  # np.interp needs increasing u
            return u, v

        uu, uv = chain(topo.mouth_upper)
        lu, lv = chain(topo.mouth_lower)
        mid = (pts[INNER_LIP_MID[0], :2] - a) @ axis_u / width
        return cls(a, axis_u, axis_v, width, uu, uv, lu, lv, float(mid))

    def uv(self, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = xx - self.origin[0], yy - self.origin[1]
        u = (dx * self.axis_u[0] + dy * self.axis_u[1]) / self.width
        v = dx * self.axis_v[0] + dy * self.axis_v[1]
        return u, v

    def upper(self, u):
        return np.interp(u, self.upper_u, self.upper_v)

    def lower(self, u):
        return np.interp(u, self.lower_u, self.lower_v)

    def point(self, u, v):
        x = self.origin[0] + u * self.width * self.axis_u[0] + v * self.axis_v[0]
        y = self.origin[1] + u * self.width * self.axis_u[1] + v * self.axis_v[1]
        return x, y


@dataclass
class _MouthModel:
    open: bool
    frame: _MouthFrame
    skull_offset: float  # resting upper inner lip middle below the nose base (landmark 2), along v, eye units
    unit: float  # source outer-eye-corner distance, pixels
    split: float  # fraction of the gap where the source's upper part ends
    brightness: float  # portrait's skin lightness relative to a well-lit face (shades the teeth)
    chroma: float = 1.0  # how colourful the synthesized interior is, 0 (grey: a black-and-white photo) .. 1
    # (3,) the colour / luma ratio the interior takes where it is not colourful: (1, 1, 1) grey,
    # a toned photograph's tint (photo_tint)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    teeth_rgb: tuple[float, float, float] = TEETH_RGB  # the synthesized teeth's colour (teeth_colour)


def _eye_unit(pts: np.ndarray) -> float:
    return max(eye_corner_distance(pts), 1e-3)


def _prepare_mouth(image: np.ndarray, pts: np.ndarray, topo: MeshTopology,
                   sclera_rgb: np.ndarray | None = None) -> _MouthModel:
    """The mouth of the portrait ``image`` with landmarks ``pts`` (478, 3) pixels: whether it is
    open, where its own interior splits, and how the synthesized interior is lit and coloured;
    ``sclera_rgb`` (3,): the colour of its eye whites, where measured (:func:`teeth_colour`)."""
    frame = _MouthFrame.of(pts, topo)
    unit = _eye_unit(pts)
    inner_u = np.linspace(0.25, 0.75, 11)
    gap = frame.lower(inner_u) - frame.upper(inner_u)
    is_open = bool(gap.mean() > MOUTH_OPEN_RATIO * frame.width and gap.mean() >= MOUTH_OPEN_MIN_PX)
    split = 0.85
    if is_open:
        # where the upper part (upper teeth) ends: the darkest row between 30% and 90% of the gap
        fractions = np.linspace(0.3, 0.9, 25)
        uu, ff = np.meshgrid(np.linspace(0.3, 0.7, 9), fractions)
        vv = frame.upper(uu) + ff * (frame.lower(uu) - frame.upper(uu))
        x, y = frame.point(uu, vv)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        profile = cv2.remap(gray, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR).mean(axis=1)
        profile = np.convolve(np.pad(profile, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        darkest = int(np.argmin(profile))
        # no dark row: the visible teeth are upper teeth, resting on the lower lip
        split = float(fractions[darkest]) if profile[darkest] < 0.85 * np.median(profile) else 0.85
    # skin lightness on the cheeks and the forehead, 5x5 px patches
    height, width = image.shape[:2]
    skin = [image[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].reshape(-1, 3)
            for x, y in pts[list(SKIN_PROBES), :2] if 2 <= x < width - 3 and 2 <= y < height - 3]
    skin_rgb = np.concatenate(skin).astype(np.float32).mean(axis=0) if skin else np.full(3, 175.0, np.float32)
    lightness = float(skin_rgb.mean())
    brightness = float(np.clip(lightness / 175.0, 0.55, 1.0))
    brightness = min(brightness, TEETH_MAX_OVER_SKIN * lightness / float(np.mean(TEETH_RGB)))
    saturation = float((skin_rgb.max() - skin_rgb.min()) / max(float(skin_rgb.max()), 1.0))  # HSV's S
    chroma = float(np.clip(saturation / SKIN_FULL_CHROMA, 0.0, 1.0))
    tint = photo_tint(image, skin_rgb)
    if tint is not None:
        chroma = 0.0
    teeth = teeth_colour(image, pts, topo, float(skin_rgb.max()), sclera_rgb)
    return _MouthModel(is_open, frame, _skull_offset(pts, topo), unit, split, brightness, chroma,
                       tuple(float(c) for c in tint) if tint is not None else (1.0, 1.0, 1.0),
                       tuple(float(c) for c in teeth))


def own_teeth_rgb(image: np.ndarray, pts: np.ndarray, topo: MeshTopology, skin_value: float) -> np.ndarray | None:
    """(3,) float32 mean colour of the portrait's own teeth: the pixels inside its inner lips
    (``pts`` (478, 3) pixels) brighter than ``TEETH_SAMPLE_MIN_VALUE`` x ``skin_value`` (the skin's
    HSV value, 0..255) and less saturated than ``TEETH_SAMPLE_MAX_SATURATION``; None where fewer
    than ``TEETH_SAMPLE_MIN_PX`` show."""
    polygon, box = _inner_lip_box(pts, topo, image.shape)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    inside = _polygon_mask((y1 - y0, x1 - x0), polygon, np.array([x0, y0], np.float64), 0.0) > 0.5
    pixels = image[y0:y1, x0:x1][inside].astype(np.float32)
    if len(pixels) < TEETH_SAMPLE_MIN_PX:
        return None
    value = pixels.max(axis=1)
    saturation = (value - pixels.min(axis=1)) / np.maximum(value, 1.0)
    teeth = (value > TEETH_SAMPLE_MIN_VALUE * skin_value) & (saturation < TEETH_SAMPLE_MAX_SATURATION)
    if teeth.sum() < TEETH_SAMPLE_MIN_PX:
        return None
    return pixels[teeth].mean(axis=0)


def teeth_colour(image: np.ndarray, pts: np.ndarray, topo: MeshTopology, skin_value: float,
                 sclera_rgb: np.ndarray | None = None) -> np.ndarray:
    """(3,) float32 RGB of the synthesized teeth in a well-lit face (the renderer shades it): the
    lightness of ``TEETH_RGB`` and the colour of the light on this portrait. That colour is the
    portrait's own teeth' (:func:`own_teeth_rgb`) where they show, else ``TEETH_RGB``'s shifted
    by how the eye whites ``sclera_rgb`` (3,) differ from ``DEFAULT_SCLERA_RGB`` (colour / luma
    ratios), else ``TEETH_RGB``'s."""
    base = np.asarray(TEETH_RGB, np.float32)
    luma = float(base @ LUMA_WEIGHTS)
    ratio = base / luma
    own = own_teeth_rgb(image, pts, topo, skin_value)  # lit pixels: a luma above 0
    if own is not None:
        ratio = own / float(own @ LUMA_WEIGHTS)
    elif sclera_rgb is not None and float(np.asarray(sclera_rgb, np.float32) @ LUMA_WEIGHTS) > 0:
        sclera = np.asarray(sclera_rgb, np.float32)
        reference = np.asarray(DEFAULT_SCLERA_RGB, np.float32)
        ratio = ratio + sclera / float(sclera @ LUMA_WEIGHTS) - reference / float(reference @ LUMA_WEIGHTS)
    # every ratio above has a luma of 1 (the sum of three of them too); divided again for rounding
    deviation = ratio / float(ratio @ LUMA_WEIGHTS) - 1.0  # from grey, at luma 1
    largest = float(np.abs(deviation).max())
    if largest > TEETH_CHROMA_LIMIT:  # toward grey, same hue and luma
        deviation *= TEETH_CHROMA_LIMIT / largest
    return (luma * (1.0 + deviation)).astype(np.float32)


def _skull_offset(pts: np.ndarray, topo: MeshTopology) -> float:
    """How far the upper inner lip's middle sits below the nose base (landmark 2) in the face
    ``pts`` (478, 3) pixels, along the mouth's v axis, eye units: where the upper teeth hang from."""
    frame = _MouthFrame.of(pts, topo)
    nose_v = float(frame.uv(*pts[NOSE_BASE, :2])[1])
    return (float(frame.upper(frame.midline_u)) - nose_v) / _eye_unit(pts)


def photo_tint(image: np.ndarray, skin_rgb: np.ndarray | None = None) -> np.ndarray | None:
    """(3,) float32 colour / luma ratio of a toned photograph (sepia, black and white: (1, 1, 1),
    any one-colour print), or None for a colour photograph: whether :data:`TONED_PHOTO_SHARE` of
    the mid-tone pixels (luma 40-225, no channel clipped) and the skin's mean colour ``skin_rgb``
    (3,) lie within :data:`TONED_PHOTO_TOLERANCE` of the median ratio. image: (H, W, 3) uint8 RGB."""
    height, width = image.shape[:2]
    factor = TONED_PHOTO_SIDE / max(height, width)
    if factor < 1:
        image = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))),
                           interpolation=cv2.INTER_AREA)
    rgb = image.reshape(-1, 3).astype(np.float32)
    luma = rgb @ LUMA_WEIGHTS
    mid = (luma > 40) & (luma < 225) & (rgb.max(axis=1) < 250)
    if mid.sum() < 100:
        return None
    ratios = rgb[mid] / luma[mid, None]
    tint = np.median(ratios, axis=0)
    share = float(np.mean(np.abs(ratios - tint).max(axis=1) < TONED_PHOTO_TOLERANCE))
    if share < TONED_PHOTO_SHARE:
        return None
    if skin_rgb is not None:
        skin_ratio = np.asarray(skin_rgb, np.float32) / max(float(np.asarray(skin_rgb, np.float32) @ LUMA_WEIGHTS), 1.0)
        if np.abs(skin_ratio - tint).max() >= TONED_PHOTO_TOLERANCE:
            return None  # a colour face on a one-colour backdrop
    return tint.astype(np.float32)


# A synthesized mouth starts from closed lips. An open portrait's own interior (teeth) stays in
# the texture inside its inner-lip loop; the warp closes that loop to a line, but its coordinate
# maps, interpolated between grid points across the seam, still sample it there: a smiling
# portrait's teeth showed as a white streak between its closed lips, the grin kept in every
# emotion. It is repainted with the lips' own colours before any frame is warped. It is filled
# down from the upper lip and up from the lower one, sampled this far (eye units) beyond each
# inner lip, clear of the teeth's edge.
MOUTH_FILL_SAMPLE = 0.02
# Where the lips meet, the fill darkens (x 1 - MOUTH_SEAM_SHADOW at the middle, fading over
# MOUTH_SEAM_WIDTH of the fill's height): closed, the lips show the line between them.
MOUTH_SEAM_SHADOW = 0.45
MOUTH_SEAM_WIDTH = 0.2


def _inner_lip_box(pts: np.ndarray, topo: MeshTopology, shape: tuple[int, ...]
                   ) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The inner-lip loop (20, 2) float64 pixels and its box padded by 2 pixels in an image of
    ``shape`` (None when it lies outside)."""
    polygon = pts[topo.mouth_loop, :2].astype(np.float64)
    return polygon, _patch_box(polygon, 2, shape[1], shape[0])


def _fill_mouth_with_lips(texture: np.ndarray, frame: _MouthFrame, pts: np.ndarray, topo: MeshTopology) -> None:
    """Paint the inside of the portrait's inner-lip loop (and a pixel round it) in ``texture``
    (H, W, 3) uint8 RGB, in place, with colours blended column by column from the upper lip, just
    above it, to the lower lip, just below it; ``frame`` the portrait's mouth coordinates."""
    polygon, box = _inner_lip_box(pts, topo, texture.shape)
    if box is None:
        return
    x0, y0, x1, y1 = box
    mask = _polygon_mask((y1 - y0, x1 - x0), polygon, np.array([x0, y0], np.float64), 0.0)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    if mask.max() <= 0:
        return
    u, v = frame.uv(np.arange(x0, x1, dtype=np.float64)[None, :], np.arange(y0, y1, dtype=np.float64)[:, None])
    u = np.clip(u, 0.0, 1.0)
    reach = max(1.0, MOUTH_FILL_SAMPLE * _eye_unit(pts))
    v_up, v_lo = frame.upper(u) - reach, frame.lower(u) + reach
    source = texture.astype(np.float32)
    colours = []
    for v_edge in (v_up, v_lo):
        x, y = frame.point(u, v_edge)
        colours.append(cv2.remap(source, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT101))
    blend = np.clip((v - v_up) / np.maximum(v_lo - v_up, 1e-6), 0.0, 1.0)[..., None]
    seam = 1.0 - MOUTH_SEAM_SHADOW * np.exp(-np.square((blend - 0.5) / MOUTH_SEAM_WIDTH))
    fill = ((1.0 - blend) * colours[0] + blend * colours[1]) * seam
    patch = texture[y0:y1, x0:x1]
    alpha = mask[..., None]
    patch[...] = np.clip(alpha * fill + (1.0 - alpha) * patch, 0, 255).astype(np.uint8)


def _unit_clip(values: np.ndarray) -> np.ndarray:
    """``np.clip(values, 0, 1)`` in place (same values), without np.clip's Python overhead."""
    np.maximum(values, 0.0, out=values)
    return np.minimum(values, 1.0, out=values)


def _nearest_edge(ax: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Distance of each value of ``ax`` to the nearest of ``edges`` (same shape and dtype)."""
    out = np.abs(ax - edges[0])
    for edge in edges[1:]:
        np.minimum(out, np.abs(ax - edge), out=out)
    return out


def _tooth_gaps(to_edge: np.ndarray, ax: np.ndarray, unit: float, depth: float) -> np.ndarray:
    """``1 - depth * exp(-(to_edge * unit / 0.5)**2) * (ax > 0.01)``: the dark gaps between teeth
    (``to_edge``: eye units to the nearest tooth edge, ``ax``: eye units from the midline)."""
    out = to_edge * (unit / 0.5)
    np.square(out, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    out *= -depth
    out[ax <= 0.01] = 0.0
    out += 1.0
    return out


def _synth_teeth(x_mid: np.ndarray, below_mid: np.ndarray, below_lip: np.ndarray, gap_mid: float, unit: float,
                 brightness: float, bared: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Upper-teeth layer, fixed to the skull: shade (...) (x ``TEETH_RGB`` is its colour) and coverage (...).

    x_mid : pixels from the teeth's midline along the mouth; below_mid : pixels below the
    resting upper-lip line carried with the nose base (the incisal edge is an arch at
    a fixed depth below it, so a rising upper lip bares more teeth); below_lip :
    pixels below the upper inner lip at that column (for the lip's shadow); gap_mid : the lip gap
    at the midline, pixels (barely parted lips show a dark line, not teeth; a baring emotion's row
    shows deeper as it grows, ``BARED_TEETH_GROWTH``); bared : 0..1, how far the emotion bares the
    teeth (``EMOTION_TEETH_BARED``). Inputs float32 (or float64), outputs in
    their dtype.
    """
    ax = np.abs(x_mid) / unit
    aa = 0.7 / unit  # anti-aliasing width, units
    to_edge = _nearest_edge(ax, TOOTH_EDGES)
    arch = np.square(ax * (1.0 / TEETH_HALF_WIDTH))  # (ax / TEETH_HALF_WIDTH) ** 2
    height = TEETH_HEIGHT + bared * (BARED_TEETH_HEIGHT - TEETH_HEIGHT)
    height = min(height + bared * BARED_TEETH_GROWTH * max(gap_mid / unit - BARED_GROWTH_FROM, 0.0), MAX_TEETH_HEIGHT)
    # incisal edge: an arch rising toward the canines, slightly notched between teeth
    notch = np.square(to_edge * (1.0 / 0.01))
    np.negative(notch, out=notch)
    edge = height - (0.45 * height) * arch - 0.01 * np.exp(notch, out=notch)
    d = below_mid / unit
    cover = _unit_clip((edge - d) * (1.0 / aa) + 0.5)
    cover *= _unit_clip((TEETH_HALF_WIDTH - ax) * (1.0 / (3 * aa)) + 0.5)
    show_from, show_to = (a + bared * (b - a) for a, b in zip(TEETH_SHOW_GAP, BARED_SHOW_GAP))
    showing = _smoothstep_scalar(gap_mid / unit, show_from, show_to)
    cover *= showing
    # the arch turns away, into the shadow of the cheeks
    shade = np.maximum(1.0 - 0.85 * arch, 0.15)  # <= 1 already
    shade *= _tooth_gaps(to_edge, ax, unit, 0.08)
    shade *= 0.7 + 0.3 * _smoothstep(below_lip / unit, -0.005, 0.03)  # the upper lip's shadow
    shade *= 1.0 - 0.15 * _smoothstep(d, 0.6 * height, height)  # translucent incisal edge
    shade *= brightness * (TEETH_SHADOW + (1.0 - TEETH_SHADOW) * showing)  # little light enters a narrow opening
    return shade, cover


def _synth_lower_teeth(x_mid: np.ndarray, above_lip: np.ndarray, unit: float, brightness: float, bared: float = 0.0,
                       gap_mid: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Lower-teeth layer, moving with the jaw: an arch of incisal edges ``LOWER_TEETH_RISE`` above
    the lower inner lip's middle point (``above_lip``: pixels above it), darker than the upper row;
    higher and wider as ``bared`` (0..1) goes to 1, and higher as the lip gap at the midline
    (``gap_mid``, pixels) grows (``BARED_LOWER_GROWTH``). Shade (...) (x ``TEETH_RGB`` is its colour) and
    coverage (...), in the inputs' dtype."""
    ax = np.abs(x_mid) / unit
    aa = 0.7 / unit
    to_edge = _nearest_edge(ax, tuple(0.75 * e for e in TOOTH_EDGES))
    half_width = LOWER_TEETH_HALF_WIDTH + bared * (BARED_LOWER_HALF_WIDTH - LOWER_TEETH_HALF_WIDTH)
    rise = LOWER_TEETH_RISE + bared * (BARED_LOWER_RISE - LOWER_TEETH_RISE)
    rise = min(rise + bared * BARED_LOWER_GROWTH * max(gap_mid / unit - BARED_GROWTH_FROM, 0.0), MAX_LOWER_TEETH_RISE)
    arch = np.square(ax * (1.0 / half_width))
    r = above_lip / unit
    cover = _unit_clip((rise - rise * 0.6 * arch - r) * (1.0 / aa) + 0.5)
    cover *= _unit_clip((half_width - ax) * (1.0 / (3 * aa)) + 0.5)
    shade = np.maximum(1.0 - 0.6 * arch, 0.3)  # <= 1 already
    shade *= _tooth_gaps(to_edge, ax, unit, 0.2)
    shade *= (LOWER_TEETH_SHADE * brightness) * (0.8 + 0.2 * _smoothstep(r, -0.01, 0.02))  # the lip's shadow
    return shade, cover


def _synth_tongue(x_mid: np.ndarray, above_mid: np.ndarray, unit: float, brightness: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Tongue hint: a smooth hump rising from the lower inner lip's middle point; ``above_mid``
    = pixels above that point. Shade (...) (x ``TONGUE_RGB`` is its colour) and coverage (...), in
    the inputs' dtype."""
    ax = np.abs(x_mid) * (1.0 / (TONGUE_HALF_WIDTH * unit))
    hump = _unit_clip(1.0 - np.square(ax))  # 1 - ax**2, >= 0
    height = TONGUE_HEIGHT * np.sqrt(hump) - 0.015 - above_mid / unit  # the hump's top above the pixel, units
    cover = _unit_clip(height * (unit / 0.8) + 0.5)
    cover[ax >= 1] = 0.0
    shade = 0.55 + 0.45 * hump
    shade *= brightness * (0.7 + 0.3 * _smoothstep(height, 0.0, 0.03))
    return shade, cover


def _cover_layer(weights: np.ndarray, index: int, shade: np.ndarray, cover: np.ndarray) -> None:
    """Lay a layer of coverage ``cover`` (h, w) over the weighted layers ``weights`` (k, h, w) (a
    colour is ``sum_k weights[k] * palette[k]``), in place: all weights are scaled by ``1 - cover``,
    and ``cover * shade`` (h, w) is added to ``weights[index]`` (the layer's colour is
    ``shade * palette[index]``). The same as ``colour += cover * (shade * palette[index] - colour)``."""
    weights *= 1.0 - cover
    weights[index] += cover * shade


def _draw_mouth(frame: np.ndarray, image: np.ndarray, model: _MouthModel, pts: np.ndarray, topo: MeshTopology,
                feather: float, bared: float = 0.0) -> None:
    """Composite the mouth interior inside the target inner-lip polygon; ``bared`` (0..1): how far
    the frame's emotion bares the synthesized teeth (``EMOTION_TEETH_BARED``)."""
    polygon, box = _inner_lip_box(pts, topo, frame.shape)
    if box is None:
        return
    x0, y0, x1, y1 = box
    target = _MouthFrame.of(pts, topo)
    unit = _eye_unit(pts)
    # u and v are affine in x and y: a column of y and a row of x broadcast to the box
    u, v = target.uv(np.arange(x0, x1, dtype=np.float64)[None, :], np.arange(y0, y1, dtype=np.float64)[:, None])
    u = _unit_clip(u)
    v_up, v_lo = target.upper(u), target.lower(u)
    gap = np.maximum(v_lo - v_up, 0.0)
    alpha = _polygon_mask(u.shape, polygon, np.array([x0, y0], np.float64), feather * max(unit / 60.0, 0.5))
    alpha *= _ramp(gap, 0.0, 1.2)  # fade out where the lips touch (corners, closed mouth)
    if alpha.max() <= 1e-3:
        return
    # the layer only where it shows: the rest of the box (lips touching, the polygon's outside
    # beyond its feather) has alpha 0 and would be left as it is
    rows, cols = (np.flatnonzero(shows) for shows in _rows_cols_above(alpha, 0.0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    # float32 from here: colours and coverages of a patch tens of pixels wide
    u, v, v_up, v_lo, gap = (a[r0:r1, c0:c1].astype(np.float32) for a in (u, v, v_up, v_lo, gap))
    alpha = alpha[r0:r1, c0:c1]
    box = (x0 + c0, y0 + r0, x0 + c1, y0 + r1)
    depth = v - v_up  # below the upper inner lip
    rise = v_lo - v  # above the lower inner lip
    fraction = depth / np.maximum(gap, 1e-3)  # of the gap, below the upper inner lip (rise: 1 - fraction)
    if not model.open:
        inset = np.minimum(gap * MOUTH_LIP_INSET, MOUTH_LIP_INSET_MAX * unit)
        np.maximum(inset, 1e-3, out=inset)
        alpha *= _smoothstep(depth / inset, 0.0, 1.0)
        alpha *= _smoothstep(rise / inset, 0.0, 1.0)
    _unit_clip(fraction)
    x_mid = (u - np.float32(target.midline_u)) * np.float32(target.width)
    # the layers' colours are fixed colours x weights: (k, h, w) weights of CAVITY_DARK_RGB,
    # CAVITY_LIGHT_RGB - CAVITY_DARK_RGB, TONGUE_RGB and TEETH_RGB, summed by cv2.transform at the end;
    # a layer of coverage c over the layers below scales their weights by 1 - c
    weights = np.zeros((4, *u.shape), np.float32)
    # cavity: darkest under the upper teeth and toward the corners, with a tongue hint
    side = _unit_clip(np.abs(x_mid) * np.float32(1.0 / (0.5 * target.width + 1e-6)))
    np.multiply(np.square(side, out=side), -0.35, out=weights[0])
    weights[0] += 1.0
    np.multiply(weights[0], fraction * np.sqrt(fraction), out=weights[1])  # fraction ** 1.5
    mid = target.midline_u
    tongue_base = float(target.lower(mid))
    if model.open:  # the tongue shows above the portrait's own lower part, which rests on the lip
        src = model.frame
        lower_part = (1.0 - model.split) * float(src.lower(mid) - src.upper(mid))
        tongue_base -= lower_part * unit / model.unit
    t_shade, t_cover = _synth_tongue(x_mid, tongue_base - v, unit, model.brightness)
    _cover_layer(weights, 2, t_shade, t_cover)
    palette = np.array([CAVITY_DARK_RGB, np.subtract(CAVITY_LIGHT_RGB, CAVITY_DARK_RGB), TONGUE_RGB, model.teeth_rgb],
                       np.float32).T  # (3, 4)
    if model.chroma < 1.0:  # toward each colour's grey, or tone (a linear map: the difference column too)
        toned = np.asarray(model.tint, np.float32)[:, None] * (LUMA_WEIGHTS @ palette)[None, :]
        palette = model.chroma * palette + (1.0 - model.chroma) * toned
    if model.open:
        # the portrait's interior: the part above the split hangs from the upper lip, the part
        # below rests on the lower lip, the cavity shows in between when the jaw opens further
        colour = cv2.transform(cv2.merge(list(weights)), palette)
        u, depth, rise = (a.astype(np.float64) for a in (u, depth, rise))
        src = model.frame
        scale = model.unit / unit  # source pixels per target pixel
        s_up, s_lo = src.upper(u), src.lower(u)
        split = s_up + model.split * (s_lo - s_up)
        v_a = s_up + depth * scale
        v_b = s_lo - rise * scale
        band = max(1.0, 0.02 * model.unit)
        w_a = np.clip(0.5 + (split - v_a) / band, 0.0, 1.0)
        w_b = np.clip(0.5 + (v_b - split) / band, 0.0, 1.0)
        w_b = np.minimum(w_b, 1.0 - w_a)  # the upper teeth are in front
        xa, ya = src.point(u, v_a)
        xb, yb = src.point(u, v_b)
        col_a = cv2.remap(image, xa.astype(np.float32), ya.astype(np.float32), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
        col_b = cv2.remap(image, xb.astype(np.float32), yb.astype(np.float32), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
        rest = (1 - w_a - w_b)[..., None]
        colour = (w_a[..., None] * col_a + w_b[..., None] * col_b + rest * colour).astype(np.float32)
    else:
        gap_mid = float(target.lower(mid) - target.upper(mid))
        l_shade, l_cover = _synth_lower_teeth(x_mid, float(target.lower(mid)) - v, unit, model.brightness, bared,
                                              gap_mid)
        # hidden by the lip until the jaw drops (or the lips part over clenched teeth)
        l_cover *= _smoothstep_scalar(gap_mid / unit, 0.03 - 0.02 * bared, 0.08 - 0.04 * bared)
        _cover_layer(weights, 3, l_shade, l_cover)
        # the upper row is fixed to the skull: its edge keeps its place below the nose while the
        # jaw drops, and shows more when the upper lip rises (a snarl, disgust)
        skull_lip_v = float(target.uv(*pts[NOSE_BASE, :2])[1]) + model.skull_offset * unit
        lip_v = float(target.upper(mid))
        # ... but the landmarks' upper lip also rises on open vowels, where real teeth stay mostly
        # covered: the lip can bare at most TEETH_BARED more than at rest
        teeth_v = min(max(skull_lip_v, lip_v - TEETH_BARED * unit), lip_v + TEETH_BARED * unit)
        shade, cover = _synth_teeth(x_mid, v - np.float32(teeth_v), depth, gap_mid, unit, model.brightness, bared)
        _cover_layer(weights, 3, shade, cover)
        colour = cv2.transform(cv2.merge(list(weights)), palette)
    _blend(frame, box, colour, alpha)


# --- expression detail (wrinkles and folds) -------------------------------------------------

# Happiness' maps, laid on a face whose folds lie elsewhere, draw a pale patch and a grey smudge on
# the cheek beside the nose (the DreamTalk male's 512 px close-up). Its map at half strength read
# 9 of 9 on the calibration set (mean p 0.789 -> 0.743) but the smudge only faded; without it 7 of
# 9 (0.667). Left as measured: the fix is placing the folds by the face, not weakening them.
# Dropping the maps' faint mottling (a soft threshold, 0.02-0.03) cleared such grey patches on smooth skin
# but read 28-29 of 54 instead of 34 on the calibration set (sad 8 -> 4-5; MODEL_CARD, 2026-12-06).
DETAIL_GAIN = 1.6  # x the real MEAD level-3 shading change at intensity 1 (calibrated, see EMOTION_REGION_GAINS)
# Per emotion (EMOTIONS order), a further factor on DETAIL_GAIN for the brows and forehead only
# (above the upper lids, see _brow_weight; the lids and below keep DETAIL_GAIN), chosen
# like it on calibration portraits and speech only (scripts/calibrate_expressiveness.py). Real
# MEAD surprise and sadness crease the forehead and brows more deeply than the warp's geometry
# shows. With x 2.2 on the brows the recogniser's top-1 over the 9 calibration portraits went
# surprised 6 -> 7 of 9 (mean p 0.50 -> 0.53) and sad 7 -> 9 (0.51 -> 0.63); x 3.0 read the same
# (p 0.53, 0.66). On the whole face x 2.2 read 8 and 9 of 9 (p 0.56, 0.71), and fear and happy
# at x 1.6 p 0.28 -> 0.30 and 0.79 -> 0.81 with the same top-1, but sadness' maps then darkened
# the lids and blotched the cheeks: MediaPipe read a sad report portrait's eyes under half open in
# 7.6 % of its frames (the eyes-open bar allows 5 %; 1.2 % with the brows only). Anger's whole-face
# detail at x 1.6 lost one reading (7 -> 6, to fear), and disgust's p fell 0.075 -> 0.035. On the
# brows only, fear x 2.2 gave p 0.28 -> 0.29 (4 of 9 either way) and anger x 2.2 7 -> 6 of 9.
# Surprise is drawn at DETAIL_GAIN: its map is built with the brow hair registered
# (scripts/build_expression_detail.py, BROW_REGISTERED), and what the emphasis had deepened was
# mostly that hair's leftover movement, a dark band above the brows that drew a second, painted
# brow over the portrait's own, joined across the glabella on faint-browed faces (the StyleTalk
# andrew and KristiNoem portraits at 512 px). With the registered map at x 1.0 the calibration
# set reads surprised 8 of 9, as the old map did at x 2.2; x 1.6 and 2.2 made no difference
# (measured with all maps rebuilt: 7 of 9 at each, reagan's surprise on the edge of angry).
EMOTION_DETAIL_EMPHASIS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.2, 1.0)
# The emphasis fades in from this far above the upper lids (eye units) to the inner brow ends
# (MediaPipe 55, 285), over at least DETAIL_BROW_FADE.
DETAIL_LID_MARGIN = 0.01
DETAIL_BROW_FADE = 0.03
INNER_BROW_ENDS = (55, 285)
# The most the detail may lighten the skin (log-luminance, x1.16). The ratio maps also carry the
# MEAD actors' brow movement as shading: skin bared where a brow hair line moved up reads as a
# lightening of up to 0.24 (x 1.6 x the emphasis), which drew pale patches above the brows and on
# the forehead (contempt and surprise most; docs/expressiveness/contempt_check.jpg). Creases darken
# and stay. On the calibration set (9 portraits) top-1 36 -> 37 of 54 (surprised 7 -> 8), mean
# p within 0.03 for every emotion. A fainter pale band still shows on dark-browed portraits; a
# lower cap removes it but also the wrinkles' lit ridges, which the recogniser relies on: 0.05
# read 33 of 54, 0 (darkening only) 30 (sad 9 -> 5, fear 4 -> 2). Taking the brows' movement out
# of the maps (the warped emotion median registered onto the neutral one by a smooth optical flow
# on the brows and forehead, then the ratio) removed the brow bands but read angry 7 -> 6 and sad
# 9 -> 7 of 9 (the recogniser reads the bands as lowered, knitted brows); surprise's map is built
# so since (see EMOTION_DETAIL_EMPHASIS).
DETAIL_MAX_LIGHTEN = 0.15
# Emotions whose maps only darken, and not on the lids (within DETAIL_DARKEN_ONLY_LIDS x eye
# distance of the openings), when the renderer is prepared. Contempt's map, one actor's brow raise
# and smirk averaged with the others' mirrored, lit pale patches over the forehead and beside the
# nose of the report portraits (docs/expressiveness/contempt_check.jpg); contempt is one-sided by
# its shape, and the recogniser has no contempt class, so nothing measured rested on them. Its
# darkened lids alone read narrower: MediaPipe found the DreamTalk male's contempt eyes at least
# half open in 96.0 % of frames (99.6 % with the lit map, 97.6 % sparing 0.15, 100 % sparing 0.25).
DETAIL_DARKEN_ONLY: tuple[str, ...] = ("contempt",)
DETAIL_DARKEN_ONLY_LIDS = 0.25
DETAIL_CANVAS = 256  # px, side of the canonical canvas of the expression-detail maps
DETAIL_KIND = "facecue.expression_detail"
# MediaPipe points whose surroundings are not skin: the eye openings and the lips (their look
# is drawn by the eye and mouth layers), dilated by DETAIL_HOLE_MARGIN x eye distance
DETAIL_HOLE_MARGIN = (0.07, 0.05)  # (eyes, mouth)
# MediaPipe's mesh ends below the hairline: the detail maps also cover a band above its upper arc
# (the oval above the eyes), this far out again as a fraction of the oval's radius from its
# centre (~0.3 eye distance, where forehead lines are), fading out toward the band's outer edge.
DETAIL_FOREHEAD = 0.3


# How far each of R, G, B moves per unit of the detail's log-luminance change: skin darkens in a
# crease by losing blue and green more than red (light that enters it scatters out reddened), and
# lightens on a ridge the other way. Measured on the real MEAD expressions the maps come from
# (`scripts/build_expression_detail.py --crease-colour`: each channel's band-passed log-ratio
# regressed on the luminance's, mean of 3 actors x 6 emotions; the darker and lighter pixels
# alike; luma-weighted mean 1.000, so the luminance change, all the recogniser sees, stays).
# Changing the three channels alike drew creases grey, and a dark patch on pink skin bluish-grey
# (sadness' inner brows on the NASA portrait, 512 px).
DETAIL_CHANNEL_EXPONENTS = (0.906, 1.026, 1.114)


# Lightening needs headroom: an 8-bit pixel cannot get brighter than full scale, and the maps'
# broad lit patches (a raised cheek catching the light) multiplied into a portrait's own highlight
# flattened it into a blown-out white blotch (the NASA portrait's cheek at 512 px, in every emotion
# but surprise). Where the detail would light a pixel's brightest channel past DETAIL_LIGHTEN_KNEE
# of full scale, the lit value is compressed toward full scale (a tanh shoulder, as a camera's tone
# curve does) instead of clipping; darkening and pixels lit below the knee are unchanged. It is
# applied once per set of emotion weights, to the factor on the portrait's own pixels. On the 4
# brightest report portraits (512 px crops), face-skin pixels at 250 or more went 9.8 -> 3.0 % for
# angry and 6.5 -> 2.3 % for happy (neutral, the portraits' own: 1.9 %). On the calibration set sad
# read 9 -> 8 of 9 (W009's smiling frame, whose skin is near full scale: p(sad) 0.36 -> 0.29, now
# angry; the blown patches had counted toward sadness), the other readings the same, every mean p
# within 0.01; scaling the lightening by the headroom above 0.75 or 0.85 instead, or a shoulder at
# 0.9, lost the same reading. The report set reads 16/30 as before (docs/MODEL_CARD.md).
DETAIL_LIGHTEN_KNEE = 0.85


def _spare_highlights(log_gain: np.ndarray, patch: np.ndarray) -> None:
    """Lower the lightening (positive part) of ``log_gain`` (h, w) float32 in place where it would
    light ``patch`` (h, w, 3) uint8 RGB (the pixels it applies to) past ``DETAIL_LIGHTEN_KNEE`` of
    full scale: the brightest channel's lit value ``v = b * exp(gain * e)`` (``e``: the largest of
    ``DETAIL_CHANNEL_EXPONENTS``, the most any channel is lit) above the knee ``k`` becomes
    ``k + (1 - k) tanh((v - k) / (1 - k))``, which stays below full scale, and never below ``b``
    (the detail does not darken it)."""
    if DETAIL_LIGHTEN_KNEE >= 1.0:  # no shoulder: lit values clip at full scale
        return
    exponent = np.float32(max(DETAIL_CHANNEL_EXPONENTS))
    knee = np.float32(DETAIL_LIGHTEN_KNEE)
    brightest = np.maximum(np.maximum(patch[..., 0], patch[..., 1]), patch[..., 2])
    lit = (log_gain > 0) & (brightest > knee * np.float32(255.0) * np.exp(-np.float32(DETAIL_MAX_LIGHTEN) * exponent))
    if not lit.any():
        return
    gain = log_gain[lit]
    base = np.maximum(brightest[lit].astype(np.float32) / np.float32(255.0), np.float32(1e-3))
    value = base * np.exp(gain * exponent)
    over = value > knee
    shoulder = knee + (1 - knee) * np.tanh((value[over] - knee) / (1 - knee))
    gain[over] = np.minimum(np.log(np.maximum(shoulder / base[over], 1.0)) / exponent, gain[over])
    log_gain[lit] = gain


def _detail_gain_rgb(log_gain: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 multipliers of R, G, B for a (h, w) float32 log-luminance change:
    ``exp(log_gain * DETAIL_CHANNEL_EXPONENTS[c])`` (channel by channel into one array, then one
    exp: cv2.transform or merge into three channels cost 2-4x as much)."""
    out = np.empty((*log_gain.shape, 3), np.float32)
    for channel, exponent in enumerate(DETAIL_CHANNEL_EXPONENTS):
        np.multiply(log_gain, np.float32(exponent), out=out[..., channel])
    return np.exp(out, out=out)


def _brow_weight(pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32, 0..1: where ``EMOTION_DETAIL_EMPHASIS`` applies, for landmarks ``pts``
    (478, 3) in the same pixels. Heights are taken along the face's up direction (across the line
    through the outer eye corners): 0 up to ``DETAIL_LID_MARGIN`` eye units above the higher upper
    lid, 1 from the inner brow ends up (at least ``DETAIL_BROW_FADE`` further), smooth in between."""
    right, left = pts[RIGHT_EYE_CORNERS[0], :2], pts[LEFT_EYE_CORNERS[0], :2]
    unit = _eye_unit(pts)
    across = (left - right) / unit
    up = np.array([across[1], -across[0]])  # image y points down: "up" is toward the forehead
    if up[1] > 0:
        up = -up

    def rise(points: np.ndarray) -> np.ndarray:  # eye units above the corner line
        return ((points[..., 0] - right[0]) * up[0] + (points[..., 1] - right[1]) * up[1]) / unit

    lids = float(rise(pts[list(RIGHT_UPPER_LID + LEFT_UPPER_LID), :2]).max()) + DETAIL_LID_MARGIN
    brows = max(float(rise(pts[list(INNER_BROW_ENDS), :2]).mean()), lids + DETAIL_BROW_FADE)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    return _smoothstep(rise(np.stack([xx, yy], axis=-1)), lids, brows).astype(np.float32)


@lru_cache(maxsize=1)
def canonical_detail_landmarks() -> np.ndarray:
    """(478, 3) facecue's template face laid out on the detail canvas (pixels): the eyes' midpoint
    at 40 % height, 0.36 of the canvas between the outer eye corners (a MEAD-like 256 px crop)."""
    from .cues import default_template

    pts = default_template().points.astype(np.float64)
    eye_mid = 0.5 * (pts[RIGHT_EYE_CORNERS[0]] + pts[LEFT_EYE_CORNERS[0]])
    scale = 0.36 * DETAIL_CANVAS / eye_corner_distance(pts)
    out = (pts - eye_mid) * scale
    out[:, 0] += DETAIL_CANVAS / 2
    out[:, 1] += 0.40 * DETAIL_CANVAS
    return out


@lru_cache(maxsize=1)
def _forehead_arc() -> np.ndarray:
    """Positions in ``mesh_topology().oval`` of the oval's upper arc (above the brows on the
    template face), in order along the oval."""
    topo = mesh_topology()
    pts = canonical_detail_landmarks()
    corners = pts[[RIGHT_EYE_CORNERS[0], LEFT_EYE_CORNERS[0]], :2]
    # above the brows: lower down, the band would lie on the temples' hair and the ears
    upper = pts[topo.oval, 1] < corners[:, 1].mean() - 0.3 * eye_corner_distance(pts)
    # the arc as one run along the (closed) oval loop
    start = int(np.flatnonzero(upper & ~np.roll(upper, 1))[0])
    order = np.roll(np.arange(len(upper)), -start)
    return order[upper[order]]


def forehead_band(landmarks: np.ndarray, oval: np.ndarray | None = None, arc: np.ndarray | None = None) -> np.ndarray:
    """(K, 2) the outer edge of the forehead band (``DETAIL_FOREHEAD``) above the oval's upper
    arc (:func:`_forehead_arc`), pixels, for a face's (478, 2+) landmarks. ``oval`` and ``arc``
    (the topology's oval loop and the arc's positions in it) may be passed precomputed: render
    workers then need neither the topology nor the template face."""
    oval = mesh_topology().oval if oval is None else oval
    arc = _forehead_arc() if arc is None else arc
    points = np.asarray(landmarks, np.float64)[oval, :2]
    centre = points.mean(axis=0)
    return centre + (points[arc] - centre) * (1.0 + DETAIL_FOREHEAD)


def _forehead_triangles() -> np.ndarray:
    """(2(K-1), 3) triangles of the forehead band over vertices [landmarks..., band edge...]
    (the band's K edge points numbered from ``N_LANDMARKS``)."""
    arc = mesh_topology().oval[_forehead_arc()]
    tris = []
    for i in range(len(arc) - 1):
        tris += [(arc[i], arc[i + 1], N_LANDMARKS + i + 1), (arc[i], N_LANDMARKS + i + 1, N_LANDMARKS + i)]
    return np.array(tris, np.int64)


def skin_detail_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 on the face's skin inside the face oval and fading over the
    forehead band above it (:func:`forehead_band`), 0 on the eye openings, the lips and elsewhere
    outside the oval, feathered."""
    topo = mesh_topology()
    pts = np.asarray(landmarks, np.float64)[:, :2]
    unit = _eye_unit(pts)
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(pts[topo.oval] * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    # well inside the oval: at its edge (hairline, jaw line) the tracking of real clips slips and
    # the ratio shows the edge, not skin
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=max(1, int(0.12 * unit)))
    # the forehead band above the oval's upper arc, fading out toward its outer edge (hairline)
    arc = pts[topo.oval[_forehead_arc()]]
    edge = forehead_band(pts)
    band = np.zeros(shape, np.float32)
    steps = 8
    for k in range(steps):  # nested strips, weaker outward, nothing in the outer third (hair)
        inner = arc + (edge - arc) * (k / steps)
        outer = arc + (edge - arc) * ((k + 1) / steps)
        strip = np.vstack([inner, outer[::-1]])
        weight = float(np.clip(1.0 - 1.5 * k / steps, 0.0, 1.0))
        cv2.fillPoly(band, [np.round(strip * 16).astype(np.int32)], weight, cv2.LINE_AA, shift=4)
    mask = np.maximum(mask, band)
    eyes = _eye_openings(pts, shape, DETAIL_HOLE_MARGIN[0])
    lips = np.zeros(shape, np.uint8)
    outer_lips = np.array([61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146])
    cv2.fillPoly(lips, [np.round(pts[outer_lips] * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    lips = cv2.dilate(lips, np.ones((3, 3), np.uint8), iterations=max(1, int(DETAIL_HOLE_MARGIN[1] * unit)))
    mask *= 1.0 - np.maximum(eyes, lips).astype(np.float32)
    blur = max(0.06 * unit, 0.7)
    return cv2.GaussianBlur(mask, (0, 0), blur)


def _eye_openings(pts: np.ndarray, shape: tuple[int, int], margin: float) -> np.ndarray:
    """(H, W) uint8 0/1: the eye openings of (N, 2) landmark pixels ``pts``, dilated by ``margin``
    x eye distance (at least one pixel)."""
    openings = np.zeros(shape, np.uint8)
    for loop in mesh_topology().eye_loops:
        cv2.fillPoly(openings, [np.round(pts[loop] * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return cv2.dilate(openings, np.ones((3, 3), np.uint8), iterations=max(1, int(margin * _eye_unit(pts))))


def _lid_zone(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 0..1: the eye openings and the lids round them (DETAIL_DARKEN_ONLY_LIDS x
    eye distance), feathered, for landmarks (478, 3) in the same pixels."""
    pts = np.asarray(landmarks, np.float64)[:, :2]
    zone = _eye_openings(pts, shape, DETAIL_DARKEN_ONLY_LIDS).astype(np.float32)
    return np.clip(cv2.GaussianBlur(zone, (0, 0), max(0.05 * _eye_unit(pts), 0.7)), 0.0, 1.0)


def mesh_coordinate_maps(from_points: np.ndarray, to_points: np.ndarray, shape: tuple[int, int]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every pixel of an image of ``shape`` (H, W) holding the face ``to_points``, the
    coordinates of the same skin point in the image of ``from_points`` (piecewise affine along the
    face mesh, its eye/mouth strips and the forehead band above it, :func:`forehead_band`).

    Returns map_x, map_y (H, W) float32 and inside (H, W) bool (pixels covered by the mesh).
    """
    topo = mesh_topology()
    triangles = np.vstack([topo.face_triangles, topo.hole_triangles, _forehead_triangles()])

    def vertices(points):
        points = np.asarray(points, np.float64)[:, :2]
        return np.vstack([points, forehead_band(points)])

    src = vertices(from_points)[triangles]
    dst = vertices(to_points)[triangles]
    affine = _affines(src, dst)
    ids = np.full(shape, len(triangles), np.int32)
    fixed = np.round(dst * 16).astype(np.int32)
    for k in range(len(triangles)):
        cv2.fillConvexPoly(ids, fixed[k], k, lineType=cv2.LINE_8, shift=4)
    coef = np.concatenate([affine.reshape(-1, 6), [[0, 0, -1e4, 0, 0, -1e4]]]).astype(np.float32).T
    gx = np.arange(shape[1], dtype=np.float32)[None, :]
    gy = np.arange(shape[0], dtype=np.float32)[:, None]
    map_x = coef[0][ids] * gx + coef[1][ids] * gy + coef[2][ids]
    map_y = coef[3][ids] * gx + coef[4][ids] * gy + coef[5][ids]
    return map_x, map_y, ids < len(triangles)


def detail_in_portrait(portrait_landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """(8, H, W) float32 log-ratio maps of the emotions laid onto the portrait's face (zero off the
    face), or None when this build has no maps."""
    maps = expression_detail_maps()
    if maps is None:
        return None
    map_x, map_y, inside = mesh_coordinate_maps(canonical_detail_landmarks(), portrait_landmarks, shape)
    out = np.zeros((len(maps), *shape), np.float32)
    for e, canvas in enumerate(maps):
        if np.any(canvas):
            out[e] = cv2.remap(canvas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out *= inside[None]
    return out


@lru_cache(maxsize=1)
def expression_detail_maps() -> np.ndarray | None:
    """(8, C, C) float32 log-ratio maps on the canonical canvas (``EMOTIONS`` order), or None when
    this build has none (``scripts/build_expression_detail.py`` makes them)."""
    from .assets import asset_path
    from .errors import CheckpointError

    path = asset_path("expression_detail.npz")
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if str(data["kind"]) != DETAIL_KIND or tuple(data["emotion_names"]) != tuple(EMOTIONS):
            raise CheckpointError(path, "not a facecue expression-detail file for these emotions; rebuild it")
        return data["log_ratio_q"].astype(np.float32) * float(data["scale"])


# --- the mesh renderer ---------------------------------------------------------------------


FOLD_JUMP_PX = (2.0, 4.0)  # neighbours whose source points are this far apart (ramp) sit on a fold


def _rows_cols_above(values: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(h,) and (w,) bool: the rows and the columns of (h, w) ``values`` with a value above
    ``threshold`` (a boolean image and numpy's ``any``: several times faster than
    ``cv2.reduce``'s per-row maximum)."""
    above = values > threshold
    return above.any(axis=1), above.any(axis=0)


def _fold_candidates(grid_x: np.ndarray, grid_y: np.ndarray, step: int, shape: tuple[int, int]
                     ) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) of full-resolution pixels that can sit on a fold, found on the
    coarse maps: None when no pixel can.

    grid_x, grid_y : (gh, gw) float32 maps on a ``step``-pixel grid, which ``cv2.resize``
    (linear, half-pixel aligned) scaled by ``step`` and cut to ``shape`` (h, w) gives the
    full-resolution maps. Between neighbouring output pixels those interpolate with weights that
    differ by at most ``1 / step`` in total, so a full-resolution jump above ``FOLD_JUMP_PX[0]``
    needs a grid jump above ``step`` times that next to it: the box holds every such pair (with a
    margin), and a search inside it finds what a search of the whole maps would.
    """
    # a little below: float32 rounding of the interpolated maps (a jump just above the threshold
    # has a fold strength of about 0 anyway)
    threshold = FOLD_JUMP_PX[0] * step * (1.0 - 1e-3)
    gh, gw = grid_x.shape
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    if gw > 1:
        jump = cv2.add(cv2.absdiff(grid_x[:, 1:], grid_x[:, :-1]), cv2.absdiff(grid_y[:, 1:], grid_y[:, :-1]))
        row, col = _rows_cols_above(jump, threshold)
        rows.append(np.flatnonzero(row))
        cols += [np.flatnonzero(col), np.flatnonzero(col) + 1]
    if gh > 1:
        jump = cv2.add(cv2.absdiff(grid_x[1:], grid_x[:-1]), cv2.absdiff(grid_y[1:], grid_y[:-1]))
        row, col = _rows_cols_above(jump, threshold)
        rows += [np.flatnonzero(row), np.flatnonzero(row) + 1]
        cols.append(np.flatnonzero(col))
    if not rows:  # a grid of one point: no neighbours, no jumps
        return None
    row_ids, col_ids = np.concatenate(rows), np.concatenate(cols)
    if not len(row_ids):
        return None
    # grid point j interpolates into output pixels (j - 1) * step .. (j + 1) * step; 4 more pixels
    # hold the box _soften_folds pads around the pixels it finds
    height, width = shape
    y0, y1 = max((int(row_ids.min()) - 2) * step - 4, 0), min((int(row_ids.max()) + 3) * step + 4, height)
    x0, x1 = max((int(col_ids.min()) - 2) * step - 4, 0), min((int(col_ids.max()) + 3) * step + 4, width)
    return x0, y0, x1, y1


def _ramp(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.clip((values - lo) / (hi - lo), 0, 1)`` (same values and dtype) in place on a new
    array, without np.clip's overhead."""
    out = np.subtract(values, lo)
    out /= hi - lo
    np.maximum(out, 0.0, out=out)
    return np.minimum(out, 1.0, out=out)


def _soften_folds(frame: np.ndarray, map_x: np.ndarray, map_y: np.ndarray,
                  coarse: tuple[np.ndarray, np.ndarray, int] | None = None) -> None:
    """Anti-alias the edges the warp creates where the mesh folds over itself (a cheek's
    silhouette on a head turn): there neighbouring pixels come from distant source points and
    the triangle raster would leave a hard, stair-stepped edge. Blurs those pixels, in place; the
    blur's weight ramps with the jump, so that it cannot switch on and off between frames.

    frame : (h, w, 3) uint8; map_x, map_y : (h, w) float32 source pixels of its pixels.
    coarse : the grid maps they were resized from, ``(grid_x, grid_y, step)``
    (:func:`_fold_candidates`): the search for folds then runs on those (``step**2`` times fewer
    pixels) and on the full maps only where the grid allows a fold; the same result.
    """
    lo, hi = FOLD_JUMP_PX
    height, width = map_x.shape
    if height < 2 or width < 2:
        return
    cx0, cy0, cx1, cy1 = 0, 0, width, height
    if coarse is not None and coarse[2] > 1:
        candidates = _fold_candidates(coarse[0], coarse[1], coarse[2], (height, width))
        if candidates is None:
            return
        cx0, cy0, cx1, cy1 = candidates
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            return
    mx, my = map_x[cy0:cy1, cx0:cx1], map_y[cy0:cy1, cx0:cx1]
    # |d map_x| + |d map_y| between horizontal and vertical neighbours (cv2 on views: no copies)
    jump_x = cv2.add(cv2.absdiff(mx[:, 1:], mx[:, :-1]), cv2.absdiff(my[:, 1:], my[:, :-1]))
    jump_y = cv2.add(cv2.absdiff(mx[1:], mx[:-1]), cv2.absdiff(my[1:], my[:-1]))
    # rows and columns with a jump above lo
    row_x, col_x = _rows_cols_above(jump_x, lo)  # (h,), (w - 1,)
    row_y, col_y = _rows_cols_above(jump_y, lo)  # (h - 1,), (w,)
    rows = np.flatnonzero(row_x | np.concatenate([row_y, [False]]) | np.concatenate([[False], row_y]))
    if not len(rows):
        return
    cols = np.flatnonzero(np.concatenate([col_x, [False]]) | np.concatenate([[False], col_x]) | col_y)
    y0, y1 = max(cy0 + rows[0] - 3, 0), min(cy0 + rows[-1] + 4, height)
    x0, x1 = max(cx0 + cols[0] - 3, 0), min(cx0 + cols[-1] + 4, width)
    # the fold strength, only in that box (it is zero elsewhere)
    if cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1:  # always, with _fold_candidates' margin
        jump_x = jump_x[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0 - 1]
        jump_y = jump_y[y0 - cy0 : y1 - cy0 - 1, x0 - cx0 : x1 - cx0]
    else:
        mx, my = map_x[y0:y1, x0:x1], map_y[y0:y1, x0:x1]
        jump_x = cv2.add(cv2.absdiff(mx[:, 1:], mx[:, :-1]), cv2.absdiff(my[:, 1:], my[:, :-1]))
        jump_y = cv2.add(cv2.absdiff(mx[1:], mx[:-1]), cv2.absdiff(my[1:], my[:-1]))
    # fold strength: the ramp of the largest jump to a neighbour (the ramp is monotonic, so this is
    # the largest of the neighbours' strengths); zero-padded jumps, neighbours' maxima by cv2 on views
    jump_x = cv2.copyMakeBorder(jump_x, 0, 0, 1, 1, cv2.BORDER_CONSTANT, value=0)  # (h, w + 1)
    jump_y = cv2.copyMakeBorder(jump_y, 1, 1, 0, 0, cv2.BORDER_CONSTANT, value=0)  # (h + 1, w)
    largest = cv2.max(cv2.max(jump_x[:, 1:], jump_x[:, :-1]), cv2.max(jump_y[1:], jump_y[:-1]))
    weight = cv2.GaussianBlur(_ramp(largest, lo, hi), (5, 5), 0.9)
    weight *= 2.0
    np.minimum(weight, 1.0, out=weight)  # >= 0 already: a blur of values >= 0
    # weight * blurred + (1 - weight) * pixel, rounded to uint8 by OpenCV (pixels of weight 0 stay
    # as they are)
    region = frame[y0:y1, x0:x1]
    blurred = cv2.GaussianBlur(region, (5, 5), 0.9)
    region[...] = cv2.blendLinear(blurred, region, weight, 1.0 - weight)


def _border_loop(loop: np.ndarray, centre: np.ndarray, width: int, height: int) -> np.ndarray:
    """Radial projection of a loop onto a rectangle enclosing the image and the loop."""
    lo = np.minimum(loop.min(axis=0), [0.0, 0.0]) - BORDER_MARGIN_PX
    hi = np.maximum(loop.max(axis=0), [width - 1.0, height - 1.0]) + BORDER_MARGIN_PX
    direction = loop - centre
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(direction[:, 0] > 0, (hi[0] - centre[0]) / direction[:, 0],
                      np.where(direction[:, 0] < 0, (lo[0] - centre[0]) / direction[:, 0], np.inf))
        ty = np.where(direction[:, 1] > 0, (hi[1] - centre[1]) / direction[:, 1],
                      np.where(direction[:, 1] < 0, (lo[1] - centre[1]) / direction[:, 1], np.inf))
    return centre + direction * np.minimum(tx, ty)[:, None]


def _affine_map(coef: np.ndarray, j: int, flat_ids: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """``coef[j][ids] * gx + coef[j + 1][ids] * gy + coef[j + 2][ids]`` (one coordinate of the
    per-triangle affine maps at every grid pixel), with fewer temporaries.

    coef : (6, N+1) float32, C-contiguous (each row a contiguous table); flat_ids : (h*w,) intp
    (int32 ids would be converted on every gather; -1 is the last column); gx : (1, w), gy : (h, 1)
    float32 pixels.
    """
    shape = (gy.shape[0], gx.shape[1])
    out = coef[j][flat_ids].reshape(shape)
    out *= gx
    term = coef[j + 1][flat_ids].reshape(shape)
    term *= gy
    out += term
    out += coef[j + 2][flat_ids].reshape(shape)
    return out


RASTER_EXACT_MARGIN = 1e-6  # pixels: the margin of an "exact" raster, far above float64 rounding of edge crossings


def _sorted_by_y(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two points per triangle, (2, M) arrays of x and y each, the upper one (smaller y) first."""
    swap = b[1] < a[1]
    return np.where(swap, b, a), np.where(swap, a, b)


def _extreme_x(offset: np.ndarray, slope: np.ndarray, y_low: np.ndarray, y_high: np.ndarray, y_centre: np.ndarray,
               widen: np.ndarray, extreme: np.ufunc) -> np.ndarray:
    """``extreme`` (np.minimum or np.maximum) of a line's x (``offset + slope * y``, (R,) each) at
    ``y_low`` and ``y_high``, and of its x at ``y_centre`` plus ``widen``."""
    x = slope * y_low
    extreme(x, slope * y_high, out=x)
    centre = slope * y_centre
    centre += widen
    extreme(x, centre, out=x)
    x += offset
    return x


def _raster_triangles(corners: np.ndarray, shift: int, shape: tuple[int, int], margins: np.ndarray) -> np.ndarray:
    """Which triangle each pixel shows when ``corners``' triangles are drawn one over the other in
    their order (the painter's algorithm), vectorised: the pixels ``cv2.fillConvexPoly`` would
    draw (closely, with ``margins`` of 0.5), without its per-call overhead (~1.5 us, most of the
    cost of a triangle of a few pixels).

    corners : (M, 3, 2) fixed-point pixel coordinates (integers of any numeric dtype, ``shift``
        fractional bits) in drawing order; pixel (i, j) has its centre at (i, j).
    shape : (h, w) of the image.
    margins : (M,) pixels: how far beyond its edges each triangle draws (below
        :data:`RASTER_EXACT_MARGIN` counts as that).
    Returns (h, w) intp: the index into ``corners`` of the last triangle that draws the pixel, -1
    where none does.

    Each triangle is split at its middle corner into an upper and a lower part (a triangle or
    none, each bounded by two edges). A part of margin r draws pixel (i, j) when the vertical
    segment (i, j +- r) meets it, or the horizontal one (i +- r, y) does, where y is the row j
    moved into the part's rows (by r at most). So a triangle draws every pixel whose centre it
    holds, inside or on an edge (a closed mesh leaves none uncovered, whatever the rounding), and
    none whose square of side 2r around the centre misses it; with r = 0.5 that is close to what
    fillConvexPoly draws (its rows, with rounded ends, and its outline). The parts' rows, then
    their pixels, are enumerated with ``np.repeat``, and ``np.maximum.at`` keeps the last
    triangle at each pixel.
    """
    height, width = shape
    n = len(corners)
    points = np.ascontiguousarray(corners.reshape(n, 6).T, np.float64)
    points *= 1.0 / (1 << shift)
    a, b, c = points[0:2], points[2:4], points[4:6]  # (2, M) x and y of each corner
    # corners sorted by y: top, middle, bottom
    a, b = _sorted_by_y(a, b)
    b, bottom = _sorted_by_y(b, c)
    top, middle = _sorted_by_y(a, b)
    # parts k (rows from the top corner to the middle one) and n + k (from there to the bottom) of
    # triangle k: the lines x = offset + slope * y of their edges, laid out as [long edge (top to
    # bottom) of the upper parts, of the lower parts, short edge of the upper parts, of the lower
    # parts]; a horizontal edge gets slope 0 (it bounds a part of no height, only ever asked about
    # its own row, where that gives its first point's x)
    start = np.concatenate([top, top, top, middle], axis=1)
    end = np.concatenate([bottom, bottom, middle, bottom], axis=1)
    dx, dy = end - start
    # which side the long edge is on: left when the middle corner lies right of it
    long_left = dx[:n] * dy[2 * n : 3 * n] < dx[2 * n : 3 * n] * dy[:n]
    long_left = np.concatenate([long_left, long_left])
    flat = dy == 0
    dy += flat
    slope = dx / dy
    slope[flat] = 0.0
    offset = start[0] - slope * start[1]
    lines = np.stack([offset, slope]).reshape(2, 2, 2 * n)  # (offset, slope) x (long, short) x part
    left, right = np.where(long_left, lines[:, 0], lines[:, 1]), np.where(long_left, lines[:, 1], lines[:, 0])
    # their rows, clipped to the image
    part_top, part_bottom = start[1, 2 * n :], end[1, 2 * n :]
    margin = np.maximum(margins, RASTER_EXACT_MARGIN)
    part_margin = np.concatenate([margin, margin])
    first_row = np.ceil(part_top - part_margin)
    np.maximum(first_row, 0.0, out=first_row)
    last_row = np.floor(part_bottom + part_margin)
    np.minimum(last_row, height - 1.0, out=last_row)
    last_row -= first_row
    n_rows = np.maximum(last_row + 1, 0.0).astype(np.intp)
    # one entry per (part, row): the span of pixels it draws
    part = np.repeat(np.arange(2 * n), n_rows)
    first_row -= np.cumsum(n_rows) - n_rows
    row = first_row[part]
    row += np.arange(len(part))
    top_y, bottom_y, reach = part_top[part], part_bottom[part], part_margin[part]
    y_low = row - reach
    np.maximum(y_low, top_y, out=y_low)
    y_high = row + reach
    np.minimum(y_high, bottom_y, out=y_high)
    y_centre = np.maximum(row, top_y)
    np.minimum(y_centre, bottom_y, out=y_centre)
    x_left = _extreme_x(left[0][part], left[1][part], y_low, y_high, y_centre, -reach, np.minimum)
    x_right = _extreme_x(right[0][part], right[1][part], y_low, y_high, y_centre, reach, np.maximum)
    np.ceil(x_left, out=x_left)
    np.maximum(x_left, 0.0, out=x_left)
    np.floor(x_right, out=x_right)
    np.minimum(x_right, width - 1.0, out=x_right)
    x_right -= x_left
    n_pixels = np.maximum(x_right + 1, 0.0).astype(np.intp)
    # one entry per (part, pixel): the flat pixel index, and the triangle
    row *= width
    row += x_left
    span_start = row.astype(np.intp)
    span_start -= np.cumsum(n_pixels)
    span_start += n_pixels
    pixel = np.repeat(span_start, n_pixels)
    pixel += np.arange(len(pixel))
    triangle = np.concatenate([np.arange(n), np.arange(n)])[part]
    last = np.full(height * width, -1, np.intp)
    np.maximum.at(last, pixel, np.repeat(triangle, n_pixels))  # the last triangle drawn wins
    return last.reshape(height, width)


class MeshRenderer(Renderer):
    """Training-free renderer: piecewise-affine warp along the MediaPipe mesh (see module doc).

    Parameters
    ----------
    rings : anchor rings ``((distance, motion fraction), ...)``, see :data:`RINGS`
    redraw_eyes : move the iris inside the lid opening (else the eye is warped like skin)
    mouth : ``"auto"`` (reuse an open portrait mouth, else synthesize), ``"synthesize"``,
        ``"warp"`` (plain mesh warp, no interior layer)
    feather : softness of the eye and mouth layer edges, pixels (scaled with the face)
    map_step : compute the warp's coordinate maps every ``map_step`` pixels and interpolate
        (1: exact; ``None``: :func:`default_map_step`). The portrait itself is always sampled
        at full resolution.
    expression_detail : how strongly to draw the emotions' wrinkles and folds (measured on real
        MEAD faces, ``assets/expression_detail.npz``) with the weights given by
        :meth:`set_expression`: 1 (or True) as calibrated, 0 (or False) none, in between fainter
        (``--wrinkles``: their creases show as grey lines on bright, smooth skin)
    """

    name = "mesh"
    parallel = True

    def __init__(self, *, rings=RINGS, redraw_eyes: bool = True, mouth: str = "auto", feather: float = 0.6,
                 map_step: int | None = None, expression_detail: float = 1.0) -> None:
        if mouth not in ("auto", "synthesize", "warp"):
            raise ValueError(f"mouth must be 'auto', 'synthesize' or 'warp', got {mouth!r}")
        self.rings = tuple((float(d), float(f)) for d, f in rings)
        self.redraw_eyes = redraw_eyes
        self.mouth_mode = mouth
        self.feather = float(feather)
        self.map_step = map_step
        self.expression_detail = float(expression_detail)
        if not 0.0 <= self.expression_detail <= 1.0:
            raise ValueError(f"expression_detail must be in 0..1, got {expression_detail!r}")
        self._prepared = False

    # -- portrait-only work ---------------------------------------------------------------
    def prepare(self, portrait: np.ndarray, portrait_landmarks: np.ndarray) -> None:
        image = check_portrait(portrait)
        pts = check_landmarks(portrait_landmarks, "portrait landmarks").astype(np.float64)
        topo = mesh_topology()
        height, width = image.shape[:2]
        self.image = image
        self.topo = topo
        self.source_points = pts
        self.size = (width, height)

        # anchor loops around the oval; a last loop with a motion fraction of 0 bounds the warp
        # (the portrait is left untouched outside it), else a fixed loop on the image border does
        oval = pts[topo.oval, :2]
        centre = oval.mean(axis=0)
        loops = [oval]
        for distance, _ in self.rings:
            loops.append(centre + (oval - centre) * (1.0 + distance))
        fractions = [f for _, f in self.rings]
        if not fractions or fractions[-1] != 0.0:
            loops.append(_border_loop(loops[-1], centre, width, height))
            fractions.append(0.0)
        self._n_ring = len(oval)
        self._ring_fractions = np.array(fractions)
        self._ring_sources = np.stack(loops[1:])  # (n_loops, 36, 2)
        outer = loops[-1]
        x0, y0 = np.maximum(np.floor(outer.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(outer.max(axis=0)).astype(int) + 2, [width, height])
        self._warp_box = (int(x0), int(y0), int(x1), int(y1))

        # vertices: 468 mesh points, the lash bands, then the ring loops (incl. border), in order
        band = _lash_band()
        self._band = band
        n_mesh = N_MESH_POINTS + len(band.margin)
        ring_index = [topo.oval] + [n_mesh + k * self._n_ring + np.arange(self._n_ring) for k in range(len(loops) - 1)]
        ring_tris = []
        for k in range(len(loops) - 1, 0, -1):  # outermost strip first (drawn first)
            inner_loop, outer_loop = ring_index[k - 1], ring_index[k]
            for i in range(self._n_ring):
                j = (i + 1) % self._n_ring
                ring_tris += [(inner_loop[i], inner_loop[j], outer_loop[j]),
                              (inner_loop[i], outer_loop[j], outer_loop[i])]
        self._ring_triangles = np.array(ring_tris, dtype=np.int64)
        self._face_triangles = np.vstack([band.face_triangles, band.strips, topo.hole_triangles])
        n_skin = len(band.face_triangles) + len(band.strips)
        self._hole_bias = np.r_[np.zeros(n_skin), np.ones(len(topo.hole_triangles))]
        self._face_corners = np.ascontiguousarray(self._face_triangles.T)  # (3, n_face) vertex ids
        # z of each vertex comes from a landmark: band vertices take their margin's
        self._depth_source = np.r_[np.arange(N_MESH_POINTS), band.margin]
        self._triangles = np.vstack([self._ring_triangles, self._face_triangles])
        source_vertices = np.vstack([pts[:N_MESH_POINTS, :2], _lash_points(pts, band),
                                     self._ring_sources.reshape(-1, 2)])
        self._source_tris = source_vertices[self._triangles]  # (N, 3, 2)

        # texture: the portrait with the irises replaced by sclera (the iris is drawn per frame)
        texture = image.copy()
        self._eyes = [_prepare_eye(image, texture, pts, topo, side) for side in (0, 1)] if self.redraw_eyes else []
        self.texture = texture
        self._lids = []
        if self.redraw_eyes:
            n_strip_eye = len(band.strips) // 2
            for side in (0, 1):
                ids = N_MESH_POINTS + np.flatnonzero(band.eye == side)
                skin = band.face_triangles[np.isin(band.face_triangles, ids).any(axis=1)]
                lash = band.strips[side * n_strip_eye : (side + 1) * n_strip_eye]
                lid = _prepare_lid(texture, pts, source_vertices, skin, lash, np.unique(skin), side, band)
                if lid is not None:
                    self._lids.append(lid)
                    self._eyes[side].lash = lid.lash
        whites = [eye.sclera for eye in self._eyes if eye.sclera is not None]
        mouth = _prepare_mouth(image, pts, topo, np.mean(whites, axis=0) if whites else None)
        if self.mouth_mode == "synthesize":
            if mouth.open:
                _fill_mouth_with_lips(texture, mouth.frame, pts, topo)
            mouth.open = False
        self._mouth = None if self.mouth_mode == "warp" else mouth
        self._unit = _eye_unit(pts)
        self._identity_index = len(self._triangles)
        self._ring_order = np.arange(len(self._ring_triangles))
        self._hole_depth_bias = HOLE_DEPTH_BIAS * self._unit * self._hole_bias  # (n_face,) pixels of z
        # raster margins in drawing order (ring strips first): the face's triangles are drawn about
        # as cv2.fillConvexPoly drew them (which of two triangles shows at a fold or a thin lip
        # line depends on it), the ring strips exactly: a third fewer pixels to draw, and on their
        # smooth maps it changes frames by 0.005 levels on average
        self._raster_margins = np.r_[np.zeros(len(self._ring_triangles)), np.full(len(self._face_triangles), 0.5)]
        self._n_face_vertices = n_mesh  # target_vertices: the face's (mesh and lash band) come first
        # expression detail: the emotions' wrinkle/fold maps laid onto the portrait's face box
        self._detail = None
        self._expression = np.zeros(0, np.float32)
        self._detail_cache: tuple[bytes, np.ndarray] | None = None
        self._forehead_arc = _forehead_arc()
        if self.expression_detail > 0.0:
            support = np.vstack([pts[:N_MESH_POINTS, :2], forehead_band(pts)])
            fx0, fy0 = np.maximum(np.floor(support.min(axis=0)).astype(int) - 2, 0)
            fx1, fy1 = np.minimum(np.ceil(support.max(axis=0)).astype(int) + 3, [width, height])
            local = pts.copy()
            local[:, :2] -= [fx0, fy0]
            maps = detail_in_portrait(local, (int(fy1 - fy0), int(fx1 - fx0)))
            if maps is not None:
                lids = None
                for e, name in enumerate(EMOTIONS[: len(maps)]):
                    if name in DETAIL_DARKEN_ONLY:
                        lids = _lid_zone(local, maps.shape[1:]) if lids is None else lids
                        maps[e] = np.minimum(maps[e], 0.0) * (1.0 - lids)
                self._detail = (maps, np.array([fx0, fy0], np.float32))
                self._detail_brows = _brow_weight(local, maps.shape[1:])
                self._detail_texture = texture[fy0:fy1, fx0:fx1]  # the skin the maps light (a view)
        self._prepared = True

    def set_expression(self, weights: np.ndarray | None) -> None:
        """Emotion weights (8,) of the next frames, intensity included (``EMOTIONS`` order): the
        strength of each emotion's wrinkles and folds. None or zeros: none."""
        self._expression = np.zeros(0, np.float32) if weights is None else np.asarray(weights, np.float32).ravel()

    def set_rest_face(self, landmarks: np.ndarray) -> None:
        """The face at rest as the cues start from it, ``(478, 3)`` pixels in the prepared image
        (lips closed, a smiling portrait's smile taken off): the synthesized upper teeth hang
        ``TEETH_HEIGHT`` below its upper lip. Without it they hang below the portrait's own upper
        lip, which a smile with parted lips raises: the Obama and NASA portraits' upper lips
        rest 0.076 and 0.057 eye units lower in the cues, and neutral speech showed no upper
        teeth. Call after :meth:`prepare`."""
        if not self._prepared:
            raise RuntimeError("prepare() the renderer first")
        if self._mouth is not None:
            points = check_landmarks(landmarks, "rest landmarks").astype(np.float64)
            self._mouth.skull_offset = _skull_offset(points, self.topo)

    def _teeth_bared(self) -> float:
        """0..1: how far the current emotion weights bare the teeth (``EMOTION_TEETH_BARED``)."""
        weights = self._expression[: len(EMOTION_TEETH_BARED)]
        return float(np.clip(weights @ np.asarray(EMOTION_TEETH_BARED[: len(weights)]), 0.0, 1.0))

    def _detail_factor(self) -> np.ndarray | None:
        """(h, w) log-luminance change in portrait face-box pixels for the current emotion weights."""
        if self._detail is None or not self._expression.any():
            return None
        maps, _ = self._detail
        n = min(len(maps), len(self._expression))
        weights = np.round(self._expression[:n] * (DETAIL_GAIN * self.expression_detail), 3)
        extra = np.round(weights * (np.asarray(EMOTION_DETAIL_EMPHASIS[:n], np.float32) - 1.0), 3)  # brows only
        key = weights.tobytes() + extra.tobytes()
        if self._detail_cache is None or self._detail_cache[0] != key:
            factor = np.tensordot(weights, maps, axes=1).astype(np.float32)
            if extra.any():
                factor += self._detail_brows * np.tensordot(extra, maps, axes=1).astype(np.float32)
            np.minimum(factor, DETAIL_MAX_LIGHTEN, out=factor)
            _spare_highlights(factor, self._detail_texture)
            self._detail_cache = (key, factor)
        return self._detail_cache[1]

    # -- per frame ------------------------------------------------------------------------
    def target_vertices(self, landmarks: np.ndarray) -> np.ndarray:
        """(N, 2) target positions of the mesh and ring vertices for one frame."""
        pts = np.asarray(landmarks, dtype=np.float64)
        motion = pts[self.topo.oval, :2] - self.source_points[self.topo.oval, :2]
        rings = self._ring_sources + self._ring_fractions[:, None, None] * motion[None]
        return np.vstack([pts[:N_MESH_POINTS, :2], _lash_points(pts, self._band), rings.reshape(-1, 2)])

    def warp_maps(self, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """Source coordinates of the output pixels the warp can change.

        Returns
        -------
        map_x, map_y : (h, w) float32 portrait pixels for every pixel of ``box``
        box : (x0, y0, x1, y1) the region (the bounds of the outermost anchor loop); outside
            it the output is the portrait itself
        """
        map_x, map_y, _, _ = self._warp(np.asarray(landmarks, dtype=np.float64))
        return map_x, map_y, self._warp_box

    def _warp(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, int]]:
        """:meth:`warp_maps` for (478, 3) float64 landmarks, with the frame's (N, 2) target
        vertices (:meth:`target_vertices`, full-image pixels) that it computed on the way, and the
        grid maps the maps were interpolated from, ``(grid_x, grid_y, step)`` ((gh, gw) float32;
        the maps themselves when ``step`` is 1)."""
        x0, y0, x1, y1 = self._warp_box
        width, height = x1 - x0, y1 - y0
        vertices = self.target_vertices(pts)
        # draw order: ring strips (outer first), then face triangles far to near (by the mean z of
        # their corners, summed by column: numpy's mean over an axis of 3 costs 3x as much)
        z = pts[self._depth_source, 2]
        depth = z[self._face_corners[0]] + z[self._face_corners[1]] + z[self._face_corners[2]]
        depth /= 3
        depth += self._hole_depth_bias
        order = np.concatenate([self._ring_order, len(self._ring_order) + np.argsort(-depth, kind="stable")])
        # np.take along axis 0 gathers rows several times faster than fancy indexing does
        triangles = np.take(self._triangles, order, axis=0)
        step = self.map_step or default_map_step(width, height)
        grid_w, grid_h = -(-width // step), -(-height // step)
        # grid pixel (i, j) sits at output pixel (x0 + (i + 0.5) * step - 0.5, ...): the alignment
        # cv2.resize assumes when it upsamples the maps
        grid_vertices = np.round(((vertices - np.array([x0, y0]) + 0.5) / step - 0.5) * 16)  # 1/16 grid pixels
        drawn = _raster_triangles(np.take(grid_vertices, triangles, axis=0), 4, (grid_h, grid_w), self._raster_margins)
        # (N, 2, 3) target -> source, in drawing order
        affine = _affines(np.take(self._source_tris, order, axis=0), np.take(vertices, triangles, axis=0))
        # coefficients in drawing order (drawn's indices), then the identity, self._identity_index:
        # the pixels no triangle draws (outside the outermost loop; drawn -1, numpy's last column)
        coef = np.empty((6, len(affine) + 1), np.float32)  # rows contiguous: see _affine_map
        coef[:, :-1] = affine.reshape(-1, 6).T
        coef[:, self._identity_index] = (1, 0, 0, 0, 1, 0)
        gx = (x0 + (np.arange(grid_w, dtype=np.float32) + 0.5) * step - 0.5)[None, :]
        gy = (y0 + (np.arange(grid_h, dtype=np.float32) + 0.5) * step - 0.5)[:, None]
        flat = drawn.ravel()
        map_x, map_y = (_affine_map(coef, j, flat, gx, gy) for j in (0, 3))
        # one-pixel slivers of folded triangles sample far away: a 3x3 median removes them and
        # leaves the (piecewise) affine maps elsewhere as they are
        grid_x = cv2.medianBlur(map_x, 3)
        grid_y = cv2.medianBlur(map_y, 3)
        map_x, map_y = grid_x, grid_y
        if step > 1:
            map_x = cv2.resize(grid_x, (grid_w * step, grid_h * step), interpolation=cv2.INTER_LINEAR)[:height, :width]
            map_y = cv2.resize(grid_y, (grid_w * step, grid_h * step), interpolation=cv2.INTER_LINEAR)[:height, :width]
        return map_x, map_y, vertices, (grid_x, grid_y, step)

    def render_frame(self, landmarks: np.ndarray) -> np.ndarray:
        if not self._prepared:
            raise RuntimeError("call prepare(portrait, portrait_landmarks) before rendering")
        pts = np.asarray(landmarks, dtype=np.float64)
        map_x, map_y, vertices, coarse = self._warp(pts)
        x0, y0, x1, y1 = self._warp_box
        frame = self.image.copy()
        region = frame[y0:y1, x0:x1]  # a view: the layers below draw into the frame
        region[...] = cv2.remap(self.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        detail = self._detail_factor()
        vertices -= np.array([x0, y0])
        if detail is not None:
            # the maps are zero off the portrait's face, and only the face's triangles sample it:
            # work in the box of the target face (padded for the maps' 3x3 median)
            # (the face and the forehead band above it)
            band = forehead_band(pts, self.topo.oval, self._forehead_arc) - np.array([x0, y0])
            support = np.vstack([vertices[: self._n_face_vertices], band])
            face = _patch_box(support, 3, x1 - x0, y1 - y0)
            if face is not None:
                fx0, fy0, fx1, fy1 = face
                origin = self._detail[1]
                log_gain = cv2.remap(detail, map_x[fy0:fy1, fx0:fx1] - origin[0], map_y[fy0:fy1, fx0:fx1] - origin[1],
                                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                patch = region[fy0:fy1, fx0:fx1]
                # cv2 multiplies the uint8 pixels by the float gain and rounds and saturates the
                # products itself (numpy: a float copy of the patch, then three more passes)
                patch[...] = cv2.multiply(patch, _detail_gain_rgb(log_gain), dtype=cv2.CV_8U)
        _soften_folds(region, map_x, map_y, coarse)
        if self._lids:
            for lid in self._lids:
                _draw_lid(region, lid, pts - np.array([x0, y0, 0]), vertices, map_x, map_y)
        for eye in self._eyes:
            _draw_eye(frame, eye, pts, self.feather, self.topo)
        if self._mouth is not None:
            _draw_mouth(frame, self.image, self._mouth, pts, self.topo, self.feather, self._teeth_bared())
        return frame


register_renderer("mesh", MeshRenderer)
register_renderer("neural", "facecue.neural:NeuralRenderer")  # trained generator + mapper; imports torch on first use


# --- the public entry point ----------------------------------------------------------------


def output_transform(image_size: tuple[int, int], landmarks: np.ndarray, output_size=None, full: bool = True
                     ) -> tuple[np.ndarray, tuple[int, int]]:
    """The similarity (2x3) from portrait pixels to output pixels, and the output ``(W, H)``.

    full=True: the whole portrait, at its own size (``output_size=None``), with its longer side
    scaled to ``output_size`` (an int), or stretched to ``output_size=(W, H)``.
    full=False: an aligned square face crop (:func:`facecue.landmarks.crop_face`) of side
    ``output_size`` (default 256).
    """
    width, height = image_size
    if not full:
        from .landmarks import alignment_matrix

        if output_size is not None and not isinstance(output_size, (int, np.integer)):
            raise InputError(None, f"a face crop needs one integer size, got {output_size!r}")
        side = int(output_size or CROP_SIZE)
        if side < 16:
            raise InputError(None, f"output size must be at least 16 px, got {side}")
        return alignment_matrix(landmarks, side), (side, side)
    if output_size is None:
        return np.array([[1.0, 0, 0], [0, 1.0, 0]]), (width, height)
    if isinstance(output_size, (int, np.integer)):
        if output_size < 16:
            raise InputError(None, f"output size must be at least 16 px, got {output_size}")
        factor = output_size / max(width, height)
        out = (max(int(round(width * factor)), 1), max(int(round(height * factor)), 1))
    else:
        out = tuple(int(v) for v in output_size)
        if len(out) != 2 or min(out) < 16:
            raise InputError(None, f"output size must be an int or (W, H) of at least 16 px, got {output_size!r}")
    # pixel centres map onto pixel centres
    sx, sy = out[0] / width, out[1] / height
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]]), out


# How sure the filled continuation is of a pyramid level's own colour, per unit of the share of
# portrait pixels under it: at 2 a pixel (or coarser cell) half inside the portrait keeps its own.
FILL_CONFIDENCE = 2.0


def fill_outside(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32: ``image`` (H, W, 3) where ``known`` (H, W) float32 (0..1, the share of each
    pixel that is portrait) is 1, and a smooth continuation of the known pixels elsewhere.

    Push-pull: the known pixels are averaged down a Gaussian pyramid (weighted by ``known``), then
    each level, from the coarsest, keeps its own average where enough of it is known
    (``FILL_CONFIDENCE``) and takes the coarser level's elsewhere. The fill's colours come from the
    nearest known pixels, spread further the further they are: no streaks (an edge pixel repeated
    outward) and no mirror image."""
    colours = [image.astype(np.float32) * known[..., None]]
    weights = [known.astype(np.float32)]
    while min(weights[-1].shape) > 4:
        colours.append(cv2.pyrDown(colours[-1]))
        weights.append(cv2.pyrDown(weights[-1]))
    total = float(weights[-1].sum())
    mean = colours[-1].reshape(-1, 3).sum(axis=0) / max(total, 1e-6)
    coarse = weights[-1][..., None]
    filled = np.where(coarse > 1e-6, colours[-1] / np.maximum(coarse, 1e-6), mean).astype(np.float32)
    for colour, weight in zip(colours[-2::-1], weights[-2::-1]):
        finer = cv2.pyrUp(filled, dstsize=(weight.shape[1], weight.shape[0]))
        confidence = np.clip(weight * FILL_CONFIDENCE, 0.0, 1.0)[..., None]
        own = colour / np.maximum(weight, 1e-6)[..., None]
        filled = confidence * own + (1.0 - confidence) * finer
    return filled


def warp_portrait(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The portrait under a similarity ``matrix`` (2x3) into an image of ``size`` (W, H).

    Where the output reaches past the portrait's edges (a face crop near the border), the portrait
    is continued by :func:`fill_outside`: smooth colours from the nearest edge, not a mirror image
    (mirroring duplicates shoulders and objects) nor the edge pixels repeated outward (streaks)."""
    interpolation = cv2.INTER_AREA if abs(matrix[0, 0]) + abs(matrix[0, 1]) < 1 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(image, matrix, size, flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), matrix, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if inside.min() == 255:
        return warped
    known = inside.astype(np.float32) * (1.0 / 255.0)
    filled = fill_outside(warped, known)
    return np.clip(warped * known[..., None] + filled * (1.0 - known[..., None]) + 0.5, 0, 255).astype(np.uint8)


def render(
    portrait: np.ndarray,
    portrait_landmarks: np.ndarray,
    landmark_sequence: Iterable[np.ndarray],
    renderer: str | Renderer = "mesh",
    output_size: int | tuple[int, int] | None = None,
    full: bool = True,
    progress: bool = False,
    expression: np.ndarray | None = None,
    workers=None,
    rest_landmarks: np.ndarray | None = None,
    **options,
) -> Iterator[np.ndarray]:
    """Render the portrait driven by relocated landmarks, frame by frame.

    Parameters
    ----------
    portrait : (H, W, 3) uint8 RGB
    portrait_landmarks : (478, 3) float pixels of the portrait's face
    landmark_sequence : iterable of (478, 3) float pixels in the portrait's image space (a
        ``(T, 478, 3)`` array works too); consumed lazily
    renderer : a registered name (:func:`available_renderers`) or a :class:`Renderer` instance
    output_size, full : see :func:`output_transform`
    progress : report progress (:func:`facecue.progress.progress_bar`)
    expression : optional (T, 8) per-frame emotion weights, intensity included (``EMOTIONS``
        order): how strongly each emotion's wrinkles and folds show, for renderers that draw them
    workers : render in that many worker processes (an int), or in running
        :class:`facecue.parallel.RenderWorkers`, while the caller consumes the frames (same
        frames, same order); only for renderers with ``parallel = True``. None or 0: here.
    rest_landmarks : optional (478, 3) float pixels of the portrait's face at rest as the cues
        start from it (lips closed, its own smile taken off): where renderers that draw a mouth
        interior hang the upper teeth (default: ``portrait_landmarks``)
    options : passed to the renderer's constructor when ``renderer`` is a name

    Returns
    -------
    An iterator of (H', W', 3) uint8 RGB frames. Inputs are validated before the first frame is
    requested (this function is not a generator); each landmark frame is validated as it comes.
    """
    image = check_portrait(portrait)
    points = check_landmarks(portrait_landmarks, "portrait landmarks")
    engine = get_renderer(renderer, **options) if isinstance(renderer, str) else renderer
    if not isinstance(engine, Renderer):
        raise TypeError(f"renderer must be a name or a Renderer, got {type(renderer).__name__}")
    matrix, size = output_transform((image.shape[1], image.shape[0]), points, output_size, full)
    identity = np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]) and size == (image.shape[1], image.shape[0])
    if not identity:
        image = warp_portrait(image, matrix, size)
        points = _transform_points(points, matrix)
    rest = None if rest_landmarks is None else check_landmarks(rest_landmarks, "rest landmarks")
    engine.prepare(image, points)
    if rest is not None and hasattr(engine, "set_rest_face"):
        engine.set_rest_face(rest if identity else _transform_points(rest, matrix))
    total = len(landmark_sequence) if hasattr(landmark_sequence, "__len__") else None

    draws_expression = expression is not None and hasattr(engine, "set_expression")

    def checked(sequence) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for index, landmarks in enumerate(sequence):
            pts = check_landmarks(landmarks, f"landmark frame {index}")
            if not identity:
                pts = _transform_points(pts, matrix)
            yield pts, (expression[min(index, len(expression) - 1)] if draws_expression else None)

    def frames() -> Iterator[np.ndarray]:
        sequence = iter(landmark_sequence)
        if progress:
            from .progress import progress_bar

            sequence = progress_bar(sequence, total=total, desc="render", unit="frame", leave=False)
        if workers and getattr(engine, "parallel", False):
            from .parallel import render_in_workers

            yield from render_in_workers(engine, checked(sequence), workers)
            return
        batch_size = max(1, int(getattr(engine, "batch_size", 1)))
        pending: list[np.ndarray] = []  # at most batch_size frames: memory stays bounded
        for pts, weights in checked(sequence):
            if weights is not None:
                engine.set_expression(weights)
            if batch_size == 1:
                yield engine.render_frame(pts)
                continue
            pending.append(pts)
            if len(pending) == batch_size:
                yield from engine.render_batch(pending)
                pending = []
        if pending:
            yield from engine.render_batch(pending)

    return frames()


def _transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """2x3 transform of (478, 3) pixel landmarks; z scaled by the mean linear scale."""
    out = points.astype(np.float64).copy()
    out[:, :2] = points[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    out[:, 2] = points[:, 2] * math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    return out.astype(np.float32)


# --- portrait landmarks --------------------------------------------------------------------

PORTRAIT_REFINE_PASSES = 2  # extra tracking passes over the still portrait


def detect_portrait_landmarks(image: np.ndarray, *, source=None, passes: int = PORTRAIT_REFINE_PASSES) -> np.ndarray:
    """Landmarks of a portrait for rendering: detection, then tracked again on the same image.

    MediaPipe's first pass fits the mesh in the face detector's box; on raised brows or an open
    mouth that fit can be far off (brows 20 px low on a 256 px MEAD face). Tracking the same image
    again starts from the mesh's own box and converges in two or three passes. A pass that lands
    on another face (group photos) is ignored.

    Returns
    -------
    (478, 3) float32 pixels. Raises NoFaceError when there is no face.
    """
    from .landmarks import detect_landmarks

    return detect_landmarks(image, source=source, refine_passes=passes)


# --- driving a portrait with cues from elsewhere -------------------------------------------


def _lid_pairs():
    return ((RIGHT_UPPER_LID, RIGHT_LOWER_LID), (LEFT_UPPER_LID, LEFT_LOWER_LID))


def retarget_cues(portrait_cues, driving_cues) -> np.ndarray:
    """Landmarks that make the portrait move like the driving cues, in the portrait's pixels.

    * Expression: the driving sequence's normalized landmarks minus its identity (neutral) shape,
      added to the portrait's own normalized landmarks (canonical units, so face size cancels).
      Lid openings follow the driver's aperture *ratio* (an eye closes fully, never past the
      lower lid, whatever the two eyes' sizes) and the inner lips never cross.
    * Head pose: the rotation, scale and translation *changes* relative to the driving
      sequence's first frame, applied on top of the portrait's own pose (translation scaled by
      portrait scale / driving scale).

    Parameters
    ----------
    portrait_cues : FaceCues of the portrait (its first frame is used)
    driving_cues : FaceCues of T frames (any image space)

    Returns
    -------
    (T, 478, 3) float32 pixels in the portrait's image space.
    """
    from .cues import relocate

    p = portrait_cues
    d = driving_cues
    base = p.normalized[0].astype(np.float64)
    expression = d.normalized.astype(np.float64) - d.identity[None].astype(np.float64)
    norm = base[None] + expression
    for upper, lower in _lid_pairs():
        up, lo = list(upper), list(lower)
        drive_gap = (d.normalized[:, lo, 1] - d.normalized[:, up, 1]).astype(np.float64).sum(axis=1)
        rest_gap = float((d.identity[lo, 1] - d.identity[up, 1]).sum())
        ratio = np.clip(drive_gap / max(rest_gap, 1e-6), 0.0, 1.6)  # (T,)
        own_gap = base[lo] - base[up]  # (7, 3)
        norm[:, up] = norm[:, lo] - ratio[:, None, None] * own_gap[None]
    topo = mesh_topology()
    up, lo = topo.mouth_upper[1:-1], topo.mouth_lower[1:-1]
    crossed = norm[:, lo, 1] < norm[:, up, 1]
    mean_y = 0.5 * (norm[:, lo, 1] + norm[:, up, 1])
    norm[:, up, 1] = np.where(crossed, mean_y, norm[:, up, 1])
    norm[:, lo, 1] = np.where(crossed, mean_y, norm[:, lo, 1])

    relative = d.rotation.astype(np.float64) @ d.rotation[0].T.astype(np.float64)  # (T, 3, 3)
    rotation = relative @ p.rotation[0].astype(np.float64)
    ratio = float(p.scale[0]) / float(d.scale[0])
    scale = d.scale.astype(np.float64) * ratio
    translation = p.translation[0].astype(np.float64) + (d.translation - d.translation[0]).astype(np.float64) * ratio
    return relocate(norm, scale, rotation, translation).astype(np.float32)


def same_face(portrait_cues, driving_cues, tolerance: float = 0.08) -> bool:
    """Whether the driving cues were made on the portrait itself (same image size and the first
    frame's mesh within ``tolerance`` x face size of the portrait's): then their landmarks can
    drive it as they are."""
    from .landmarks import face_size

    if tuple(portrait_cues.image_size) != tuple(driving_cues.image_size):
        return False
    own = portrait_cues.landmarks()[0]
    first = driving_cues.slice(0, 1).landmarks()[0]
    distance = np.linalg.norm(own[:N_MESH_POINTS, :2] - first[:N_MESH_POINTS, :2], axis=1)
    return bool(np.median(distance) < tolerance * face_size(own))


def portrait_at_cue_size(image: np.ndarray, points: np.ndarray, cues, *, source=None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The portrait at the size its own cues were made at: ``generate --full --size`` makes its
    cues on the portrait scaled down to the output size, and rendering those cues on the original
    would take them for another face's and retarget them. When ``cues`` (FaceCues) have a smaller
    image than ``image`` (H, W, 3) of the same shape (scaled by its longer side, as generate scales
    it, the other side within a pixel) and its face (``points`` (478, 3) pixels), scaled by that factor, is where their first
    frame's is (:func:`same_face`), the image is scaled down to their size (the output too, unless
    a size is asked for) and its landmarks found again; otherwise both are returned as they are
    (another face's cues are retargeted at full resolution, and a portrait is never enlarged)."""
    import cv2

    from .cues import FaceCues

    height, width = image.shape[:2]
    cue_width, cue_height = (int(v) for v in cues.image_size)
    if (cue_width, cue_height) == (width, height):
        return image, points
    factor = max(cue_width, cue_height) / max(width, height)
    if factor >= 1 or abs(width * factor - cue_width) > 1.0 or abs(height * factor - cue_height) > 1.0:
        return image, points
    scaled = points * np.float32(factor)
    if not same_face(FaceCues.from_landmarks(scaled[None], cues.fps, (cue_width, cue_height)), cues):
        return image, points
    resized = cv2.resize(image, (cue_width, cue_height), interpolation=cv2.INTER_AREA)
    return resized, detect_portrait_landmarks(resized, source=source)


def rest_face_landmarks(portrait_cues, cues) -> np.ndarray:
    """(478, 3) float32 pixels: the rest shape ``cues`` start from (``cues.identity``; facecue's
    cue models: lips closed, the portrait's own smile taken off), placed where the face of
    ``portrait_cues`` (its first frame) is; :func:`render`'s ``rest_landmarks``."""
    from .cues import relocate

    return relocate(cues.identity[None], portrait_cues.scale[:1], portrait_cues.rotation[:1],
                    portrait_cues.translation[:1])[0]


def driving_landmarks(portrait_cues, driving_cues, retarget: str = "auto") -> np.ndarray:
    """The (T, 478, 3) landmarks that drive the portrait: the cues' own landmarks when they were
    made on this portrait (``retarget="auto"`` and :func:`same_face`, or ``"never"``), else
    :func:`retarget_cues` (``"always"``)."""
    if drives_as_is(portrait_cues, driving_cues, retarget):
        return driving_cues.landmarks().astype(np.float32)
    return retarget_cues(portrait_cues, driving_cues)


def drives_as_is(portrait_cues, driving_cues, retarget: str = "auto") -> bool:
    """Whether :func:`driving_landmarks` uses the cues' own landmarks (made on this portrait, or
    ``retarget="never"``) rather than retargeting them."""
    if retarget not in ("auto", "always", "never"):
        raise InputError(None, f"retarget must be 'auto', 'always' or 'never', got {retarget!r}")
    return retarget == "never" or (retarget == "auto" and same_face(portrait_cues, driving_cues))
