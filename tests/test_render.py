"""Stage 2, the training-free mesh renderer: known answers on the bundled portrait, streaming,
input checks, retargeting and the ``facecue render`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecue.constants import LEFT_IRIS, N_LANDMARKS, N_MESH_POINTS, RIGHT_IRIS
from facecue.cues import FaceCues, angles_to_rotation, relocate, rotation_to_angles
from facecue.errors import InputError
from facecue.evaluate import psnr
from facecue.motion import close_eyes, open_mouth, scripted_motion
from facecue.render import (
    MeshRenderer,
    Renderer,
    available_renderers,
    boundary_loops,
    driving_landmarks,
    get_renderer,
    mesh_topology,
    register_renderer,
    render,
    retarget_cues,
    same_face,
)


@pytest.fixture(scope="module")
def portrait_cues(portrait, portrait_landmarks) -> FaceCues:
    height, width = portrait.shape[:2]
    return FaceCues.from_landmarks(portrait_landmarks[None], 25.0, (width, height))


@pytest.fixture(scope="module")
def mesh(portrait, portrait_landmarks) -> MeshRenderer:
    renderer = get_renderer("mesh")
    renderer.prepare(portrait, portrait_landmarks)
    return renderer


def edited(cues: FaceCues, normalized: np.ndarray, angles=None) -> np.ndarray:
    """Landmarks of the portrait with edited normalized landmarks (and optionally pose angles)."""
    rotation = cues.rotation[:1] if angles is None else angles_to_rotation(np.asarray(angles, float)[None])
    return relocate(normalized[None], cues.scale[:1], rotation, cues.translation[:1])[0]


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def polygon_mask(shape, polygon) -> np.ndarray:
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon[:, :2]).astype(np.int32)], 1)
    return mask.astype(bool)


# --- topology --------------------------------------------------------------------------------


def test_mesh_topology_is_a_disc_with_three_holes():
    topo = mesh_topology()
    assert topo.face_triangles.shape == (852, 3)  # Euler: V - E + F = 1 - 3 holes with 468 V, 1322 E
    edges: dict[tuple[int, int], int] = {}
    for tri in topo.face_triangles:
        for a, b in ((0, 1), (1, 2), (0, 2)):
            key = tuple(sorted((int(tri[a]), int(tri[b]))))
            edges[key] = edges.get(key, 0) + 1
    assert max(edges.values()) == 2
    lengths = sorted(len(loop) for loop in boundary_loops(topo.face_triangles))
    assert lengths == [16, 16, 20, 36]  # two eyes, the inner lips, the face oval
    assert len(topo.hole_triangles) == 14 + 14 + 18
    # the fills close the holes: no boundary left but the oval
    closed = np.vstack([topo.face_triangles, topo.hole_triangles])
    assert [len(loop) for loop in boundary_loops(closed)] == [36]


# --- known answers ---------------------------------------------------------------------------


def test_identity_landmarks_reproduce_the_portrait(mesh, portrait, portrait_landmarks):
    frame = mesh.render_frame(portrait_landmarks)
    assert frame.shape == portrait.shape and frame.dtype == np.uint8
    assert psnr(frame, portrait) > 35.0


def test_translation_moves_the_face_by_that_amount(mesh, portrait, portrait_landmarks):
    import cv2

    shift = np.array([6.0, -4.0, 0.0], np.float32)
    frame = mesh.render_frame(portrait_landmarks + shift)
    x0, y0 = np.floor(portrait_landmarks[:N_MESH_POINTS, :2].min(axis=0)).astype(int) + 15
    x1, y1 = np.ceil(portrait_landmarks[:N_MESH_POINTS, :2].max(axis=0)).astype(int) - 15
    before = luminance(portrait[y0:y1, x0:x1]).astype(np.float32)
    after = luminance(frame[y0:y1, x0:x1]).astype(np.float32)
    window = cv2.createHanningWindow((x1 - x0, y1 - y0), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(before, after, window)
    assert abs(dx - 6.0) < 0.75 and abs(dy + 4.0) < 0.75
    # and the inner face matches the shifted portrait
    inner = portrait[y0:y1, x0:x1]
    moved = frame[y0 - 4 : y1 - 4, x0 + 6 : x1 + 6]
    assert psnr(moved, inner) > 30.0


def test_open_mouth_shows_a_dark_cavity(portrait, portrait_landmarks, portrait_cues):
    topo = mesh_topology()
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.3))
    inner = polygon_mask(portrait.shape, target[topo.mouth_loop])
    own = polygon_mask(portrait.shape, portrait_landmarks[topo.mouth_loop])
    for mode in ("auto", "synthesize"):
        frame = next(render(portrait, portrait_landmarks, [target], mouth=mode))
        dark = luminance(frame)[inner] < 70
        assert dark.mean() > 0.3, mode
    assert (luminance(portrait)[own] < 70).mean() < 0.15  # the portrait's smile is mostly teeth


def test_synthesized_mouth_has_teeth_under_the_upper_lip(portrait, portrait_landmarks, portrait_cues):
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.3))
    frame = next(render(portrait, portrait_landmarks, [target], mouth="synthesize"))
    upper, lower = target[13, :2], target[14, :2]
    gap = lower[1] - upper[1]
    x = int(round(upper[0]))
    column = luminance(frame)[int(upper[1]) : int(lower[1]), x - 1 : x + 2].mean(axis=1)
    assert gap > 8
    assert column[: len(column) // 4].max() > 150  # teeth right below the upper lip
    assert column[len(column) // 3 : 2 * len(column) // 3].mean() < 80  # cavity further down


def test_synthesized_interior_begins_inside_the_inner_lips(portrait, portrait_landmarks, portrait_cues):
    """Real lips still show just inside MediaPipe's inner-lip points: the synthesized interior fades
    in over MOUTH_LIP_INSET of the gap from each inner lip, but over no more than MOUTH_LIP_INSET_MAX
    eye units (a wide-open mouth shows its teeth, not a band of stretched lip). Just inside the
    lips the frame is the warped lip (as with mouth="warp"); past the inset, the interior. Rendered
    as a 400 px face crop, so that the inset spans a few pixels."""
    from facecue.render import MOUTH_LIP_INSET, MOUTH_LIP_INSET_MAX, output_transform

    size = (portrait.shape[1], portrait.shape[0])
    matrix, _ = output_transform(size, portrait_landmarks, 400, full=False)
    for opening in (0.3, 0.6):
        target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], opening))
        synthesized, warped = (next(render(portrait, portrait_landmarks, [target], mouth=mode, output_size=400,
                                           full=False)).astype(np.float32) for mode in ("synthesize", "warp"))
        points = target[:, :2] @ matrix[:, :2].T + matrix[:, 2]  # output pixels
        upper, lower = points[13], points[14]
        gap = lower[1] - upper[1]
        inset = min(MOUTH_LIP_INSET * gap, MOUTH_LIP_INSET_MAX * np.linalg.norm(points[33] - points[263]))
        assert inset > 3  # pixel rows enough to look at
        x = int(round(upper[0]))
        rows = np.arange(int(np.ceil(upper[1])), int(np.floor(lower[1])) + 1)
        from_lip = np.minimum(rows - upper[1], lower[1] - rows)  # pixels from the nearer inner lip
        difference = np.abs(synthesized[rows, x - 1 : x + 2] - warped[rows, x - 1 : x + 2]).mean(axis=(1, 2))
        assert difference[from_lip < 0.25 * inset].max() < 10, opening  # the lips' own edges
        below_upper = rows - upper[1]
        past_inset = (below_upper > 1.5 * inset) & (below_upper < 3.0 * inset)  # the upper teeth
        assert past_inset.sum() >= 3 and difference[past_inset].mean() > 40, opening
        middle = (below_upper > 0.4 * gap) & (below_upper < 0.6 * gap)
        assert difference[middle].min() > 40, opening  # the cavity


def test_closed_eyes_remove_the_iris(mesh, portrait, portrait_landmarks, portrait_cues):
    target = edited(portrait_cues, close_eyes(portrait_cues.normalized[0], 1.0))
    frame = mesh.render_frame(target)
    for iris in (RIGHT_IRIS, LEFT_IRIS):
        centre = portrait_landmarks[iris[0], :2]
        radius = np.linalg.norm(portrait_landmarks[list(iris[1:]), :2] - centre, axis=1).mean()
        yy, xx = np.mgrid[: portrait.shape[0], : portrait.shape[1]]
        disc = np.hypot(xx - centre[0], yy - centre[1]) <= radius
        before, after = luminance(portrait)[disc].mean(), luminance(frame)[disc].mean()
        assert before < 110  # a brown iris
        assert after > before + 40  # lid skin now
        assert luminance(frame)[disc].min() > luminance(portrait)[disc].min() + 40  # no dark pupil left


def test_gaze_moves_the_iris(mesh, portrait, portrait_landmarks, portrait_cues):
    from facecue.cues import place_iris

    target = edited(portrait_cues, place_iris(portrait_cues.normalized[0], np.array([25.0, 0.0])))
    frame = mesh.render_frame(target)
    topo = mesh_topology()
    for side, iris in enumerate((RIGHT_IRIS, LEFT_IRIS)):
        moved = target[iris[0], 0] - portrait_landmarks[iris[0], 0]
        assert moved > 1.5
        opening = polygon_mask(portrait.shape, portrait_landmarks[topo.eye_loops[side]])
        yy, xx = np.nonzero(opening)

        def dark_centre(image):
            weight = np.clip(170.0 - luminance(image)[yy, xx], 0, None)  # iris and pupil
            return (weight * xx).sum() / weight.sum()

        # the eye's dark mass moved right, about as far as the iris centre
        shift = dark_centre(frame) - dark_centre(portrait)
        assert 0.4 * moved < shift < 1.6 * moved


SCLERA, IRIS = (235.0, 228.0, 222.0), (60.0, 40.0, 30.0)


@pytest.fixture(scope="module")
def large_portrait(portrait, portrait_landmarks):
    """The portrait and its landmarks at 3x the size (its irises are 4 pixels wide), and its cues."""
    import cv2

    image = cv2.resize(portrait, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    landmarks = portrait_landmarks * 3.0
    height, width = image.shape[:2]
    return image, landmarks, FaceCues.from_landmarks(landmarks[None], 25.0, (width, height))


def painted_eyes(portrait, landmarks, shift: float, scale: float, shadow_px: int = 0):
    """The portrait with both eyes repainted: flat sclera in the lid openings and a flat dark iris
    ``shift`` pixels right of MediaPipe's iris centre, ``scale`` x its radius; the top
    ``shadow_px`` rows of each opening's columns at half brightness (the lashes' shadow). Returns
    the image, and per eye the painted iris centre (2,) and radius."""
    import cv2

    image = portrait.copy()
    topo = mesh_topology()
    irises = []
    for side, iris in enumerate((RIGHT_IRIS, LEFT_IRIS)):
        centre = landmarks[iris[0], :2] + np.array([shift, 0.0])
        radius = scale * np.linalg.norm(landmarks[list(iris[1:]), :2] - landmarks[iris[0], :2], axis=1).mean()
        opening = polygon_mask(image.shape, landmarks[topo.eye_loops[side]])
        layer = np.zeros(image.shape[:2], np.uint8)
        cv2.circle(layer, tuple(np.round(centre).astype(int)), int(round(radius)), 1, -1)
        image[opening] = SCLERA
        image[opening & (layer > 0)] = IRIS
        if shadow_px:
            top = np.cumsum(opening, axis=0)  # rows into the opening, per column
            shaded = opening & (top <= shadow_px)
            image[shaded] = image[shaded] // 2
        irises.append((centre, float(round(radius))))
    return image, irises


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_the_iris_is_found_where_it_is_and_moves_whole(large_portrait, shift):
    """An iris right of MediaPipe's centre by half its radius, and smaller: when the gaze moves
    left, the whole dark iris moves, no dark crescent stays behind and sclera fills its place."""
    from facecue.cues import place_iris

    portrait, portrait_landmarks, portrait_cues = large_portrait
    radius0 = np.linalg.norm(portrait_landmarks[RIGHT_IRIS[1], :2] - portrait_landmarks[RIGHT_IRIS[0], :2])
    image, irises = painted_eyes(portrait, portrait_landmarks, shift * radius0, 0.8)
    renderer = get_renderer("mesh")
    renderer.prepare(image, portrait_landmarks)
    target = edited(portrait_cues, place_iris(portrait_cues.normalized[0], np.array([-20.0, 0.0])))
    frame = renderer.render_frame(target)
    topo = mesh_topology()
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    lum = luminance(frame)
    sclera = luminance(np.array([SCLERA]))[0]
    for side, iris in enumerate((RIGHT_IRIS, LEFT_IRIS)):
        moved = target[iris[0], :2] - portrait_landmarks[iris[0], :2]
        assert moved[0] < -4
        centre, radius = irises[side]
        opening = polygon_mask(image.shape, target[topo.eye_loops[side]])
        to_moved = np.hypot(xx - centre[0] - moved[0], yy - centre[1] - moved[1])
        inner, outer = opening & (to_moved < radius - 1.5), opening & (to_moved > radius + 1.0)
        uncovered = outer & (np.hypot(xx - centre[0], yy - centre[1]) < radius + 1.0)  # where it was
        assert lum[inner].mean() < luminance(np.array([IRIS]))[0] + 25, "the moved iris is dark"
        assert (lum[outer] < 150).mean() < 0.02, "no iris left behind outside the moved one"
        assert uncovered.sum() > 50 and lum[uncovered].mean() > 0.9 * sclera, "sclera where the iris was"


def test_a_widened_eye_shows_sclera_and_iris_not_a_block(large_portrait):
    """Upper lids raised (surprise) on narrowed eyes that hide the iris' top: the iris continues
    upward under the raised lid, the lashes' shadow under the lid keeps its depth instead of
    stretching with the opening, and below it the sclera beside the iris is as bright as painted."""
    from facecue.motion import close_eyes

    portrait, landmarks, cues = large_portrait
    narrow = edited(cues, close_eyes(cues.normalized[0], 0.3))  # the portrait's eyes, narrowed
    shadow_px = 3
    image, irises = painted_eyes(portrait, narrow, 0.0, 1.0, shadow_px)
    renderer = get_renderer("mesh")
    renderer.prepare(image, narrow)
    target = edited(cues, close_eyes(cues.normalized[0], -0.5))
    frame = renderer.render_frame(target)
    topo = mesh_topology()
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    lum = luminance(frame)
    for side in (0, 1):
        centre, radius = irises[side]
        before = polygon_mask(image.shape, narrow[topo.eye_loops[side]])
        after = polygon_mask(image.shape, target[topo.eye_loops[side]])
        iris_shown = after & ~before & (yy < centre[1]) & (np.hypot(xx - centre[0], yy - centre[1]) < radius - 1.5)
        assert iris_shown.sum() >= 20 and lum[iris_shown].mean() < 90, "the iris continues under the raised lid"
        depths, below_shadow = [], []
        for x in range(int(centre[0] - 2.5 * radius), int(centre[0] + 2.5 * radius)):
            if abs(x - centre[0]) < radius + 3 or before[:, x].sum() < 3 * shadow_px:
                continue  # the iris' columns, and the corners' narrow ones (all shadow)
            rows = np.flatnonzero(after[:, x])
            depths.append(np.count_nonzero(lum[rows, x] < 150))
            below_shadow.extend(lum[rows.min() + shadow_px + 2 : np.flatnonzero(before[:, x]).min(), x])
        assert len(depths) >= 8 and np.median(depths) <= shadow_px, depths
        assert len(below_shadow) >= 20 and np.mean(np.array(below_shadow) > 185) > 0.9


def test_background_far_from_the_face_is_unchanged(mesh, portrait, portrait_cues):
    angles = rotation_to_angles(portrait_cues.rotation[0]) + np.array([18.0, 6.0, 4.0])
    target = edited(portrait_cues, portrait_cues.normalized[0], angles)
    target[:, :2] += np.array([5.0, 3.0])
    frame = mesh.render_frame(target)
    difference = np.abs(frame.astype(int) - portrait.astype(int)).sum(axis=2)
    assert difference[:24, :24].max() == 0 and difference[-24:, -24:].max() == 0  # corners untouched
    border = np.ones(difference.shape, bool)
    border[20:-20, 20:-20] = False
    assert difference[border].mean() < 3.0
    # while the face did move
    face = portrait_cues.landmarks()[0][:N_MESH_POINTS, :2]
    x0, y0, x1, y1 = np.r_[face.min(axis=0), face.max(axis=0)].astype(int)
    assert difference[y0:y1, x0:x1].mean() > 20


def test_head_turns_do_not_tear(mesh, portrait_cues, portrait_landmarks):
    """At +-20 degrees of yaw every pixel of the face comes from near the face: no holes onto far
    background, and the source points stay continuous away from the silhouette."""
    for yaw in (-20.0, 20.0):
        angles = rotation_to_angles(portrait_cues.rotation[0]) + np.array([yaw, 0.0, 0.0])
        target = edited(portrait_cues, portrait_cues.normalized[0], angles)
        map_x, map_y, (bx, by, _, _) = mesh.warp_maps(target)
        polygon = target[mesh_topology().oval, :2] - np.array([bx, by])
        inside = polygon_mask(map_x.shape, polygon)
        x0, y0 = portrait_landmarks[:N_MESH_POINTS, :2].min(axis=0) - 5
        x1, y1 = portrait_landmarks[:N_MESH_POINTS, :2].max(axis=0) + 5
        sx, sy = map_x[inside], map_y[inside]
        assert ((sx > x0) & (sx < x1) & (sy > y0) & (sy < y1)).mean() > 0.995
        jumps = np.abs(np.diff(map_x, axis=1))[inside[:, 1:] & inside[:, :-1]]
        assert np.percentile(jumps, 99.9) < 6.0  # a hole (identity map) would jump by the head's motion
        xx = np.arange(map_x.shape[1])[None, :] + bx
        assert np.abs(map_x - xx)[inside].mean() > 2.0  # and the face did turn


def test_fold_search_on_the_grid_maps_finds_what_the_full_maps_do(mesh, portrait_cues):
    """The fold softening looks for folds on the coarse grid maps first (a full-resolution jump
    needs a grid jump ``step`` times as large): the frame is the one a search of the full maps gives."""
    from facecue.render import _soften_folds

    for yaw in (-25.0, 0.0, 25.0):
        angles = rotation_to_angles(portrait_cues.rotation[0]) + np.array([yaw, 0.0, 0.0])
        target = edited(portrait_cues, portrait_cues.normalized[0], angles)
        map_x, map_y, _, coarse = mesh._warp(np.asarray(target, np.float64))
        assert coarse[2] > 1  # the maps were interpolated from a grid
        x0, y0, x1, y1 = mesh._warp_box
        frames = []
        for grid in (coarse, None):
            frame = mesh.texture[y0:y1, x0:x1].copy()
            _soften_folds(frame, map_x, map_y, grid)
            frames.append(frame)
        assert np.array_equal(frames[0], frames[1]), f"yaw {yaw}"
        if yaw:
            assert not np.array_equal(frames[0], mesh.texture[y0:y1, x0:x1])  # a turned head has folds


# --- interface -------------------------------------------------------------------------------


def test_output_size_and_crop(portrait, portrait_landmarks):
    frames = render(portrait, portrait_landmarks, [portrait_landmarks], output_size=256)
    assert next(frames).shape == (256, 256, 3)
    frames = render(portrait, portrait_landmarks, [portrait_landmarks], output_size=(320, 200))
    assert next(frames).shape == (200, 320, 3)
    frame = next(render(portrait, portrait_landmarks, [portrait_landmarks], output_size=128, full=False))
    assert frame.shape == (128, 128, 3)
    # full-resolution output of a larger portrait: its own size by default
    import cv2

    big = cv2.resize(portrait, (700, 900), interpolation=cv2.INTER_LINEAR)
    points = portrait_landmarks.copy()
    points[:, 0] = (points[:, 0] + 0.5) * 700 / portrait.shape[1] - 0.5
    points[:, 1] = (points[:, 1] + 0.5) * 900 / portrait.shape[0] - 0.5
    frame = next(render(big, points, [points]))
    assert frame.shape == (900, 700, 3)
    assert psnr(frame, big) > 35.0


def test_resized_output_matches_the_resized_portrait(portrait, portrait_landmarks):
    import cv2

    frame = next(render(portrait, portrait_landmarks, [portrait_landmarks], output_size=256))
    assert psnr(frame, cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)) > 35.0


def test_frames_are_streamed_lazily(portrait, portrait_landmarks):
    pulled = []

    def sequence():
        for index in range(1000):
            pulled.append(index)
            yield portrait_landmarks

    frames = render(portrait, portrait_landmarks, sequence())
    assert pulled == []  # nothing rendered before asked
    first, second = next(frames), next(frames)
    assert first.shape == second.shape
    assert len(pulled) == 2


def test_rendering_is_deterministic(mesh, portrait_cues):
    motion = scripted_motion(portrait_cues, 20, 25.0)
    landmarks = motion.landmarks()
    a = mesh.render_frame(landmarks[13])
    mesh.render_frame(landmarks[3])
    b = mesh.render_frame(landmarks[13])
    assert np.array_equal(a, b)


def test_bad_inputs_raise_clear_errors(portrait, portrait_landmarks):
    with pytest.raises(InputError, match=str(N_LANDMARKS)):
        render(portrait, portrait_landmarks[:N_MESH_POINTS], [portrait_landmarks])
    with pytest.raises(InputError, match="uint8"):
        render(portrait.astype(np.float32), portrait_landmarks, [portrait_landmarks])
    with pytest.raises(InputError, match="RGB"):
        render(portrait[..., 0], portrait_landmarks, [portrait_landmarks])
    with pytest.raises(InputError, match="unknown renderer"):
        render(portrait, portrait_landmarks, [portrait_landmarks], renderer="nope")
    frames = render(portrait, portrait_landmarks, [portrait_landmarks, portrait_landmarks[:100]])
    next(frames)
    with pytest.raises(InputError, match="frame 1.*478"):
        next(frames)
    bad = portrait_landmarks.copy()
    bad[5, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        next(render(portrait, portrait_landmarks, [bad]))


def test_registry_takes_new_renderers_by_name(portrait, portrait_landmarks):
    assert "mesh" in available_renderers()

    class Flat(Renderer):
        name = "flat-test"

        def __init__(self, value=7):
            self.value = value

        def prepare(self, portrait, portrait_landmarks):
            self.shape = portrait.shape

        def render_frame(self, landmarks):
            return np.full(self.shape, self.value, np.uint8)

    register_renderer("flat-test", Flat)
    register_renderer("lazy-test", "facecue.render:MeshRenderer")
    try:
        assert {"flat-test", "lazy-test"} <= set(available_renderers())
        frame = next(render(portrait, portrait_landmarks, [portrait_landmarks], renderer="flat-test", value=3))
        assert frame.max() == 3
        assert isinstance(get_renderer("lazy-test"), MeshRenderer)
        with pytest.raises(ValueError, match="already registered"):
            register_renderer("flat-test", Flat)
    finally:
        from facecue import render as render_module

        render_module._RENDERERS.pop("flat-test", None)
        render_module._RENDERERS.pop("lazy-test", None)


def test_portrait_landmarks_are_refined_near_the_detection(portrait, portrait_landmarks):
    from facecue.errors import NoFaceError
    from facecue.landmarks import detect_landmarks, face_size
    from facecue.render import detect_portrait_landmarks

    refined = detect_portrait_landmarks(portrait)
    assert refined.shape == (N_LANDMARKS, 3)
    np.testing.assert_allclose(refined, portrait_landmarks, atol=1e-3)  # detect_landmarks refines by default
    cold = detect_landmarks(portrait, refine_passes=0)
    drift = np.median(np.linalg.norm(refined[:, :2] - cold[:, :2], axis=1))
    assert 0 < drift < 0.03 * face_size(portrait_landmarks)
    with pytest.raises(NoFaceError):
        detect_portrait_landmarks(np.full((128, 128, 3), 90, np.uint8))


# --- retargeting -----------------------------------------------------------------------------


def test_retarget_of_the_portraits_own_motion_is_that_motion(portrait_cues):
    motion = scripted_motion(portrait_cues, 30, 25.0)
    retargeted = retarget_cues(portrait_cues, motion)
    assert retargeted.shape == (30, N_LANDMARKS, 3)
    assert np.abs(retargeted[:, :, :2] - motion.landmarks()[:, :, :2]).max() < 0.05
    assert same_face(portrait_cues, motion)
    assert np.array_equal(driving_landmarks(portrait_cues, motion), motion.landmarks())


def test_retarget_ignores_where_and_how_big_the_driver_is(portrait_cues):
    motion = scripted_motion(portrait_cues, 12, 25.0)
    elsewhere = FaceCues(
        normalized=motion.normalized, scale=motion.scale * 0.5, rotation=motion.rotation,
        translation=motion.translation * 0.5 + np.array([40.0, -10.0, 0.0], np.float32), gaze=motion.gaze,
        aperture=motion.aperture, valid=motion.valid, identity=motion.identity, fps=motion.fps, image_size=(256, 256),
    )
    assert not same_face(portrait_cues, elsewhere)
    assert np.abs(retarget_cues(portrait_cues, elsewhere) - retarget_cues(portrait_cues, motion)).max() < 0.05
    assert np.abs(driving_landmarks(portrait_cues, elsewhere)[:, :, :2] - motion.landmarks()[:, :, :2]).max() < 0.05


def test_retarget_applies_pose_changes_on_the_portraits_pose(portrait_cues):
    n = 5
    changes = np.array([[0, 0, 0], [10, 0, 0], [0, 8, 0], [-15, 0, 4], [0, 0, 0]], float)
    driver_angles = np.array([[5.0, -3.0, 2.0]] * n) + changes
    driver = FaceCues(
        normalized=np.repeat(portrait_cues.normalized, n, axis=0), scale=np.full(n, 80.0, np.float32),
        rotation=angles_to_rotation(driver_angles).astype(np.float32),
        translation=np.tile(np.array([128.0, 120.0, 0.0], np.float32), (n, 1)),
        gaze=np.zeros((n, 2, 2), np.float32), aperture=np.full((n, 2), 0.3, np.float32), valid=np.ones(n, bool),
        identity=portrait_cues.normalized[0], fps=25.0, image_size=(256, 256),
    )
    out = retarget_cues(portrait_cues, driver)
    refit = FaceCues.from_landmarks(out, 25.0, portrait_cues.image_size)
    change = refit.pose_angles - refit.pose_angles[0]
    expected = driver_angles - driver_angles[0]
    assert np.abs(change - expected).max() < 1.0
    assert np.abs(refit.scale - portrait_cues.scale[0]).max() < 0.02 * portrait_cues.scale[0]


def test_retarget_keeps_lids_and_lips_from_crossing(portrait_cues):
    """A driver whose eyes are far bigger than the portrait's closes them fully, never past."""
    base = portrait_cues.normalized[0]
    big_eyes = close_eyes(base, -1.0)  # lids twice as far apart
    frames = np.stack([big_eyes, close_eyes(big_eyes, 1.0)])
    centre = np.tile([128.0, 128.0, 0.0], (2, 1))
    pixels = relocate(frames, np.full(2, 100.0), angles_to_rotation(np.zeros((2, 3))), centre)
    driver = FaceCues.from_landmarks(pixels, 25.0, (256, 256), identity=big_eyes)
    out = retarget_cues(portrait_cues, driver)
    from facecue.constants import RIGHT_LOWER_LID, RIGHT_UPPER_LID

    gap = out[:, list(RIGHT_LOWER_LID), 1] - out[:, list(RIGHT_UPPER_LID), 1]
    own = portrait_cues.landmarks()[0]
    own_gap = own[list(RIGHT_LOWER_LID), 1] - own[list(RIGHT_UPPER_LID), 1]
    assert np.abs(gap[0] - own_gap).max() < 0.6  # open like the portrait's own eye
    assert (gap[1] >= -0.05).all() and gap[1].mean() < 0.3 * own_gap.mean()  # shut, not inverted


