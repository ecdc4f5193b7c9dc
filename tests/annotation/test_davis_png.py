"""DAVIS-style frame PNGs: the palette (PASCAL VOC's colour map, as the DAVIS annotation files carry
it), indexed PNGs that Pillow opens as mode P with that palette and object numbers where the masks
are, overlaps drawn in the given order, and reading the numbers back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from annotation.datasets.davis_png import davis_palette, frame_indices, frame_png, read_frame_png

H, W = 12, 16


def box_mask(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_it_has_the_davis_colours() -> None:
    palette = davis_palette()

    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    # The first colours of any DAVIS annotation PNG's palette.
    assert palette[:9].tolist() == [
        [0, 0, 0],
        [128, 0, 0],
        [0, 128, 0],
        [128, 128, 0],
        [0, 0, 128],
        [128, 0, 128],
        [0, 128, 128],
        [128, 128, 128],
        [64, 0, 0],
    ]
    assert palette[20].tolist() == [0, 64, 128]  # 20 = 0b010_100: blue from the first group, green from the next
    assert palette[255].tolist() == [224, 224, 192]
    assert len({tuple(colour) for colour in palette.tolist()}) == 256


def test_it_writes_an_indexed_png_with_the_palette() -> None:
    masks = {10: box_mask(0, 0, 3, 4), 20: box_mask(5, 6, 4, 5)}

    data = frame_png(masks, H, W, order=[10, 20])

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "P" and image.size == (W, H)
        assert image.getpalette()[: 3 * 256] == davis_palette().ravel().tolist()
        indices = np.array(image)
        rgb = np.array(image.convert("RGB"))
    expected = np.zeros((H, W), dtype=np.uint8)
    expected[0:3, 0:4] = 1
    expected[5:9, 6:11] = 2
    assert np.array_equal(indices, expected)
    assert rgb[1, 1].tolist() == [128, 0, 0] and rgb[6, 7].tolist() == [0, 128, 0] and rgb[11, 15].tolist() == [0, 0, 0]


def test_it_draws_later_objects_over_earlier_ones() -> None:
    masks = {1: box_mask(0, 0, 6, 6), 2: box_mask(3, 3, 6, 6)}

    over = read_frame_png(frame_png(masks, H, W, order=[1, 2]))
    under = read_frame_png(frame_png(masks, H, W, order=[2, 1]))

    assert over[4, 4] == 2 and over[1, 1] == 1 and over[8, 8] == 2
    assert under[4, 4] == 2 and under[1, 1] == 2 and under[8, 8] == 1  # object 1 is now second, so on top


def test_it_numbers_objects_by_their_place_in_the_order_even_when_absent() -> None:
    indices = frame_indices({30: box_mask(2, 2, 2, 2)}, H, W, order=[10, 20, 30])

    assert set(np.unique(indices).tolist()) == {0, 3}


def test_it_reads_back_what_it_wrote() -> None:
    rng = np.random.default_rng(5)
    masks = {n: rng.random((H, W)) < 0.2 for n in range(1, 8)}
    order = list(range(1, 8))

    assert np.array_equal(read_frame_png(frame_png(masks, H, W, order)), frame_indices(masks, H, W, order))


def test_it_reads_an_8_bit_grey_png_as_indices() -> None:
    grey = np.arange(H * W, dtype=np.uint8).reshape(H, W) % 4
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")

    assert np.array_equal(read_frame_png(buffer.getvalue()), grey)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not an image", "Not a readable PNG"),
        (lambda: _encoded(Image.new("RGB", (4, 4)), "PNG"), "got mode RGB"),
        (lambda: _encoded(Image.new("L", (4, 4)), "BMP"), "Expected a PNG, got BMP"),
    ],
)
def test_it_refuses_what_is_not_an_index_png(data: object, message: str) -> None:
    raw = data() if callable(data) else data

    with pytest.raises(ValueError, match=message):
        read_frame_png(raw)


def _encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("masks", "order", "message"),
    [
        ({1: box_mask(0, 0, 2, 2)}, [2], r"Objects \[1\] have masks but are not in the object order"),
        ({}, [1, 1], "more than once"),
        ({}, list(range(256)), "at most 255 objects"),
        ({1: np.ones((H, W + 1), dtype=bool)}, [1], "not the frame's"),
    ],
)
def test_it_refuses_masks_it_cannot_draw(masks: dict, order: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        frame_png(masks, H, W, order)
