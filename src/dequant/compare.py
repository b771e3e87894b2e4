"""`dequant compare`: one PNG of labelled panels, the input JPEG beside each model's restoration.

People judge a restoration by looking, so the figure shows one crop of every
picture side by side, enlarged with nearest-neighbour so JPEG blocks stay
visible. Without a given crop it takes the 8x8-aligned window where the
restorations differ most from the input: where the models had most to do.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dequant import metrics

GRID = 8
LABEL_HEIGHT = 40  # pixels above each panel for its name and scores
GAP = 4  # pixels between panels
BACKGROUND = (255, 255, 255)


@dataclass
class Panel:
    label: str
    pixels: np.ndarray  # HxWx3 uint8, the whole image
    scores: str = ""  # e.g. "29.31 dB  LPIPS 0.213" against the reference


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """'X,Y,W,H' -> (x, y, w, h); ValueError with the reason."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--crop {text}: want X,Y,W,H in pixels, e.g. 64,32,128,128") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise ValueError(f"--crop {text}: X and Y from 0, W and H from 1")
    return x, y, w, h


def busiest_window(before: np.ndarray, afters: list[np.ndarray], width: int, height: int) -> tuple[int, int]:
    """Top-left corner, on the 8x8 grid, of the window where the restorations change the input most."""
    change = sum(np.abs(after.astype(np.float64) - before).mean(axis=2) for after in afters)
    table = np.pad(change, ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # summed-area table: any window in O(1)
    rows, columns = change.shape
    best, corner = -1.0, (0, 0)
    for y in range(0, max(rows - height, 0) + 1, GRID):
        for x in range(0, max(columns - width, 0) + 1, GRID):
            y2, x2 = min(y + height, rows), min(x + width, columns)
            total = table[y2, x2] - table[y, x2] - table[y2, x] + table[y, x]
            if total > best:
                best, corner = total, (x, y)
    return corner


def score(panel: Panel, reference: np.ndarray, lpips) -> str:
    text = f"{metrics.psnr(panel.pixels, reference, 255):.2f} dB"
    if lpips is not None:
        text += f"  LPIPS {lpips.score(panel.pixels, reference):.3f}"
    return text


def render(panels: list[Panel], crop: tuple[int, int, int, int], zoom: int) -> Image.Image:
    """The panels' crops side by side, each enlarged `zoom` times under its label and scores."""
    x, y, w, h = crop
    font = ImageFont.load_default(size=14)
    width, height = w * zoom, h * zoom
    figure = Image.new("RGB", (len(panels) * (width + GAP) - GAP, LABEL_HEIGHT + height), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    for i, panel in enumerate(panels):
        left = i * (width + GAP)
        window = Image.fromarray(panel.pixels[y : y + h, x : x + w])
        figure.paste(window.resize((width, height), Image.Resampling.NEAREST), (left, LABEL_HEIGHT))
        draw.text((left + 4, 3), panel.label, fill=(0, 0, 0), font=font)
        if panel.scores:
            draw.text((left + 4, 21), panel.scores, fill=(60, 60, 60), font=font)
    return figure


def figure(before: Panel, restored: list[Panel], *, reference: np.ndarray | None, crop: str | None,
           size: int, zoom: int, lpips=None) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The figure, and the crop (x, y, w, h) it shows."""
    rows, columns = before.pixels.shape[:2]
    if crop:
        x, y, w, h = parse_crop(crop)
        if x + w > columns or y + h > rows:
            raise ValueError(f"--crop {crop}: outside the {columns}x{rows} image")
    else:
        w, h = min(size, columns), min(size, rows)
        x, y = busiest_window(before.pixels, [p.pixels for p in restored], w, h)
    panels = [before, *restored]
    if reference is not None:
        for panel in panels:
            panel.scores = score(panel, reference, lpips)
        panels.append(Panel("reference", reference))
    return render(panels, (x, y, w, h), zoom), (x, y, w, h)


def rgb(pixels: np.ndarray) -> np.ndarray:
    """HxWx1 or HxWx3 uint8 -> HxWx3."""
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def compare(input, *, models: list[tuple[str | None, str]], reference=None, crop: str | None = None, size: int = 128,
            zoom: int = 3, quality: int | None = None, lpips_weights=None) -> tuple[Image.Image, tuple, int]:
    """(figure, crop shown, panel count) for the picture at `input`: the JPEG, each (model spec, mode)'s
    restoration (the fidelity default when none is named) and the reference, scored against it."""
    import sys

    from dequant import images, registry
    from dequant.restorer import Restorer, Settings

    picture = images.read(input)
    clean = images.to_uint8(images.read(reference).pixels) if reference else None
    before = images.to_uint8(picture.pixels)
    if clean is not None and clean.shape != before.shape:
        raise images.ImageError(f"{reference}: its size or channels differ from the input's")
    entries = registry.load()
    panels = []
    for spec, mode in models or [(None, "fidelity")]:
        restorer = Restorer(spec, Settings(quality=quality), mode=mode, models=entries)
        name = restorer.name
        restored = images.to_uint8(restorer(picture).pixels)
        panels.append(Panel(name + (f" ({mode})" if spec is None and mode != "fidelity" else ""), rgb(restored)))
    strength = f"quality {picture.quality}" if picture.quality else "input"
    lpips = None
    if clean is not None:
        try:
            lpips = metrics.LPIPS(lpips_weights)
        except OSError as error:
            print(f"note: LPIPS left out, its weights are missing ({error})", file=sys.stderr)
    image, shown = figure(Panel(f"JPEG {strength}", rgb(before)), panels,
                          reference=rgb(clean) if clean is not None else None, crop=crop, size=size, zoom=zoom, lpips=lpips)
    return image, shown, len(panels) + 1 + (clean is not None)