# --- command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_cues(tmp_path_factory, portrait_cues):
    path = tmp_path_factory.mktemp("render_cli") / "short.npz"
    return scripted_motion(portrait_cues, 10, 25.0).save(path)


def test_cli_render_writes_a_playable_video(tmp_path, portrait_path, short_cues, capsys):
    from facecue.cli import asset_path, main
    from facecue.io import probe_video

    out = tmp_path / "out.mp4"
    code = main(["render", "--portrait", str(portrait_path), "--cues", str(short_cues), "-o", str(out), "-q",
                 "--audio", str(asset_path("speech.wav"))])
    assert code == 0, capsys.readouterr().err
    info = probe_video(out)
    assert (info.width, info.height) == (512, 512)
    assert info.n_frames == 10 and info.has_audio
    out_small = tmp_path / "small.mp4"
    assert main(["render", "--portrait", str(portrait_path), "--cues", str(short_cues), "-o", str(out_small),
                 "-q", "--crop", "--size", "128"]) == 0
    info = probe_video(out_small)
    assert (info.width, info.height, info.n_frames, info.has_audio) == (128, 128, 10, False)


def test_cli_render_refuses_bad_inputs_in_one_line(tmp_path, portrait_path, short_cues, capsys):
    from facecue.cli import main
    from facecue.io import write_image

    blank = tmp_path / "blank.png"
    write_image(blank, np.full((200, 200, 3), 128, np.uint8))
    out = tmp_path / "out.mp4"
    assert main(["render", "--portrait", str(blank), "--cues", str(short_cues), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no face" in err and len(err.splitlines()) == 1
    assert not out.exists()

    wrong = tmp_path / "wrong.npz"
    cues = FaceCues.load(short_cues)
    with open(wrong, "wb") as fh:
        np.savez(fh, kind="facecue.cues", version=1, normalized=cues.normalized[:, :468], scale=cues.scale,
                 rotation=cues.rotation, translation=cues.translation, gaze=cues.gaze, aperture=cues.aperture,
                 valid=cues.valid, identity=cues.identity[:468], fps=25.0, image_size=np.array([512, 512]),
                 meta="{}")
    assert main(["render", "--portrait", str(portrait_path), "--cues", str(wrong), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "478" in err and len(err.splitlines()) == 1

    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"RIFF not really a wave file" * 10)
    assert main(["render", "--portrait", str(portrait_path), "--cues", str(short_cues), "-o", str(out), "-q",
                 "--audio", str(noise)]) == 2
    err = capsys.readouterr().err.strip()
    assert "noise.wav" in err and len(err.splitlines()) == 1
    assert not out.exists()


# --- expressiveness: narrowed eyes, teeth, expression detail, crop borders --------------------


def test_a_narrowed_eye_is_drawn_open_not_as_a_blink(portrait, portrait_landmarks, portrait_cues):
    """An expression's narrowing (45 % closure: angry) is a narrowed eye: the lid-skin and lash
    layers of a blink stay off, the iris shows."""
    narrowed = edited(portrait_cues, close_eyes(portrait_cues.normalized[0], 0.45 / 0.85))
    with_lids = MeshRenderer()
    with_lids.prepare(portrait, portrait_landmarks)
    without_lids = MeshRenderer()
    without_lids.prepare(portrait, portrait_landmarks)
    without_lids._lids = []  # the blink layers removed
    for eye in without_lids._eyes:
        eye.lash = None
    frame = with_lids.render_frame(narrowed)
    assert np.array_equal(frame, without_lids.render_frame(narrowed))
    for iris in (RIGHT_IRIS, LEFT_IRIS):
        x, y = np.round(narrowed[iris[0], :2]).astype(int)
        assert luminance(frame)[y - 1 : y + 2, x - 1 : x + 2].mean() < 90  # the dark iris shows
    shut = edited(portrait_cues, close_eyes(portrait_cues.normalized[0], 1.0))
    assert not np.array_equal(with_lids.render_frame(shut), without_lids.render_frame(shut))  # blinks use them


def test_a_widened_eyes_blink_draws_the_lid_skin_as_a_blink_from_the_portraits_eye(portrait, portrait_landmarks,
                                                                                  portrait_cues):
    """Surprise raises the lids and the skin above them; its blink brings the margin down past the
    portrait's while the eye is still open, stretching the lid skin (and any eyeshadow on it)
    over the eye: a dark smudge (the StyleTalk KristiNoem portrait at 512 px). The lid-skin layer
    follows the lid skin's stretch as well as the eye's closure: a blink from the portrait's own
    eye is drawn as before (the closure is the larger there), the widened eye's mid-blink gets its
    lid skin."""
    from facecue.constants import EMOTIONS
    from facecue.phonetic import emotion_expression, expression_scale, portrait_rest_shape
    from facecue.render import _aperture, _closure, _lash_band, _lid_closure

    engine = MeshRenderer(expression_detail=False)
    engine.prepare(portrait, portrait_landmarks)
    band = _lash_band()
    base = portrait_rest_shape(portrait_cues.normalized[0])
    for amount in (0.2, 0.4, 0.6, 0.8, 1.0):  # the portrait's own blink: the closure alone, as before
        shut = edited(portrait_cues, close_eyes(base, amount))
        for lid in engine._lids:
            assert _lid_closure(shut, lid) == pytest.approx(_closure(shut, lid.side, lid.aperture), abs=1e-9)
    weights = np.zeros(len(EMOTIONS), np.float32)
    weights[EMOTIONS.index("surprised")] = 1.0
    surprised = base + emotion_expression(weights[None], 1.0)[0] * expression_scale(base)
    widened = edited(portrait_cues, surprised)
    assert min(_aperture(widened, side) / _aperture(portrait_landmarks, side) for side in (0, 1)) > 1.3
    mid_blink = edited(portrait_cues, close_eyes(surprised, 0.55, reference=base))
    without_lids = MeshRenderer(expression_detail=False)
    without_lids.prepare(portrait, portrait_landmarks)
    without_lids._lids = []
    frame, bare = engine.render_frame(mid_blink), without_lids.render_frame(mid_blink)
    topo = mesh_topology()
    for lid in engine._lids:
        assert _closure(mid_blink, lid.side, lid.aperture) < 0.45  # no lid skin by the closure alone
        assert _lid_closure(mid_blink, lid) > 0.7
        opening = polygon_mask(portrait.shape, mid_blink[topo.eye_loops[lid.side]])
        above = np.zeros_like(opening)
        margin = mid_blink[band.margin[band.eye == lid.side], :2]
        for x, y in np.round(margin).astype(int):
            above[y - 6 : y - 1, x] = True  # just above the lowered margin: the stretched lid skin
        above &= ~opening
        assert above.sum() > 20
        changed = np.abs(frame.astype(np.float64) - bare)[above].mean()
        assert changed > 5, (lid.side, changed)  # the lid skin is drawn over the stretched texture


def test_lower_teeth_show_above_the_lower_lip_of_an_open_mouth(portrait, portrait_landmarks, portrait_cues):
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.35))
    frame = next(render(portrait, portrait_landmarks, [target], mouth="synthesize"))
    upper, lower = target[13, :2], target[14, :2]
    x, gap = int(round(lower[0])), lower[1] - upper[1]
    column = luminance(frame)[int(upper[1]) : int(lower[1]), x - 1 : x + 2].mean(axis=1)
    cavity = column[int(0.4 * gap) : int(0.6 * gap)].mean()
    lower_teeth = column[int(0.8 * gap) :].max()
    assert lower_teeth > cavity + 40  # incisors above the lower lip, the dark cavity above them


def test_angry_bares_the_lower_teeth_of_a_slightly_parted_mouth(portrait, portrait_landmarks, portrait_cues):
    """Real MEAD anger talks through nearly clenched teeth: with angry weights the same parted lips
    show the lower row of teeth (light) near the lower lip, where neutral weights show the dark
    cavity, with the cavity still between the rows; sadness (not baring) draws the mouth exactly as
    neutral does."""
    from facecue.constants import EMOTIONS

    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.08))
    engine = MeshRenderer(mouth="synthesize", expression_detail=False)
    engine.prepare(portrait, portrait_landmarks)
    frames = {}
    for emotion in ("neutral", "angry", "sad"):
        weights = np.zeros(len(EMOTIONS), np.float32)
        weights[EMOTIONS.index(emotion)] = 1.0
        engine.set_expression(weights)
        frames[emotion] = engine.render_frame(target)
    upper, lower = target[13, :2], target[14, :2]
    x, gap = int(round(lower[0])), lower[1] - upper[1]
    assert gap > 6
    column = {e: luminance(f)[int(upper[1]) : int(lower[1]), x - 1 : x + 2].mean(axis=1) for e, f in frames.items()}
    lower_part = {e: c[int(0.7 * gap) :].max() for e, c in column.items()}
    assert lower_part["angry"] > lower_part["neutral"] + 40  # the lower row, lit
    middle = slice(int(0.35 * gap), int(0.6 * gap))
    assert column["angry"][middle].mean() < 80  # a dark gap between the rows
    assert np.array_equal(frames["sad"], frames["neutral"])


