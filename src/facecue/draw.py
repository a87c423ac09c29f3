"""Overlays that make cues visible: landmarks, iris, gaze arrows, head-pose axes, a status line."""

from __future__ import annotations

import cv2
import numpy as np

from .constants import LEFT_IRIS, N_MESH_POINTS, RIGHT_IRIS
from .cues import rotation_to_angles
from .landmarks import eye_corner_distance

MESH_COLOUR = (80, 255, 120)  # RGB
IRIS_COLOUR = (255, 220, 0)
GAZE_COLOUR = (255, 60, 200)
AXIS_COLOURS = ((255, 60, 60), (60, 220, 60), (70, 110, 255))  # x red, y green, z blue


def gaze_direction(gaze: np.ndarray) -> np.ndarray:
    """(..., 2) (yaw, pitch) degrees -> (..., 3) unit vector in the canonical frame (toward camera is -z)."""
    yaw, pitch = np.radians(gaze[..., 0]), np.radians(gaze[..., 1])
    return np.stack([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), -np.cos(yaw) * np.cos(pitch)], axis=-1)


def draw_cues(
    frame: np.ndarray,
    landmarks: np.ndarray,
    rotation: np.ndarray | None = None,
    scale: float | None = None,
    gaze: np.ndarray | None = None,
    text: str | None = None,
) -> np.ndarray:
    """Draw one frame's cues on a copy of the frame.

    Parameters
    ----------
    frame : (H, W, 3) uint8 RGB
    landmarks : (478, 3) pixels
    rotation : (3, 3) head rotation; draws pose axes at the nose bridge and turns gaze arrows
    scale : pixels per canonical unit (axis and arrow length)
    gaze : (2, 2) degrees per eye (right, left) x (yaw, pitch)
    text : status line drawn at the top-left
    """
    out = np.ascontiguousarray(frame.copy())
    height, width = out.shape[:2]
    thick = max(1, round(min(height, width) / 400))
    dot = max(1, round(min(height, width) / 500))
    for x, y in landmarks[:N_MESH_POINTS, :2].astype(int):
        cv2.circle(out, (int(x), int(y)), dot, MESH_COLOUR, -1, lineType=cv2.LINE_AA)
    length = (scale or eye_corner_distance(landmarks)) * 0.8
    for eye, iris in enumerate((RIGHT_IRIS, LEFT_IRIS)):
        centre = landmarks[iris[0], :2]
        radius = np.linalg.norm(landmarks[list(iris[1:]), :2] - centre, axis=1).mean()
        cv2.circle(out, tuple(np.round(centre).astype(int)), max(1, int(round(radius))), IRIS_COLOUR, thick, cv2.LINE_AA)
        if gaze is not None:
            direction = gaze_direction(np.asarray(gaze[eye], dtype=np.float64))
            if rotation is not None:
                direction = np.asarray(rotation, dtype=np.float64) @ direction
            tip = centre + direction[:2] * length
            cv2.arrowedLine(out, _pt(centre), _pt(tip), GAZE_COLOUR, thick, cv2.LINE_AA, tipLength=0.25)
    if rotation is not None:
        origin = landmarks[168, :2]
        for axis, colour in enumerate(AXIS_COLOURS):
            tip = origin + np.asarray(rotation, dtype=np.float64)[:2, axis] * length * 0.8
            cv2.arrowedLine(out, _pt(origin), _pt(tip), colour, thick + 1, cv2.LINE_AA, tipLength=0.2)
    if text:
        font_scale = max(0.35, min(height, width) / 1000)
        cv2.putText(out, text, (8, int(24 * font_scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(out, text, (8, int(24 * font_scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def labelled(image: np.ndarray, text: str, scale: float = 0.42) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 with ``text`` at its top-left corner, white outlined in
    black so that it reads on light and dark backgrounds alike (contact sheets' tiles)."""
    out = np.ascontiguousarray(image.copy())
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return out


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def cue_status(rotation: np.ndarray, gaze: np.ndarray, aperture: np.ndarray, frame_index: int | None = None) -> str:
    """One line: pose angles, combined gaze and eye aperture."""
    yaw, pitch, roll = rotation_to_angles(rotation)
    g = np.asarray(gaze).mean(axis=0)
    prefix = f"#{frame_index} " if frame_index is not None else ""
    return f"{prefix}yaw {yaw:+.0f} pitch {pitch:+.0f} roll {roll:+.0f} | gaze {g[0]:+.0f},{g[1]:+.0f} | eyes {np.mean(aperture):.2f}"
