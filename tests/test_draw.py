"""Overlays: contact-sheet labels stay readable on any background."""

import numpy as np
import pytest

from facecue.draw import labelled


@pytest.mark.parametrize("background", [0, 128, 255])
def test_label_reads_on_light_and_dark_backgrounds(background):
    tile = np.full((160, 160, 3), background, np.uint8)
    out = labelled(tile, "surprised")
    corner = out[:20, :80].astype(int)
    assert (tile == background).all(), "the input is not drawn on"
    # white strokes inside a black outline: both are there whatever the background
    assert (corner.min(axis=2) >= 180).sum() >= 20
    assert (corner.max(axis=2) <= 30).sum() >= 20
    assert (out[40:] == background).all(), "only the corner is labelled"