def detail_at_half(portrait, landmarks, emotion: str):
    """A renderer prepared on ``portrait`` with ``emotion`` at weight 0.5: its detail factor (h, w)
    and its maps' detail at DETAIL_GAIN alone (the emotion's map x the rounded weight)."""
    from facecue.constants import EMOTIONS
    from facecue.render import DETAIL_GAIN, expression_detail_maps

    if expression_detail_maps() is None:
        pytest.skip("this build has no expression-detail maps")
    engine = MeshRenderer()
    engine.prepare(portrait, landmarks)
    weights = np.zeros(len(EMOTIONS), np.float32)
    weights[EMOTIONS.index(emotion)] = 0.5
    engine.set_expression(weights)
    maps, _ = engine._detail
    return engine, engine._detail_factor(), round(0.5 * DETAIL_GAIN, 3) * maps[EMOTIONS.index(emotion)]


def test_detail_emphasis_deepens_an_emotions_brow_wrinkles_only(portrait, portrait_landmarks):
    """Sadness' wrinkles are drawn EMOTION_DETAIL_EMPHASIS x as deep as its maps at DETAIL_GAIN on
    the brows and forehead, and at DETAIL_GAIN from the eyes down (lids and cheeks); no pixel is
    lightened more than DETAIL_MAX_LIGHTEN, and less on the portrait's highlights
    (``_spare_highlights``)."""
    from facecue.constants import EMOTIONS
    from facecue.render import DETAIL_MAX_LIGHTEN, EMOTION_DETAIL_EMPHASIS, _spare_highlights

    engine, factor, base = detail_at_half(portrait, portrait_landmarks, "sad")
    _, origin = engine._detail
    sad = EMOTIONS.index("sad")
    deep = base * EMOTION_DETAIL_EMPHASIS[sad]
    assert EMOTION_DETAIL_EMPHASIS[sad] > 1.0
    brows = engine._detail_brows
    assert brows.max() == 1.0 and brows.min() == 0.0
    lighten = DETAIL_MAX_LIGHTEN
    capped = np.where(brows == 1, np.minimum(deep, lighten), np.minimum(base, lighten)).astype(np.float32)
    spared = capped.copy()
    _spare_highlights(spared, engine._detail_texture)
    assert (spared < capped - 0.01).sum() > 50  # this portrait's highlights are lit less
    np.testing.assert_allclose(factor[brows == 1], spared[brows == 1], atol=1e-4)
    np.testing.assert_allclose(factor[brows == 0], spared[brows == 0], atol=1e-5)
    # lightening capped where the maps ask for more, creases kept
    assert deep.max() > lighten and factor.max() <= lighten + 1e-6 and factor.min() < 0
    # the glabella (between the inner brow ends) is deepened, the nose tip (MediaPipe 1) is not
    glabella = (portrait_landmarks[55, :2] + portrait_landmarks[285, :2]) / 2 - origin
    nose = portrait_landmarks[1, :2] - origin
    assert brows[int(round(glabella[1])), int(round(glabella[0]))] > 0.9
    assert brows[int(round(nose[1])), int(round(nose[0]))] == 0.0


def test_expression_detail_darkens_the_brow_furrow_for_angry(portrait, portrait_landmarks):
    from facecue.constants import EMOTIONS
    from facecue.render import expression_detail_maps

    if expression_detail_maps() is None:
        pytest.skip("this build has no expression-detail maps")
    weights = np.zeros(len(EMOTIONS), np.float32)
    plain = MeshRenderer()
    plain.prepare(portrait, portrait_landmarks)
    detailed = MeshRenderer()
    detailed.prepare(portrait, portrait_landmarks)
    base = plain.render_frame(portrait_landmarks)
    detailed.set_expression(weights)
    assert np.array_equal(detailed.render_frame(portrait_landmarks), base)  # no emotion, no change
    weights[EMOTIONS.index("angry")] = 1.0
    detailed.set_expression(weights)
    angry = detailed.render_frame(portrait_landmarks)
    # the glabella: between the inner brow ends (MediaPipe 55 and 285), above the nose bridge (168)
    centre = (portrait_landmarks[55, :2] + portrait_landmarks[285, :2] + portrait_landmarks[168, :2]) / 3
    x, y = np.round(centre).astype(int)
    unit = np.linalg.norm(portrait_landmarks[33, :2] - portrait_landmarks[263, :2])
    r = max(int(0.08 * unit), 2)
    patch = (slice(y - r, y + r), slice(x - r, x + r))
    assert luminance(angry)[patch].min() < luminance(base)[patch].min() - 5  # a darker furrow
    outside = (slice(0, 20), slice(0, 20))
    assert np.array_equal(angry[outside], base[outside])  # nothing changes off the face


def test_detail_shades_skin_in_its_own_colour():
    """The detail's log-luminance change moves R, G and B by ``DETAIL_CHANNEL_EXPONENTS`` (real
    MEAD creases: blue and green darken more than red, ridges lighten the other way), keeping
    the luminance change: on skin-coloured pixels the luma ratio is exp(change) to 1.5 %."""
    from facecue.render import DETAIL_CHANNEL_EXPONENTS, LUMA_WEIGHTS, _detail_gain_rgb

    exponents = np.array(DETAIL_CHANNEL_EXPONENTS)
    assert exponents @ LUMA_WEIGHTS == pytest.approx(1.0, abs=0.005)
    assert exponents[0] < exponents[1] < exponents[2]
    skin = np.array([200.0, 150.0, 120.0])
    for change in (-0.3, -0.1, 0.1):
        gain = _detail_gain_rgb(np.full((2, 3), change, np.float32))
        assert gain.shape == (2, 3, 3) and gain.dtype == np.float32
        ratios = gain[0, 0]
        np.testing.assert_allclose(ratios, np.exp(change * exponents), rtol=1e-6)
        assert (skin * ratios) @ LUMA_WEIGHTS / (skin @ LUMA_WEIGHTS) == pytest.approx(np.exp(change), rel=0.015)
        if change < 0:
            assert ratios[2] < ratios[1] < ratios[0] < 1.0  # a crease: warmer and darker
        else:
            assert 1.0 < ratios[0] < ratios[1] < ratios[2]


def test_lightening_is_compressed_below_full_scale_on_highlights():
    """The detail's lightening of a pixel whose brightest channel would pass DETAIL_LIGHTEN_KNEE is
    compressed toward full scale (it stays lit, never darker than it was, and below full scale
    even at the strongest lightening); darker pixels and darkening keep their gain."""
    from facecue.render import DETAIL_CHANNEL_EXPONENTS, DETAIL_LIGHTEN_KNEE, DETAIL_MAX_LIGHTEN, _spare_highlights

    levels = np.arange(0, 256, dtype=np.uint8)
    patch = np.repeat(np.stack([levels, levels // 2, levels // 3], axis=-1)[None], 3, axis=0)  # (3, 256, 3), R brightest
    gains = np.array([DETAIL_MAX_LIGHTEN, 0.05, -0.2], np.float32)[:, None] * np.ones(256, np.float32)
    spared = gains.copy()
    _spare_highlights(spared, patch)
    exponent = max(DETAIL_CHANNEL_EXPONENTS)
    lit = levels / 255.0 * np.exp(gains[0] * exponent)
    below = lit <= DETAIL_LIGHTEN_KNEE
    assert below.sum() > 150 and (~below).sum() > 20
    np.testing.assert_array_equal(spared[0, below], gains[0, below])  # lit below the knee: unchanged
    np.testing.assert_array_equal(spared[2], gains[2])  # darkening: unchanged
    assert (spared[0, ~below] < gains[0, ~below]).all() and (spared[:2] >= 0).all()
    after = levels[1:] / 255.0 * np.exp(spared[0, 1:] * exponent)
    assert after[:-1].max() < 1.0 and np.all(np.diff(after) > 0)  # unclipped pixels stay below full scale, in order
    assert spared[0, 255] == 0.0  # a clipped pixel is not lit further


def test_a_bright_portrait_is_not_blown_out_by_the_detail(portrait, portrait_landmarks, monkeypatch):
    """On a portrait brightened until its skin nears full scale, anger's detail (which lights the
    cheeks) clips far fewer pixels at 255 with the highlight shoulder than without it."""
    from facecue import render
    from facecue.constants import EMOTIONS

    if render.expression_detail_maps() is None:
        pytest.skip("this build has no expression-detail maps")
    bright = np.clip(portrait.astype(np.float32) * (245.0 / np.percentile(portrait, 99)), 0, 255).astype(np.uint8)
    weights = np.zeros(len(EMOTIONS), np.float32)
    weights[EMOTIONS.index("angry")] = 1.0

    def clipped(knee: float) -> int:
        monkeypatch.setattr(render, "DETAIL_LIGHTEN_KNEE", knee)
        engine = MeshRenderer()
        engine.prepare(bright, portrait_landmarks)
        base = engine.render_frame(portrait_landmarks)
        engine.set_expression(weights)
        frame = engine.render_frame(portrait_landmarks)
        return int(((frame.max(axis=2) == 255) & (base.max(axis=2) < 255)).sum())

    knee = render.DETAIL_LIGHTEN_KNEE
    without, spared = clipped(1.0), clipped(knee)
    assert without > 100 and spared < 0.2 * without


def test_an_angry_furrow_darkens_blue_more_than_red(portrait, portrait_landmarks):
    """Rendered with and without anger's detail (the same landmarks): the pixels the furrows darken
    lose a larger share of their blue than of their red."""
    from facecue.constants import EMOTIONS
    from facecue.render import expression_detail_maps

    if expression_detail_maps() is None:
        pytest.skip("this build has no expression-detail maps")
    engine = MeshRenderer()
    engine.prepare(portrait, portrait_landmarks)
    base = engine.render_frame(portrait_landmarks).astype(np.float64)
    weights = np.zeros(len(EMOTIONS), np.float32)
    weights[EMOTIONS.index("angry")] = 1.0
    engine.set_expression(weights)
    angry = engine.render_frame(portrait_landmarks).astype(np.float64)
    lit = base.min(axis=2) > 40  # away from clipping and the quantization of dark pixels
    ratio = np.where(lit[..., None], (angry + 0.5) / (base + 0.5), 1.0)
    darkened = lit & (luminance(angry) < 0.88 * luminance(base))
    assert darkened.sum() > 50
    assert np.median(ratio[darkened][:, 2]) < np.median(ratio[darkened][:, 0]) - 0.01


def test_mesh_coordinate_maps_are_the_identity_between_the_same_face(portrait_landmarks):
    from facecue.render import mesh_coordinate_maps

    map_x, map_y, inside = mesh_coordinate_maps(portrait_landmarks, portrait_landmarks, (512, 512))
    yy, xx = np.mgrid[:512, :512]
    assert inside.sum() > 5000
    assert np.abs(map_x[inside] - xx[inside]).max() < 0.01
    assert np.abs(map_y[inside] - yy[inside]).max() < 0.01


def test_surprise_draws_forehead_lines_above_the_mesh(portrait, portrait_landmarks):
    """MediaPipe's mesh stops below the hairline; the detail maps reach into a band above it, where
    surprise's horizontal forehead lines are (alternating light and dark rows), and stop before the
    band's outer edge (hair)."""
    from facecue.constants import EMOTIONS, N_MESH_POINTS
    from facecue.render import expression_detail_maps, forehead_band, detail_in_portrait, skin_detail_mask

    if expression_detail_maps() is None:
        pytest.skip("this build has no expression-detail maps (scripts/build_expression_detail.py)")
    shape = portrait.shape[:2]
    maps = detail_in_portrait(portrait_landmarks, shape)
    top = int(portrait_landmarks[:N_MESH_POINTS, 1].min())
    edge = forehead_band(portrait_landmarks)
    brows = int(portrait_landmarks[[105, 334], 1].min())
    x0, x1 = np.percentile(edge[:, 0], [35, 65]).astype(int)
    rows = maps[EMOTIONS.index("surprised"), int(edge[:, 1].min()) : brows, x0:x1].mean(axis=1)
    split = top - int(edge[:, 1].min())
    assert rows[:split].min() < -0.01  # a dark line above the mesh...
    assert rows[split:].max() > 0.01  # ... and light skin between it and the brows
    assert not maps[EMOTIONS.index("neutral")].any()
    mask = skin_detail_mask(portrait_landmarks, shape)
    centre = portrait_landmarks[:N_MESH_POINTS, :2].mean(axis=0)
    outer = np.round(centre + (edge - centre) * 0.98).astype(int)
    assert mask[outer[:, 1], outer[:, 0]].max() < 0.05  # nothing at the band's outer edge


def test_wrinkles_scale_the_emotions_creases_and_nothing_else(portrait, portrait_landmarks):
    """``--wrinkles`` (the mesh renderer's ``expression_detail``): 0 draws the emotion's shape
    without its creases, as a renderer without the maps does, bit for bit; 0.5 darkens each crease
    by half as much (in log-luminance) as 1 does, so the frame moves half as far or less from the
    crease-free one; out of 0..1 is refused, by the renderer and by the shared input rules."""
    from facecue.constants import EMOTIONS
    from facecue.render import expression_detail_maps, renderer_options

    if expression_detail_maps() is None:
        pytest.skip("this build has no expression-detail maps (scripts/build_expression_detail.py)")
    weights = np.zeros(len(EMOTIONS), np.float32)
    weights[EMOTIONS.index("angry")] = 1.0
    frames, factors = {}, {}
    for strength in (False, 0.0, 0.5, 1.0):
        engine = MeshRenderer(expression_detail=strength)
        engine.prepare(portrait, portrait_landmarks)
        engine.set_expression(weights)
        frames[strength] = engine.render_frame(portrait_landmarks).astype(np.float64)
        factors[strength] = engine._detail_factor()
    assert np.array_equal(frames[0.0], frames[False]) and factors[0.0] is None
    creases = factors[1.0] < 0
    assert creases.mean() > 0.05
    assert np.allclose(factors[0.5][creases], 0.5 * factors[1.0][creases], atol=1e-6)
    moved = {s: np.abs(frames[s] - frames[0.0]).mean() for s in (0.5, 1.0)}
    assert 0 < moved[0.5] <= 0.6 * moved[1.0], moved
    with pytest.raises(ValueError, match="expression_detail"):
        MeshRenderer(expression_detail=1.5)
    assert renderer_options("mesh", wrinkles=0.5) == {"expression_detail": 0.5}
    with pytest.raises(InputError, match="wrinkles must be within 0..1"):
        renderer_options("mesh", wrinkles=-0.1)


def test_crop_past_the_portrait_edge_is_not_a_mirror_image():
    """A face crop that reaches past the image border must not show a mirrored copy of what is
    inside (duplicated shoulders and objects); it continues the edge, blurred."""
    from facecue.render import warp_portrait

    image = np.full((100, 100, 3), 120, np.uint8)
    image[40:60, 2:8] = 255  # a bright object near the left edge
    matrix = np.array([[1.0, 0.0, 30.0], [0.0, 1.0, 0.0]])  # shift right: 30 px beyond the left edge show
    out = warp_portrait(image, matrix, (100, 100))
    assert np.array_equal(out[:, 30:], image[:, :70])  # the portrait itself is untouched
    mirrored_place = out[40:60, 22:28]  # where BORDER_REFLECT101 would have put the object's copy
    assert mirrored_place.mean() < 200
    assert out[:, :30].std() < image.std()  # a smooth continuation


def test_crop_past_the_portrait_edge_continues_it_without_streaks():
    """Past the portrait's edge the fill is the edge's colour spread smoothly: a striped edge is not
    repeated outward as streaks (what BORDER_REPLICATE drew: each row's edge pixel along the row)."""
    from facecue.render import warp_portrait

    image = np.full((120, 120, 3), 90, np.uint8)
    image[::4] = 210  # horizontal stripes reaching the left edge, 4 px period
    image[1::4] = 210
    matrix = np.array([[1.0, 0.0, 40.0], [0.0, 1.0, 0.0]])  # 40 px beyond the left edge show
    out = warp_portrait(image, matrix, (120, 120)).astype(np.float64)
    assert np.array_equal(out[:, 40:], image[:, :80])  # the portrait itself is untouched
    across = np.abs(np.diff(out[:, 40:60], axis=0)).mean()  # row to row inside: the stripes, 60 levels
    beside = out[10:-10, 30:39]  # the 9 px next to the edge, where repeated edge pixels were least blurred
    assert np.abs(np.diff(beside, axis=0)).mean() < 0.05 * across  # 0.20 x with the edge repeated and blurred
    fill = out[10:-10, :39]
    assert np.abs(np.diff(fill, axis=0)).mean() < 0.02 * across
    assert abs(fill.mean() - image.mean()) < 5  # the stripes' average colour

    plain = np.full((60, 60, 3), (30, 140, 220), np.uint8)
    shifted = warp_portrait(plain, np.array([[1.0, 0.0, -15.0], [0.0, 1.0, 12.0]]), (60, 60))
    assert np.abs(shifted.astype(int) - plain).max() <= 1  # a plain colour continues as itself


def test_affines_recover_a_known_map_and_send_degenerate_triangles_to_the_centroid():
    from facecue.render import _affines

    rng = np.random.default_rng(0)
    dst = rng.uniform(0, 200, (50, 3, 2))
    known = np.array([[1.1, -0.2, 5.0], [0.3, 0.9, -7.0]])
    src = dst @ known[:, :2].T + known[:, 2]
    dst[7] = dst[7, :1]  # all three corners at one point
    src[7] = [[0.0, 0.0], [3.0, 0.0], [0.0, 6.0]]
    affine = _affines(src, dst)
    assert affine.shape == (50, 2, 3)
    assert np.allclose(np.delete(affine, 7, axis=0), known, atol=1e-9)
    assert np.allclose(affine[7], [[0, 0, 1.0], [0, 0, 2.0]])  # the source centroid


def _edge_sides(corners: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """(3, h, w) int64 cross products of each edge of ``corners`` ((3, 2) int, 1/16 pixels) with
    the pixel centres (exact), and twice the triangle's signed area in the same units."""
    ys, xs = np.mgrid[0:height, 0:width] * 16
    a, b, c = corners.astype(np.int64)
    sides = np.stack([(q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0]) for p, q in ((a, b), (b, c), (c, a))])
    return sides, float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))


def _centre_inside(corners: np.ndarray, width: int, height: int) -> np.ndarray:
    """(h, w) bool: pixel centres inside the closed triangle ``corners`` ((3, 2) int, 1/16 pixels),
    in exact integer arithmetic; none for a triangle of no area."""
    sides, area = _edge_sides(corners, width, height)
    if area == 0:
        return np.zeros((height, width), bool)
    return np.all(np.sign(area) * sides >= 0, axis=0)


def _square_meets(corners: np.ndarray, width: int, height: int, half: float) -> np.ndarray:
    """(h, w) bool: the square of side ``2 * half`` around each pixel centre meets the closed
    triangle ``corners`` ((3, 2) pixels): no separating axis among the square's and the edges'
    normals (to 1e-9 pixels)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    tolerance = 1e-9
    meets = ((xs + half >= corners[:, 0].min() - tolerance) & (xs - half <= corners[:, 0].max() + tolerance)
             & (ys + half >= corners[:, 1].min() - tolerance) & (ys - half <= corners[:, 1].max() + tolerance))
    for k in range(3):
        p, q = corners[k], corners[(k + 1) % 3]
        normal = np.array([p[1] - q[1], q[0] - p[0]])
        length = np.linalg.norm(normal)
        if length == 0:
            continue
        normal /= length
        projected = corners @ normal
        centre, reach = xs * normal[0] + ys * normal[1], half * np.abs(normal).sum()
        meets &= (centre + reach >= projected.min() - tolerance) & (centre - reach <= projected.max() + tolerance)
    return meets


def _random_triangles(rng: np.random.Generator, count: int, width: int, height: int) -> np.ndarray:
    """(count, 3, 2) int32 triangles in 1/16 pixels around a width x height grid, up to 20 pixels
    across (some partly or wholly off it); some with a horizontal edge, some with all corners on
    pixel centres, some with no area."""
    centres = rng.uniform(-6, [width + 6, height + 6], (count, 1, 2))
    corners = np.round((centres + rng.uniform(1, 10, (count, 1, 1)) * rng.uniform(-1, 1, (count, 3, 2))) * 16)
    corners[::7, 1, 1] = corners[::7, 0, 1]
    corners[5::13] = np.round(corners[5::13] / 16) * 16
    corners[3::11, 2] = 2 * corners[3::11, 1] - corners[3::11, 0]  # on the line through the other two
    return corners.astype(np.int32)


def test_raster_draws_every_centre_inside_and_nothing_beyond_its_margin():
    """One triangle at a time: with margin 0.5 it draws every pixel whose centre it holds (edges
    included), none whose unit square misses it, and nearly what cv2.fillConvexPoly draws; with
    margin 0 exactly the centres it holds."""
    import cv2

    from facecue.render import _raster_triangles

    width, height = 24, 18
    not_cv2 = cv2_area = holds_area = 0
    for corners in _random_triangles(np.random.default_rng(3), 200, width, height):
        holds = _centre_inside(corners, width, height)
        near, exact = (_raster_triangles(corners[None], 4, (height, width), np.array([margin])) == 0
                       for margin in (0.5, 0.0))
        assert not (holds & ~near).any(), corners / 16
        assert not (near & ~_square_meets(corners / 16, width, height, 0.5)).any(), corners / 16
        if _edge_sides(corners, width, height)[1]:
            # on the 1/16 lattice a centre off the triangle is > 1e-4 pixels from it
            assert np.array_equal(exact, holds), corners / 16
        else:
            assert not (exact & ~_square_meets(corners / 16, width, height, 1e-5)).any(), corners / 16
        by_cv2 = np.zeros((height, width), np.uint8)
        cv2.fillConvexPoly(by_cv2, corners, 1, cv2.LINE_8, 4)
        not_cv2 += (near != by_cv2.astype(bool)).sum()
        cv2_area += by_cv2.sum()
        holds_area += holds.sum()
    assert holds_area > 600  # many triangles on the grid
    assert not_cv2 < 0.10 * cv2_area  # 9.2 % when written; 12 % without the rows half a pixel beyond


def test_raster_resolves_overlaps_in_drawing_order_like_fillconvexpoly():
    """Overlapping triangles drawn in one call (margins 0.5 and 0 mixed): each pixel shows the
    last triangle that draws it, as drawing them one by one in order gives; with margins 0.5,
    nearly what one cv2.fillConvexPoly call per triangle gives."""
    import cv2

    from facecue.render import _raster_triangles

    width, height = 40, 30
    triangles = _random_triangles(np.random.default_rng(4), 300, width, height)
    margins = np.where(np.arange(300) % 4 == 0, 0.0, 0.5)
    one_by_one, by_cv2 = np.full((height, width), -1), np.full((height, width), -1, np.int32)
    times_drawn = np.zeros((height, width), int)
    for k, corners in enumerate(triangles):
        alone = _raster_triangles(corners[None], 4, (height, width), margins[k : k + 1]) == 0
        one_by_one[alone] = k
        times_drawn += alone
        cv2.fillConvexPoly(by_cv2, corners, k, cv2.LINE_8, 4)
    drawn = _raster_triangles(triangles, 4, (height, width), margins)
    assert drawn.shape == (height, width) and drawn.dtype == np.intp
    assert (times_drawn >= 2).sum() > 500  # overlaps
    assert np.array_equal(drawn, one_by_one)
    like_cv2 = _raster_triangles(triangles, 4, (height, width), np.full(len(triangles), 0.5))
    assert (like_cv2 != by_cv2).mean() < 0.08  # 7.2 % when written (300 triangles: edges nearly everywhere)


def test_raster_of_a_closed_mesh_leaves_no_gap_and_the_last_triangle_wins():
    """A jittered grid mesh (corners on and edges through pixel centres included) with moved
    copies of some of its triangles over it, as a fold puts them, in shuffled order: the exact
    raster (margin 0) gives each pixel the last triangle whose closed area holds its centre, and
    leaves no pixel inside the mesh out; with margin 0.5 none is left out either."""
    from facecue.render import _raster_triangles

    width, height, cell = 30, 22, 5
    rng = np.random.default_rng(5)
    nodes_y, nodes_x = np.mgrid[0 : height + cell : cell, 0 : width + cell : cell] * 16
    # half the nodes moved by whole pixels (edges through pixel centres at slopes such as 1/3,
    # which float64 does not hold exactly), the others by 1/16 pixels
    jitter = np.where(rng.random(nodes_x.shape + (1,)) < 0.5, rng.integers(-2, 3, nodes_x.shape + (2,)) * 16,
                      rng.integers(-20, 21, nodes_x.shape + (2,)))
    nodes = np.stack([nodes_x, nodes_y], axis=-1) + jitter
    triangles = []
    for j in range(nodes.shape[0] - 1):
        for i in range(nodes.shape[1] - 1):
            a, b, c, d = nodes[j, i], nodes[j, i + 1], nodes[j + 1, i + 1], nodes[j + 1, i]
            triangles += [(a, b, c), (a, c, d)] if rng.random() < 0.5 else [(a, b, d), (b, c, d)]
    triangles = np.array(triangles, np.int32)
    folded = triangles[rng.choice(len(triangles), 12, replace=False)].copy()
    folded[:, 0] += 3 * 16  # one corner 3 pixels right: over its neighbours, some turned over
    triangles = np.concatenate([triangles, folded])[rng.permutation(len(triangles) + len(folded))]
    holds = np.stack([_centre_inside(corners, width, height) for corners in triangles])
    expected = np.where(holds.any(axis=0), len(triangles) - 1 - np.argmax(holds[::-1], axis=0), -1)
    ys, xs = np.mgrid[0:height, 0:width]
    inner = (xs * 16 >= nodes[:, 0, 0].max()) & (xs * 16 <= nodes[:, -1, 0].min())
    inner &= (ys * 16 >= nodes[0, :, 1].max()) & (ys * 16 <= nodes[-1, :, 1].min())
    assert inner.mean() > 0.7 and (expected[inner] >= 0).all()  # the mesh is closed there
    exact = _raster_triangles(triangles, 4, (height, width), np.zeros(len(triangles)))
    assert np.array_equal(exact, expected)
    near = _raster_triangles(triangles, 4, (height, width), np.full(len(triangles), 0.5))
    assert (near[expected >= 0] >= 0).all()


def test_blend_matches_the_broadcast_formula_for_float32_and_float64_inputs():
    from facecue.render import _blend

    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (40, 50, 3), np.uint8)
    box = (5, 8, 45, 30)
    for dtype in (np.float32, np.float64):
        colour = (rng.random((22, 40, 3)) * 300 - 20).astype(dtype)
        alpha = rng.random((22, 40)).astype(dtype)
        expected = frame.copy()
        region = frame[8:30, 5:45].astype(np.float32)
        region += alpha[..., None] * (colour - region)
        expected[8:30, 5:45] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
        out = frame.copy()
        _blend(out, box, colour, alpha)
        assert np.array_equal(out, expected)
        assert np.array_equal(out[:8], frame[:8])  # nothing outside the box


def test_default_map_grid_renders_like_the_exact_maps(portrait, portrait_landmarks, portrait_cues):
    """The 2-pixel grid of the coordinate maps (the default from 160 px warped areas) renders a
    turned head with an open mouth like the exact per-pixel maps (53 dB when written), closer
    than the same face moved by one pixel is (38 dB): a misaligned grid would fail."""
    from facecue.render import MAP_STEP_MIN_PX, default_map_step

    assert [default_map_step(w, h) for w, h in ((96, 96), (MAP_STEP_MIN_PX, 40), (256, 200), (1300, 900))] == [1, 2, 2, 3]
    angles = rotation_to_angles(portrait_cues.rotation[0]) + np.array([12.0, -5.0, 3.0])
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.12), angles)
    exact, grid = get_renderer("mesh", map_step=1), get_renderer("mesh")
    for renderer in (exact, grid):
        renderer.prepare(portrait, portrait_landmarks)
    x0, y0, x1, y1 = grid.warp_maps(target)[2]
    assert default_map_step(x1 - x0, y1 - y0) == 2  # the bundled 512 px portrait: the grid is in use
    reference = exact.render_frame(target)
    assert psnr(grid.render_frame(target), reference) > 45.0
    assert psnr(exact.render_frame(target + np.array([1.0, 0.0, 0.0])), reference) < 45.0


def test_cover_layer_is_the_colour_blend_of_its_layer():
    """Layers laid over each other as weights of a palette (the mouth interior) give the colours of
    blending each layer's colour over the colour below: colour += cover * (shade * palette[k] - colour)."""
    from facecue.render import _cover_layer

    rng = np.random.default_rng(3)
    palette = rng.uniform(0, 255, size=(3, 3)).astype(np.float32)  # (k, rgb)
    base = rng.uniform(0, 1, size=(5, 7)).astype(np.float32)
    weights = np.zeros((3, 5, 7), np.float32)
    weights[0] = base
    colour = base[..., None] * palette[0]
    for k in (1, 2, 1):
        shade, cover = (rng.uniform(0, 1, size=(5, 7)).astype(np.float32) for _ in range(2))
        _cover_layer(weights, k, shade, cover)
        colour += cover[..., None] * (shade[..., None] * palette[k] - colour)
    assert np.allclose(np.einsum("khw,kc->hwc", weights, palette), colour, atol=1e-3)


def test_contempts_wrinkle_map_only_darkens(portrait, portrait_landmarks):
    """Contempt (DETAIL_DARKEN_ONLY) keeps its map's creases away from the eyes and drops its lit
    parts (pale patches on the cheek and forehead) and its lids' shading; the other emotions keep
    their maps."""
    from facecue.constants import EMOTIONS
    from facecue.render import DETAIL_DARKEN_ONLY, _lid_zone, detail_in_portrait

    assert DETAIL_DARKEN_ONLY == ("contempt",)
    engine, factor, _ = detail_at_half(portrait, portrait_landmarks, "contempt")
    maps, origin = engine._detail
    local = portrait_landmarks.copy()
    local[:, :2] -= origin
    raw = detail_in_portrait(local, maps.shape[1:])
    contempt, happy = EMOTIONS.index("contempt"), EMOTIONS.index("happy")
    assert raw[contempt].max() > 0.05 and raw[contempt].min() < -0.05  # the map lightens and darkens
    lids = _lid_zone(local, maps.shape[1:])
    away, on_lids = lids == 0, lids > 0.99
    assert away.mean() > 0.5 and on_lids.sum() > 100
    np.testing.assert_array_equal(maps[contempt][away], np.minimum(raw[contempt], 0.0)[away])
    assert np.abs(maps[contempt][on_lids]).max() < 0.01 * np.abs(raw[contempt][on_lids]).max() + 1e-6
    assert raw[contempt][on_lids].min() < -0.02  # there was shading to drop
    assert factor.max() <= 0.0 and factor.min() < -0.02
    assert raw[happy].max() > 0.05
    np.testing.assert_array_equal(maps[happy], raw[happy])


# MediaPipe's (upper, lower) brow points of each brow, outer to inner
BROW_STRIPS = (((70, 63, 105, 66, 107), (46, 53, 52, 65, 55)), ((300, 293, 334, 296, 336), (276, 283, 282, 295, 285)))


def _brow_regions(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(on, above), (H, W) bool masks for ``landmarks`` (478, 2+), pixels: the brows (between
    MediaPipe's upper and lower brow points) and a band 0.08 eye units high just above them (where
    a raised brow lies)."""
    import cv2

    pts = np.asarray(landmarks, np.float64)[:, :2]
    unit = np.linalg.norm(pts[33] - pts[263])

    def strip(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
        mask = np.zeros(shape, np.uint8)
        cv2.fillPoly(mask, [np.round(np.vstack([upper, lower[::-1]])).astype(np.int32)], 1)
        return mask > 0

    on, above = np.zeros(shape, bool), np.zeros(shape, bool)
    for upper, lower in BROW_STRIPS:
        on |= strip(pts[list(upper)], pts[list(lower)])
        above |= strip(pts[list(upper)] - [0, 0.08 * unit], pts[list(upper)])
    return on, above


def _script_module(name: str):
    """``scripts/<name>.py`` as a module."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_expression_detail():
    """scripts/build_expression_detail.py as a module."""
    return _script_module("build_expression_detail")


def _template_face(size: int) -> np.ndarray:
    """(478, 2) facecue's template face laid on a ``size`` px square image, eyes 0.36 of it apart."""
    from facecue.cues import default_template

    landmarks = np.asarray(default_template().points, np.float64)[:, :2].copy()
    eyes = landmarks[[33, 263]]
    return (landmarks - eyes.mean(0)) * (0.36 * size / np.linalg.norm(eyes[1] - eyes[0])) + [size / 2, 0.45 * size]


def _bundled_maps_and_brows():
    """The bundled detail maps (8, C, C) on the canonical canvas (the test skips without them),
    the canvas' landmarks, its brows and the band above them (``_brow_regions``), and its eye
    distance in canvas pixels."""
    from facecue.render import DETAIL_CANVAS, canonical_detail_landmarks, expression_detail_maps

    maps = expression_detail_maps()
    if maps is None:
        pytest.skip("this build has no expression-detail maps (scripts/build_expression_detail.py)")
    landmarks = canonical_detail_landmarks()
    on, above = _brow_regions(landmarks, (DETAIL_CANVAS, DETAIL_CANVAS))
    return maps, landmarks, on, above, float(np.linalg.norm(landmarks[33, :2] - landmarks[263, :2]))


def test_calibration_detail_shrink_is_a_soft_threshold_that_keeps_the_deep_creases():
    """``scripts/calibrate_expressiveness.py``'s ``detail_shrink`` (measured, not taken: the
    MODEL_CARD): values within the amount of 0 become 0, the others move toward 0 by it, signs
    kept; on the bundled maps disgust's deepest crease stays and most of its faint mottling goes."""
    from facecue.constants import EMOTIONS

    calibrate = _script_module("calibrate_expressiveness")
    values = np.array([-0.05, -0.02, 0.0, 0.01, 0.03, 0.04], np.float32)
    np.testing.assert_allclose(calibrate.shrunk_detail_maps(values, 0.03), [-0.02, 0, 0, 0, 0, 0.01], atol=1e-7)
    maps = _bundled_maps_and_brows()[0]
    disgust = maps[EMOTIONS.index("disgusted")]
    shrunk = calibrate.shrunk_detail_maps(maps, 0.03)[EMOTIONS.index("disgusted")]
    assert shrunk.dtype == np.float32
    assert shrunk.min() == pytest.approx(disgust.min() + 0.03, abs=1e-6)
    assert np.count_nonzero(shrunk) < 0.5 * np.count_nonzero(disgust)


def test_surprise_and_fear_maps_draw_no_second_brow():
    """Surprise's and fear's detail maps are built with the MEAD actors' brow hair registered and
    then the brows cleared (scripts/build_expression_detail.py): they neither light the brows nor
    darken a band above them, which drew a painted brow over the portrait's own (and, for fear,
    a pale brow-shaped band with a dark rim). Built without either, the 95th percentile of
    |log-ratio| on the brows was 0.161 (surprise) and 0.165 (fear), and the band above averaged
    -0.038 and -0.042; registered only, 0.063 and 0.109, -0.013 and -0.021; cleared too, 0 and 0,
    -0.009 and -0.007. The glabella (fear's knit) and the forehead lines stay: mean |log-ratio|
    within 0.08 eye units of MediaPipe 9 and 151 is 0.026-0.042. Anger keeps its bands (0.217 on
    the brows)."""
    from facecue.constants import EMOTIONS
    from facecue.render import DETAIL_CANVAS

    maps, landmarks, on, above, unit = _bundled_maps_and_brows()
    yy, xx = np.mgrid[:DETAIL_CANVAS, :DETAIL_CANVAS]
    for emotion in ("surprised", "fear"):
        cleared = maps[EMOTIONS.index(emotion)]
        assert np.percentile(np.abs(cleared[on]), 95) < 0.02, emotion
        assert cleared[above].mean() > -0.012, emotion
        for point in (9, 151):  # glabella, forehead
            near = np.hypot(xx - landmarks[point, 0], yy - landmarks[point, 1]) < 0.08 * unit
            assert np.abs(cleared[near]).mean() > 0.02, (emotion, point)
    assert np.percentile(np.abs(maps[EMOTIONS.index("angry")][on]), 95) > 0.15


def test_sad_map_darkens_the_brows_softly():
    """Sadness' detail map is softened on the brows (scripts/build_expression_detail.py,
    BROW_SOFTEN): the actors' moved brow hair drew hair-shaped dark arcs over the portrait's own
    brows. Its fine structure there (the map less itself blurred by 0.02 eye units, 95th
    percentile) is 0.023 (0.060 unsoftened, anger's 0.067), and the brows still darken on
    average (-0.015)."""
    import cv2

    from facecue.constants import EMOTIONS

    maps, _, on, _, unit = _bundled_maps_and_brows()

    def fine(emotion: str) -> float:
        detail = maps[EMOTIONS.index(emotion)]
        return float(np.percentile(np.abs(detail - cv2.GaussianBlur(detail, (0, 0), 0.02 * unit))[on], 95))

    assert fine("sad") < 0.035 < 0.05 < fine("angry")
    assert maps[EMOTIONS.index("sad")][on].mean() < -0.01


def test_soften_brows_blurs_the_brows_only():
    """``soften_brows`` (the detail maps' build) on facecue's canonical canvas: a sharp stripe
    across a brow comes out blurred there, and the map is bit for bit itself away from the brows."""
    build = _build_expression_detail()
    from facecue.render import DETAIL_CANVAS, canonical_detail_landmarks

    landmarks = canonical_detail_landmarks()
    canvas = np.zeros((DETAIL_CANVAS, DETAIL_CANVAS), np.float32)
    brow = landmarks[105, :2].round().astype(int)  # a point on the subject's right brow
    chin = landmarks[152, :2].round().astype(int)
    canvas[brow[1] - 1 : brow[1] + 2, :] = -0.2  # a 3-pixel dark stripe across the face
    canvas[chin[1] - 1 : chin[1] + 2, :] = -0.2
    softened = build.soften_brows(canvas, 0.02)
    assert softened[brow[1], brow[0]] > -0.15  # spread out on the brow
    assert softened[brow[1] - 3, brow[0]] < -0.005
    np.testing.assert_array_equal(softened[chin[1] - 1 : chin[1] + 2], canvas[chin[1] - 1 : chin[1] + 2])


@pytest.mark.parametrize("margin", [0.03, 0.06])
def test_brow_hair_mask_covers_the_brows_not_the_glabella_or_forehead(margin):
    """``brow_hair_mask`` (the detail maps' build) on facecue's template face: 1 on the brows and
    on a band half the margin above them, 0 on the glabella between them and on the forehead."""
    build = _build_expression_detail()
    size = 256
    landmarks = _template_face(size)
    mask = build.brow_hair_mask(landmarks, (size, size), margin)
    on, above = _brow_regions(landmarks, (size, size))
    unit = np.linalg.norm(landmarks[33] - landmarks[263])
    band = np.zeros_like(above)
    for upper, _ in BROW_STRIPS:  # half the margin above the upper brow points
        for x, y in np.round(landmarks[list(upper)] - [0, 0.5 * margin * unit]).astype(int):
            band[y, x] = True
    assert mask[on].min() > 0.99 and mask[band].min() > 0.75
    for point in (9, 151):
        x, y = np.round(landmarks[point]).astype(int)
        assert mask[y, x] < 0.01, point


def test_brow_registration_moves_raised_brows_back_and_keeps_forehead_lines():
    """``register_brows`` (the detail maps' build) on a synthetic face: the emotion's brows are 3 px
    higher than the neutral's and a new forehead line lies well above them. Registered, the ratio
    on and above the brows is flat; the forehead line (outside the flow's reach) stays."""
    import cv2

    build = _build_expression_detail()
    size = 256
    landmarks = _template_face(size)
    unit = np.linalg.norm(landmarks[33] - landmarks[263])
    rng = np.random.default_rng(0)
    skin = 150 + cv2.GaussianBlur(rng.normal(0, 12, (size, size)).astype(np.float32), (0, 0), 1.5)

    def face(brow_shift: float, forehead_line: bool) -> np.ndarray:
        image = skin.copy()
        for upper, lower in BROW_STRIPS:
            brow = np.vstack([landmarks[list(upper)], landmarks[list(lower)][::-1]]) - [0, brow_shift]
            cv2.fillPoly(image, [np.round(brow * 16).astype(np.int32)], 60.0, cv2.LINE_AA, shift=4)
        if forehead_line:
            y = int(landmarks[[105, 334], 1].mean() - 0.45 * unit)
            image[y - 1 : y + 2, int(landmarks[105, 0]) : int(landmarks[334, 0])] -= 30
        return cv2.GaussianBlur(image, (0, 0), 1.0)

    neutral, surprised = face(0.0, False), face(3.0, True)
    registered = build.register_brows(surprised, neutral, landmarks)
    on = np.logical_or(*_brow_regions(landmarks, (size, size)))
    before = np.abs(np.log(surprised / neutral))[on]
    after = np.abs(np.log(registered / neutral))[on]
    assert np.percentile(before, 95) > 0.4
    assert np.percentile(after, 95) < 0.3 * np.percentile(before, 95)
    y = int(landmarks[[105, 334], 1].mean() - 0.45 * unit)
    x = slice(int(landmarks[105, 0]) + 5, int(landmarks[334, 0]) - 5)
    assert np.log(registered / neutral)[y, x].mean() < -0.1  # the forehead line is still there


def test_strongest_frames_keep_the_deepest_glabella_creases():
    """``strongest_frames`` (anger's and disgust's maps): of a clip whose frames furrow the glabella
    to different depths, the median of the third with the deepest furrow is kept, not of all
    frames (a line 40 levels deep at most, the frames' depths shuffled). The same geometry in
    every frame, so the mesh warp onto the reference leaves the pixels where they are."""
    import cv2

    build = _build_expression_detail()
    size = 256
    landmarks = _template_face(size)
    rng = np.random.default_rng(1)
    skin = 150 + cv2.GaussianBlur(rng.normal(0, 6, (size, size)).astype(np.float32), (0, 0), 1.5)
    top, bottom = np.round(landmarks[[9, 6]]).astype(int)  # glabella to the nose's bridge
    depths = rng.permutation(np.linspace(0.0, 40.0, 12))

    def frame(depth: float) -> np.ndarray:
        image = skin.copy()
        image[top[1] : bottom[1], top[0] - 4 : top[0] + 5] -= depth  # a furrow over >10 % of the hull
        return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2)

    frames = [frame(depth) for depth in depths]
    neutral = build.luminance(frame(0.0))
    mask = build.skin_detail_mask(landmarks, (size, size))
    points = np.column_stack([landmarks, np.zeros(len(landmarks))])  # (478, 3): the warp's landmarks
    kept = build.strongest_frames(frames, np.repeat(points[None], len(frames), 0), points, neutral, mask)
    sampled = depths[:: build.PEAK_FRAME_STEP]
    deepest = np.sort(sampled)[::-1][: max(3, len(sampled) // build.PEAK_KEEP_ONE_IN)]
    line = (slice(top[1] + 3, bottom[1] - 3), top[0])
    furrow = float(np.median(neutral[line] - kept[line]))
    assert abs(furrow - np.median(deepest)) < 3.0, (furrow, np.median(deepest))
    assert furrow > np.median(sampled) + 8.0
    away = (slice(top[1] + 3, bottom[1] - 3), top[0] + 15)
    assert abs(float(np.median(neutral[away] - kept[away]))) < 2.0


def test_a_smiling_portraits_teeth_do_not_show_between_closed_lips(portrait, portrait_landmarks, portrait_cues):
    """The bundled portrait smiles with its upper teeth showing. Its lips closed (as every talking
    head starts) and the interior synthesized, the lips meet in a line clearly darker than the
    lips, as real closed lips do: not a light streak of the portrait's own teeth, which the warp's
    interpolated maps sampled across the closed seam (the line was then 10 levels below the
    lips' median, 27 with the lips' colours painted over the teeth). Rendered as a 400 px crop."""
    import cv2

    from facecue.phonetic import closed_mouth
    from facecue.render import output_transform

    topo = mesh_topology()
    target = edited(portrait_cues, closed_mouth(portrait_cues.normalized[0]))
    matrix, _ = output_transform((portrait.shape[1], portrait.shape[0]), portrait_landmarks, 400, full=False)
    frame = next(render(portrait, portrait_landmarks, [target], mouth="synthesize", output_size=400, full=False))
    points = target[:, :2] @ matrix[:, :2].T + matrix[:, 2]  # output pixels
    seam = np.zeros(frame.shape[:2], np.uint8)
    cv2.polylines(seam, [np.round(points[topo.mouth_upper[2:-2]]).astype(np.int32)], False, 1, thickness=3)
    seam = seam.astype(bool)  # the lips' meeting line, clear of the corners
    outer = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
    lips = polygon_mask(frame.shape, points[outer]) & ~seam
    teeth = polygon_mask(portrait.shape, portrait_landmarks[topo.mouth_loop])
    own_lips = polygon_mask(portrait.shape, portrait_landmarks[outer]) & ~teeth
    assert np.percentile(luminance(portrait)[teeth], 75) > np.median(luminance(portrait)[own_lips]) + 20
    brightness = luminance(frame)
    assert brightness[seam].mean() < np.median(brightness[lips]) - 18


def test_a_baring_emotions_teeth_show_more_as_the_mouth_opens(portrait, portrait_landmarks, portrait_cues):
    """Real level-3 anger shows more of its teeth the wider it opens: with angry weights the light
    rows under the upper lip and above the lower lip are taller (in eye units) in a wide opening
    than in a narrow one; neutral's upper row is fixed to the skull and shows the same depth in
    both. Rendered as a 400 px crop."""
    from facecue.constants import EMOTIONS
    from facecue.render import output_transform

    matrix, _ = output_transform((portrait.shape[1], portrait.shape[0]), portrait_landmarks, 400, full=False)
    light = {}
    for emotion in ("neutral", "angry"):
        weights = np.zeros(len(EMOTIONS), np.float32)
        weights[EMOTIONS.index(emotion)] = 1.0
        for opening in (0.12, 0.3):
            target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], opening))
            frame = next(render(portrait, portrait_landmarks, [target], mouth="synthesize", output_size=400,
                                full=False, expression=weights[None], expression_detail=False))
            points = target[:, :2] @ matrix[:, :2].T + matrix[:, 2]
            eye = np.linalg.norm(points[33] - points[263])
            upper, lower = points[13], points[14]
            x = int(round(upper[0]))
            column = luminance(frame)[int(np.ceil(upper[1])) : int(lower[1]), x - 1 : x + 2].mean(axis=1)
            light[emotion, opening] = (column > 140).sum() / eye
    assert light["angry", 0.3] > light["angry", 0.12] + 0.015  # 0.023; 0 with fixed rows
    assert abs(light["neutral", 0.3] - light["neutral", 0.12]) < 0.015


def test_a_widened_eye_shows_the_lid_hidden_pupil_round(large_portrait):
    """Narrowed eyes whose upper lids hide the top of the pupil, opened wide (surprise): the dark
    pupil is drawn whole and round round the iris centre, not as the seen lower edge continued
    into a horizontal slit."""
    import cv2

    from facecue.motion import close_eyes

    portrait, landmarks, cues = large_portrait
    narrow = edited(cues, close_eyes(cues.normalized[0], 0.55))
    image, irises = painted_eyes(portrait, narrow, 0.0, 1.0)
    topo = mesh_topology()
    for side, (centre, radius) in enumerate(irises):
        opening = polygon_mask(image.shape, narrow[topo.eye_loops[side]])
        layer = np.zeros(image.shape[:2], np.uint8)
        cv2.circle(layer, tuple(np.round(centre).astype(int)), int(round(0.35 * radius)), 1, -1)
        image[opening & (layer > 0)] = (8, 6, 6)
    renderer = get_renderer("mesh")
    renderer.prepare(image, narrow)
    target = edited(cues, close_eyes(cues.normalized[0], -0.5))
    frame = renderer.render_frame(target)
    lum = luminance(frame)
    for side, (centre, radius) in enumerate(irises):
        top = np.flatnonzero(polygon_mask(image.shape, narrow[topo.eye_loops[side]])[:, int(round(centre[0]))]).min()
        assert top > centre[1] - 0.3 * radius  # the lid hid the pupil's top
        moved = target[(RIGHT_IRIS, LEFT_IRIS)[side][0], :2] - narrow[(RIGHT_IRIS, LEFT_IRIS)[side][0], :2]
        cx, cy = centre + moved
        x0, x1, y0, y1 = int(cx - radius), int(cx + radius) + 1, int(cy - radius), int(cy + radius) + 1
        dark = lum[y0:y1, x0:x1] < 40
        rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
        assert len(rows) >= 3 and len(cols) >= 3
        width, height = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
        assert width <= 1.5 * height, (side, width, height)  # round, not a slit


def test_frames_are_rendered_without_building_the_topology(portrait, portrait_landmarks, portrait_cues, monkeypatch):
    """Render workers receive a prepared renderer and must not build the mesh topology: its first
    build in a process costs about half a second, which a widened eye once paid in every worker (a
    surprised 11 s clip went from 0.19 to 0.25 x real time). A prepared renderer draws widened,
    narrowed and talking frames with every emotion's detail without calling it."""
    from facecue.constants import EMOTIONS
    from facecue.motion import close_eyes

    import facecue.render as render_module

    engine = MeshRenderer(mouth="synthesize")
    engine.prepare(portrait, portrait_landmarks)

    def no_topology():
        raise AssertionError("mesh_topology() called while rendering a frame")

    monkeypatch.setattr(render_module, "mesh_topology", no_topology)
    for closure in (-0.5, 0.3):  # widened (surprise), narrowed
        shape = open_mouth(close_eyes(portrait_cues.normalized[0], closure), 0.2)
        for emotion in EMOTIONS:
            weights = np.zeros(len(EMOTIONS), np.float32)
            weights[EMOTIONS.index(emotion)] = 1.0
            engine.set_expression(weights)
            engine.render_frame(edited(portrait_cues, shape))


def test_a_black_and_white_portrait_gets_a_grey_mouth(portrait, portrait_landmarks, portrait_cues):
    """The synthesized interior's colours (cavity, tongue, teeth) are for colour photographs: on a
    black-and-white portrait it is grey (it was a red tongue and cavity in a grey face), while a
    colour portrait keeps them."""
    import cv2

    topo = mesh_topology()
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.3))
    inner = polygon_mask(portrait.shape, target[topo.mouth_loop])
    grey = cv2.cvtColor(cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    spreads = []
    for image in (portrait, grey):
        frame = next(render(image, portrait_landmarks, [target], mouth="synthesize")).astype(np.int32)
        spreads.append((frame.max(axis=2) - frame.min(axis=2))[inner])
    assert np.percentile(spreads[0], 75) > 30  # a colour portrait's interior is red
    assert spreads[1].max() <= 1


def test_a_sepia_portrait_gets_a_sepia_mouth(portrait, portrait_landmarks, portrait_cues):
    """A toned photograph (sepia) has one colour at every lightness: the synthesized interior takes
    it (it was a red tongue and cavity in a brown face). A colour face stays a colour photo, also
    on a grey backdrop."""
    from facecue.render import LUMA_WEIGHTS, photo_tint

    sepia = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    toned = np.clip(portrait.astype(np.float32) @ sepia.T, 0, 255).astype(np.uint8)
    tint = photo_tint(toned)
    assert tint is not None and tint[0] > 1.05 and tint[2] < 0.85, tint
    assert photo_tint(portrait) is None
    backdrop = np.full_like(portrait, 128)
    x0, y0 = portrait_landmarks[:, :2].min(axis=0).astype(int)
    x1, y1 = portrait_landmarks[:, :2].max(axis=0).astype(int)
    backdrop[y0:y1, x0:x1] = portrait[y0:y1, x0:x1]  # mostly grey pixels, a colour face
    assert photo_tint(backdrop, portrait[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)) is None

    topo = mesh_topology()
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.3))
    inner = polygon_mask(portrait.shape, target[topo.mouth_loop])
    frame = next(render(toned, portrait_landmarks, [target], mouth="synthesize")).astype(np.float32)[inner]
    luma = frame @ LUMA_WEIGHTS
    lit = luma > 25
    assert lit.sum() > 100
    ratios = frame[lit] / luma[lit, None]
    assert np.percentile(np.abs(ratios - tint).max(axis=1), 95) < 0.1  # the photo's tone, not red


def test_a_tiny_eye_in_a_dim_portrait_is_not_drawn_with_white_sclera(portrait, portrait_landmarks):
    """An eye a few pixels wide leaves no sclera pixels clear of the lids to sample: its iris'
    place took a fixed bright sclera colour, and widened (surprised) eyes showed white rings in a
    dim face. It takes the opening's own lighter pixels: no brighter than the portrait's eyes."""
    import cv2

    from facecue.motion import close_eyes

    scale = 0.25  # 128 px, eyes ~12 px wide
    image = (cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) * 0.5).astype(np.uint8)
    landmarks = portrait_landmarks * scale
    height, width = image.shape[:2]
    cues = FaceCues.from_landmarks(landmarks[None], 25.0, (width, height))
    target = edited(cues, close_eyes(cues.normalized[0], -0.5))
    frame = next(render(image, landmarks, [target]))
    for loop in mesh_topology().eye_loops:
        own = luminance(image)[polygon_mask(image.shape, landmarks[loop])].max()
        drawn = luminance(frame)[polygon_mask(image.shape, target[loop])]
        assert np.percentile(drawn, 90) <= own + 10, (np.percentile(drawn, 90), own)


def test_teeth_do_not_glow_in_an_underexposed_portrait(portrait, portrait_landmarks, portrait_cues):
    """Synthesized teeth are shaded by the skin's lightness, but not below 0.55 x a well-lit
    face's (dark skin keeps white teeth). In an underexposed photo that floor drew them glowing
    at 3 x the skin's lightness; they stay within TEETH_MAX_OVER_SKIN x it."""
    from facecue.render import SKIN_PROBES, TEETH_MAX_OVER_SKIN

    dark = (portrait.astype(np.float32) * 0.15).astype(np.uint8)  # skin lightness ~26 of 255
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.3))
    frame = next(render(dark, portrait_landmarks, [target], mouth="synthesize"))
    skin = np.mean([dark[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].mean()
                    for x, y in portrait_landmarks[list(SKIN_PROBES), :2]])
    inner = polygon_mask(portrait.shape, target[mesh_topology().mouth_loop])
    teeth = np.percentile(frame[inner].mean(axis=1), 99)
    assert teeth > 1.2 * skin  # still teeth
    assert teeth <= TEETH_MAX_OVER_SKIN * skin * 1.05, (teeth, skin)


def test_the_bundled_detail_maps_are_what_the_build_script_makes(shared_data, tmp_path):
    """``scripts/build_expression_detail.py --emotions fear surprised sad`` on a copy of the bundled
    maps rebuilds those three maps (fear's and surprise's brows registered and cleared, sadness'
    softened) as bundled, to one quantization step but for a few pixels (MediaPipe's landmarks differ in
    their last digits between CPUs), and keeps every other emotion's map bit for bit."""
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    bundled = repo / "src" / "facecue" / "assets" / "expression_detail.npz"
    copy = tmp_path / "maps.npz"
    shutil.copy(bundled, copy)
    subprocess.run([sys.executable, str(repo / "scripts" / "build_expression_detail.py"), "--data", str(shared_data),
                    "--out", str(copy), "--emotions", "fear", "surprised", "sad"], check=True, capture_output=True)
    with np.load(bundled) as before, np.load(copy) as after:
        assert float(after["scale"]) == float(before["scale"])
        names = list(before["emotion_names"])
        for e, name in enumerate(names):
            old, new = before["log_ratio_q"][e].astype(int), after["log_ratio_q"][e].astype(int)
            if name in ("fear", "surprised", "sad"):
                # MediaPipe's landmarks differ in their last digits from one CPU to another (its
                # kernels), and so do maps built from them: rebuilt on an AMD EPYC, 1.3-1.5 % of
                # these maps' pixels moved by one step from the bundled ones and 11-17 pixels (under
                # 0.03 %) by 2 or 3 (0.01 log-luminance); a build that skips the brows' registration
                # changes them by tens of steps
                step_changes = np.abs(new - old)
                assert step_changes.max() <= 6
                assert np.mean(step_changes > 1) < 0.001
            else:
                np.testing.assert_array_equal(new, old)


def test_upper_teeth_hang_below_the_rest_faces_upper_lip(portrait, portrait_landmarks, portrait_cues):
    """The bundled portrait smiles with parted lips; the cues' rest shape lets its upper lip down
    (phonetic.portrait_rest_shape). The synthesized upper teeth hang below that resting lip
    (``rest_landmarks``), so a speaking mouth shows them; hung from the portrait's raised lip they
    stayed hidden behind the lowered one. Without ``rest_landmarks`` nothing changes."""
    from facecue.phonetic import open_mouth, portrait_rest_shape

    rest_shape = portrait_rest_shape(portrait_cues.normalized[0])
    rest = edited(portrait_cues, rest_shape)
    unit = np.linalg.norm(portrait_landmarks[33, :2] - portrait_landmarks[263, :2])
    assert rest[13, 1] - portrait_landmarks[13, 1] > 0.04 * unit  # the resting upper lip is lower
    target = edited(portrait_cues, open_mouth(rest_shape, 0.15))
    hung, raised = (next(render(portrait, portrait_landmarks, [target], mouth="synthesize", rest_landmarks=r))
                    for r in (rest, None))
    x, y = (int(round(c)) for c in target[13, :2])
    below_lip = (slice(y + 1, y + 1 + max(2, int(0.02 * unit))), slice(x - 1, x + 2))
    assert luminance(hung)[below_lip].mean() > luminance(raised)[below_lip].mean() + 40
    same = next(render(portrait, portrait_landmarks, [target], mouth="synthesize", rest_landmarks=portrait_landmarks))
    np.testing.assert_array_equal(same, raised)


def test_synthesized_teeth_take_the_light_of_the_portrait(portrait, portrait_landmarks, portrait_cues):
    """The synthesized teeth are coloured by the light on the portrait (a fixed ivory drew them cold
    grey-blue in warm photographs): the bundled portrait smiles with its teeth, and the teeth drawn
    in its open mouth (bared by anger, a 400 px crop) take its own teeth's colour, also in the same
    photo given a warm cast (red up, blue down)."""
    import cv2

    from facecue.constants import EMOTIONS
    from facecue.render import LUMA_WEIGHTS, SKIN_PROBES, output_transform, own_teeth_rgb

    topo = mesh_topology()
    target = edited(portrait_cues, open_mouth(portrait_cues.normalized[0], 0.3))
    angry = np.zeros((1, len(EMOTIONS)), np.float32)
    angry[0, EMOTIONS.index("angry")] = 1.0
    matrix, _ = output_transform((portrait.shape[1], portrait.shape[0]), portrait_landmarks, 400, full=False)
    inner = np.zeros((400, 400), np.uint8)
    cv2.fillPoly(inner, [np.round(target[topo.mouth_loop, :2] @ matrix[:, :2].T + matrix[:, 2]).astype(np.int32)], 1)
    warm = np.clip(portrait.astype(np.float32) * np.array([1.1, 1.0, 0.8], np.float32), 0, 255).astype(np.uint8)
    drawn = []
    for image in (portrait, warm):
        skin = np.concatenate([image[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].reshape(-1, 3)
                               for x, y in portrait_landmarks[list(SKIN_PROBES), :2]]).astype(np.float32).mean(axis=0)
        own = own_teeth_rgb(image, portrait_landmarks, topo, float(skin.max()))
        assert own is not None
        frame = next(render(image, portrait_landmarks, [target], mouth="synthesize", output_size=400, full=False,
                            expression=angry)).astype(np.float32)[inner.astype(bool)]
        luma = frame @ LUMA_WEIGHTS
        teeth = frame[luma > 0.75 * np.percentile(luma, 99)]  # the lit teeth, not the cavity or the lips
        assert len(teeth) > 200
        drawn.append(np.median(teeth / (teeth @ LUMA_WEIGHTS)[:, None], axis=0))
        np.testing.assert_allclose(drawn[-1], own / float(own @ LUMA_WEIGHTS), atol=0.03)
    assert drawn[1][2] < drawn[0][2] - 0.08  # the warm photo's teeth are less blue


def test_teeth_colour_follows_the_eye_whites_where_no_teeth_show(portrait, portrait_landmarks):
    """With no teeth of its own to go by (the mouth's interior painted dark), a portrait's synthesized
    teeth take TEETH_RGB shifted by how its eye whites differ from DEFAULT_SCLERA_RGB: TEETH_RGB
    itself for eye whites of that colour, warmer for warmer whites, always at TEETH_RGB's luma and
    within TEETH_CHROMA_LIMIT of grey."""
    import cv2

    from facecue.render import (DEFAULT_SCLERA_RGB, LUMA_WEIGHTS, TEETH_CHROMA_LIMIT, TEETH_RGB, own_teeth_rgb,
                                teeth_colour)

    topo = mesh_topology()
    closed = portrait.copy()
    cv2.fillPoly(closed, [np.round(portrait_landmarks[topo.mouth_loop, :2]).astype(np.int32)], (40, 20, 20))
    assert own_teeth_rgb(closed, portrait_landmarks, topo, 200.0) is None
    luma = float(np.asarray(TEETH_RGB, np.float32) @ LUMA_WEIGHTS)
    np.testing.assert_allclose(teeth_colour(closed, portrait_landmarks, topo, 200.0, None), TEETH_RGB, atol=1e-3)
    np.testing.assert_allclose(teeth_colour(closed, portrait_landmarks, topo, 200.0, np.array(DEFAULT_SCLERA_RGB)),
                               TEETH_RGB, atol=1e-3)
    warm_whites = np.array([200.0, 160.0, 120.0])
    warm = teeth_colour(closed, portrait_landmarks, topo, 200.0, warm_whites)
    reference = np.asarray(DEFAULT_SCLERA_RGB, np.float64)
    expected = (np.asarray(TEETH_RGB) / luma + warm_whites / (warm_whites @ LUMA_WEIGHTS)
                - reference / (reference @ LUMA_WEIGHTS))
    np.testing.assert_allclose(warm / luma, expected / (expected @ LUMA_WEIGHTS), atol=1e-4)
    assert warm[0] > TEETH_RGB[0] and warm[2] < TEETH_RGB[2] - 20
    for whites in (warm_whites, np.array([250.0, 40.0, 10.0]), np.array([10.0, 40.0, 250.0])):
        colour = teeth_colour(closed, portrait_landmarks, topo, 200.0, whites)
        assert abs(float(colour @ LUMA_WEIGHTS) - luma) < 1e-2
        assert np.all(np.abs(colour / luma - 1.0) <= TEETH_CHROMA_LIMIT + 1e-5)


def test_forehead_mask_covers_the_forehead_above_the_brows():
    """``forehead_mask`` (the detail maps' build) on facecue's canonical canvas: 1 on the forehead
    (MediaPipe 10, 151), 0 on the glabella and nose below the brows (8, 6), 0 on the brows' lower
    edge, about one half on their upper edge."""
    build = _build_expression_detail()
    from facecue.render import DETAIL_CANVAS, canonical_detail_landmarks

    landmarks = canonical_detail_landmarks()
    mask = build.forehead_mask(landmarks, (DETAIL_CANVAS, DETAIL_CANVAS))

    def at(point: int) -> float:
        x, y = np.round(landmarks[point, :2]).astype(int)
        return float(mask[y, x])

    assert at(10) > 0.99 and at(151) > 0.99
    assert at(8) < 0.01 and at(6) < 0.01
    assert max(at(p) for p in (46, 53, 52, 65, 55)) < 0.05  # the right brow's lower edge
    assert all(0.3 < at(p) < 0.7 for p in (63, 105, 66))  # its upper edge, where the mask fades in


def test_bundled_detail_maps_carry_no_hair_strands_down_the_forehead():
    """The actors' fringe falling over the forehead (M030's happy clip) drew thin dark streaks from
    the hairline to the brows; forehead lines run across. Above the brows the rebuilt maps
    (``FRINGE_OVER_FOREHEAD``) change more down the forehead than across it, as the other
    emotions' do: with the streaks, happiness' map changed 1.07 x as much across as down."""
    build = _build_expression_detail()
    from facecue.constants import EMOTIONS
    from facecue.render import DETAIL_CANVAS

    maps, landmarks = _bundled_maps_and_brows()[:2]
    forehead = build.forehead_mask(landmarks, (DETAIL_CANVAS, DETAIL_CANVAS), margin=0.05)[:-1, :-1] > 0.99
    for emotion in sorted({e for emotions in build.FRINGE_OVER_FOREHEAD.values() for e in emotions}):
        detail = maps[EMOTIONS.index(emotion)]
        across = np.abs(np.diff(detail, axis=1))[:-1][forehead].mean()
        down = np.abs(np.diff(detail, axis=0))[:, :-1][forehead].mean()
        assert across < 0.9 * down, (emotion, across / down)


def test_portrait_is_scaled_down_only_to_its_own_cues_size(portrait):
    """``portrait_at_cue_size``: the portrait's own cues made at half its size scale it down (and
    its landmarks are found again there); another face's cues, or cues larger than the portrait,
    leave it as it is."""
    from facecue.render import detect_portrait_landmarks, portrait_at_cue_size

    height, width = portrait.shape[:2]
    points = detect_portrait_landmarks(portrait)
    half = (width // 2, height // 2)
    own = FaceCues.from_landmarks(points[None] * 0.5, 25.0, half)
    image, found = portrait_at_cue_size(portrait, points, own)
    assert image.shape[:2] == (half[1], half[0])
    assert np.median(np.linalg.norm(found[:, :2] - points[:, :2] * 0.5, axis=1)) < 0.02 * half[0]
    # a tall portrait (400 x 1500) scaled as generate scales it, by its longer side to 302 px: its
    # short side rounds to 81 px, 1.75 px off that side's own factor
    tall = np.pad(portrait[:, 56:456], ((0, 1500 - height), (0, 0), (0, 0)), mode="edge")
    tall_points = detect_portrait_landmarks(tall)
    factor = 302 / 1500
    tall_cues = FaceCues.from_landmarks(tall_points[None] * factor, 25.0, (round(400 * factor), 302))
    assert portrait_at_cue_size(tall, tall_points, tall_cues)[0].shape[:2] == (302, 81)
    moved = points * 0.5 + np.float32([0.3 * half[0], 0.0, 0.0])  # another face, elsewhere in the frame
    for cues in (FaceCues.from_landmarks(moved[None], 25.0, half),
                 FaceCues.from_landmarks(points[None] * 2.0, 25.0, (width * 2, height * 2))):
        image, found = portrait_at_cue_size(portrait, points, cues)
        assert image is portrait and found is points
