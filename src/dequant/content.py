"""Non-photo pictures drawn from a seed: the screenshots, text and graphics people also save as JPEG.

Each picture is a pure function of (seed, index): `picture(seed, index)` picks one of its kinds (`KINDS`) and draws it
with Pillow, so a training set (seed 1) and a validation set (seed 2) are rebuilt exactly by
`dequant content`. Fonts come from the machine (Debian's font packages, see README, Training pictures);
with none installed Pillow's built-in font serves, so tests run anywhere.

Adding a kind: a function (rng, width, height) -> RGB image, and a row in KINDS; a set's pictures take
turns among the kinds it is drawn from (`MIX` unless told), so a new kind leaves the sets written before it
as they were.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))


@lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """Every TrueType/OpenType font on the machine, sorted so a seed draws the same fonts on the same machine."""
    files = [p for folder in FONT_FOLDERS if folder.is_dir() for p in folder.rglob("*") if p.suffix.lower() in (".ttf", ".otf")]
    return tuple(path for path in sorted(files) if draws_latin(path))


def draws_latin(path: Path) -> bool:
    """Whether the font has Latin letters: a font for another script draws the same empty box for each."""
    try:
        face = ImageFont.truetype(str(path), 16)
    except OSError:
        return False
    return len({bytes(face.getmask(letter)) for letter in "aeg"}) == 3


def font(rng: np.random.Generator, size: int, monospace: bool = False) -> ImageFont.ImageFont:
    files = font_files()
    if monospace:
        files = tuple(f for f in files if "mono" in f.name.lower()) or files
    if not files:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(files[rng.integers(len(files))]), size)


def colour(rng, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, 3))


def contrasting(rng, background) -> tuple[int, int, int]:
    """A colour far enough from `background` in luma to read as text or a line."""
    dark = sum(background) / 3 > 128
    return colour(rng, 0, 110) if dark else colour(rng, 150, 256)


def words(rng, count: int) -> str:
    """Pronounceable nonsense with capitals, digits and punctuation: the shapes of text in any language."""
    syllables = ["ka", "to", "re", "mi", "an", "sel", "or", "qu", "ith", "ex", "ly", "ph", "ung", "ar", "es", "be"]
    out = []
    for _ in range(count):
        word = "".join(rng.choice(syllables) for _ in range(rng.integers(1, 4)))
        roll = rng.random()
        if roll < 0.15:
            word = word.capitalize()
        elif roll < 0.22:
            word = str(rng.integers(0, 10000))
        elif roll < 0.3:
            word += rng.choice(list(".,;:!?)"))
        out.append(word)
    return " ".join(out)


def background(rng, width: int, height: int) -> Image.Image:
    """Flat, a linear gradient, or flat with a faint texture."""
    base = np.array(colour(rng), dtype=np.float32)
    roll = rng.random()
    if roll < 0.55:
        pixels = np.broadcast_to(base, (height, width, 3))
    elif roll < 0.85:
        other = np.array(colour(rng), dtype=np.float32)
        t = np.linspace(0, 1, width if rng.random() < 0.5 else height, dtype=np.float32)
        t = t[None, :, None] if len(t) == width else t[:, None, None]
        pixels = base * (1 - t) + other * t
        pixels = np.broadcast_to(pixels, (height, width, 3))
    else:
        pixels = base + rng.normal(0, rng.uniform(2, 10), (height, width, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def text_block(draw, rng, box, size: int, fill, monospace: bool = False) -> None:
    """Lines of words filling `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    face = font(rng, size, monospace)
    y = y0
    while y + size <= y1:
        line = words(rng, int(rng.integers(2, 14)))
        while line and draw.textlength(line, font=face) > x1 - x0:
            line = line.rsplit(" ", 1)[0] if " " in line else ""
        draw.text((x0, y), line, fill=fill, font=face)
        y += int(size * rng.uniform(1.15, 1.7))


def text_page(rng, width, height) -> Image.Image:
    image = background(rng, width, height)
    draw = ImageDraw.Draw(image)
    y = 0
    while y < height:
        size = int(rng.choice([9, 10, 11, 12, 13, 14, 16, 18, 20, 24, 28, 36, 48]))
        block = int(rng.integers(size * 2, size * 8))
        margin = int(rng.integers(2, width // 6))
        text_block(draw, rng, (margin, y, width - margin // 2, y + block), size, contrasting(rng, image.getpixel((0, min(y, height - 1)))))
        y += block + int(rng.integers(0, size * 2))
    return image


def terminal(rng, width, height) -> Image.Image:
    image = Image.new("RGB", (width, height), colour(rng, 0, 48))
    draw = ImageDraw.Draw(image)
    size = int(rng.choice([10, 11, 12, 13, 14, 16]))
    face = font(rng, size, monospace=True)
    palette = [colour(rng, 120, 256) for _ in range(5)]
    for y in range(2, height - size, int(size * 1.3)):
        x = 2
        for _ in range(int(rng.integers(1, 6))):
            piece = words(rng, int(rng.integers(1, 5)))
            draw.text((x, y), piece, fill=palette[rng.integers(len(palette))], font=face)
            x += int(draw.textlength(piece + " ", font=face))
    return image


def ui_layout(rng, width, height) -> Image.Image:
    """A window: title bar, side bar, buttons, input fields, a list with separators, icons."""
    image = Image.new("RGB", (width, height), colour(rng, 200, 256) if rng.random() < 0.7 else colour(rng, 20, 70))
    draw = ImageDraw.Draw(image)
    ink = contrasting(rng, image.getpixel((0, 0)))
    accent = colour(rng)
    bar = int(rng.integers(20, 40))
    draw.rectangle((0, 0, width, bar), fill=colour(rng))
    draw.text((8, bar // 4), words(rng, 3), fill=contrasting(rng, image.getpixel((1, 1))), font=font(rng, bar // 2))
    side = int(rng.integers(0, width // 3))
    if side:
        draw.rectangle((0, bar, side, height), fill=colour(rng))
        text_block(draw, rng, (6, bar + 8, side - 4, height), int(rng.integers(10, 16)), contrasting(rng, image.getpixel((2, bar + 2))))
    y = bar + 10
    while y < height - 30:
        roll, row = rng.random(), int(rng.integers(18, 40))
        x = side + 10
        if roll < 0.3:  # buttons
            for _ in range(int(rng.integers(1, 5))):
                w = int(rng.integers(50, 140))
                draw.rounded_rectangle((x, y, x + w, y + row), radius=int(rng.integers(0, 10)), fill=accent,
                                       outline=ink if rng.random() < 0.5 else None)
                draw.text((x + 8, y + row // 4), words(rng, 1), fill=contrasting(rng, accent), font=font(rng, row // 2))
                x += w + 10
        elif roll < 0.5:  # an input field
            draw.rectangle((x, y, min(width - 10, x + int(rng.integers(120, 400))), y + row), outline=ink, fill=(255, 255, 255))
            draw.text((x + 4, y + row // 4), words(rng, 2), fill=(90, 90, 90), font=font(rng, row // 2))
        elif roll < 0.8:  # list rows with separators and icons
            for _ in range(int(rng.integers(2, 6))):
                draw.ellipse((x, y + 3, x + row - 6, y + row - 3), fill=colour(rng))
                draw.text((x + row + 4, y + row // 4), words(rng, int(rng.integers(2, 7))), fill=ink, font=font(rng, row // 2))
                y += row + 2
                draw.line((side, y, width, y), fill=colour(rng, 150, 230), width=1)
        else:
            text_block(draw, rng, (x, y, width - 10, y + row * 3), int(rng.integers(10, 18)), ink)
            y += row * 2
        y += row + int(rng.integers(4, 16))
    return image


def chart(rng, width, height) -> Image.Image:
    """Bars, lines or scatter on axes with grid lines, tick labels and a legend."""
    image = Image.new("RGB", (width, height), (255, 255, 255) if rng.random() < 0.8 else colour(rng, 220, 256))
    draw = ImageDraw.Draw(image)
    small = font(rng, int(rng.integers(9, 15)))
    left, top, right, bottom = int(width * 0.12), int(height * 0.1), int(width * 0.95), int(height * 0.85)
    grid = colour(rng, 200, 240)
    for i in range(int(rng.integers(3, 9))):
        y = bottom - (bottom - top) * i // 6
        draw.line((left, y, right, y), fill=grid, width=1)
        draw.text((4, y - 6), f"{rng.uniform(0, 100):.1f}", fill=(40, 40, 40), font=small)
    draw.line((left, top, left, bottom), fill=(0, 0, 0), width=int(rng.integers(1, 3)))
    draw.line((left, bottom, right, bottom), fill=(0, 0, 0), width=int(rng.integers(1, 3)))
    series = int(rng.integers(1, 4))
    colours = [colour(rng, 0, 230) for _ in range(series)]
    kind, n = rng.choice(["bars", "lines", "scatter"]), int(rng.integers(4, 40))
    for s in range(series):
        values = np.cumsum(rng.normal(0, 1, n)) if kind == "lines" else rng.uniform(0, 1, n)
        values = (values - values.min()) / (np.ptp(values) + 1e-6)
        xs = np.linspace(left + 5, right - 5, n)
        ys = bottom - values * (bottom - top) * 0.9
        if kind == "bars":
            w = max(1.0, (right - left) / n / (series + 1))
            for x, y in zip(xs, ys):
                draw.rectangle((x + s * w, min(y, bottom - 2), x + (s + 1) * w - 1, bottom - 1), fill=colours[s])
        elif kind == "lines":
            draw.line(list(zip(xs, ys)), fill=colours[s], width=int(rng.integers(1, 4)))
        else:
            r = int(rng.integers(2, 5))
            for x, y in zip(xs, ys):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=colours[s])
        draw.rectangle((right - 90, top + 14 * s, right - 80, top + 14 * s + 10), fill=colours[s])
        draw.text((right - 75, top + 14 * s - 2), words(rng, 1), fill=(0, 0, 0), font=small)
    draw.text((left, bottom + 8), words(rng, 4), fill=(0, 0, 0), font=small)
    return image


def line_art(rng, width, height) -> Image.Image:
    """Strokes, outlines and flat fills, as in comics, diagrams and logos."""
    image = Image.new("RGB", (width, height), colour(rng, 225, 256))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 40))):
        points = [tuple(rng.integers(0, (width, height))) for _ in range(int(rng.integers(2, 6)))]
        ink = (0, 0, 0) if rng.random() < 0.6 else colour(rng)
        roll = rng.random()
        if roll < 0.4:
            draw.line([tuple(map(int, p)) for p in points], fill=ink, width=int(rng.integers(1, 6)), joint="curve")
        elif roll < 0.7:
            x, y = map(int, points[0])
            r = int(rng.integers(5, width // 4))
            draw.ellipse((x - r, y - r, x + r, y + r), outline=ink, width=int(rng.integers(1, 5)),
                         fill=colour(rng) if rng.random() < 0.4 else None)
        else:
            draw.polygon([tuple(map(int, p)) for p in points[:3]] + [tuple(map(int, points[-1]))], outline=ink,
                         fill=colour(rng) if rng.random() < 0.5 else None)
    return image


def flat_graphics(rng, width, height) -> Image.Image:
    """Flat shapes and smooth gradients: logos, icons, banners, slides."""
    image = background(rng, width, height)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 12))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))
        shape = rng.choice(["rect", "round", "ellipse"])
        fill = colour(rng)
        if shape == "rect":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif shape == "round":
            draw.rounded_rectangle((x0, y0, x1, y1), radius=int(rng.integers(3, 30)), fill=fill)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
    if rng.random() < 0.6:
        size = int(rng.integers(20, 80))
        draw.text((int(rng.integers(0, width // 2)), int(rng.integers(0, height - size))), words(rng, 2),
                  fill=colour(rng), font=font(rng, size))
    return image


def dithered(rng, width, height) -> Image.Image:
    """Another kind's picture reduced to a small palette: Floyd-Steinberg error diffusion or none."""
    source = KINDS[rng.choice(["flat", "chart", "lineart", "text"])](rng, width, height)
    if rng.random() < 0.5:  # smooth gradients dither best
        source = source.filter(ImageFilter.GaussianBlur(rng.uniform(1, 8)))
    dither = Image.Dither.FLOYDSTEINBERG if rng.random() < 0.7 else Image.Dither.NONE
    return source.quantize(int(rng.integers(2, 33)), dither=dither).convert("RGB")


def pixel_art(rng, width, height) -> Image.Image:
    """A small sprite sheet of few colours, enlarged by nearest neighbour (2x to 8x)."""
    scale = int(rng.integers(2, 9))
    w, h = -(-width // scale), -(-height // scale)
    palette = np.array([colour(rng) for _ in range(int(rng.integers(3, 12)))], dtype=np.uint8)
    cells = rng.integers(0, len(palette), (h // 4 + 1, w // 4 + 1))
    index = np.kron(cells, np.ones((4, 4), dtype=int))[:h, :w]
    index[rng.random((h, w)) < 0.2] = rng.integers(0, len(palette))
    small = Image.fromarray(palette[index])
    return small.resize((w * scale, h * scale), Image.Resampling.NEAREST).crop((0, 0, width, height))


def scanned_page(rng, width, height) -> Image.Image:
    """Printed text on paper: gray, a slight tilt and blur, the paper's grain."""
    paper = int(rng.integers(215, 250))
    image = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(image)
    text_block(draw, rng, (int(rng.integers(10, 60)), 10, width - 20, height - 10), int(rng.integers(10, 22)),
               int(rng.integers(0, 70)))
    image = image.rotate(rng.uniform(-2, 2), resample=Image.Resampling.BICUBIC, fillcolor=paper)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    grain = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(1, 6), (height, width))
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 1.0)], dtype=np.float32)
    return Image.fromarray(np.clip(grain[..., None] * tint, 0, 255).astype(np.uint8))


def colour_field(rng, width, height) -> Image.Image:
    """Large areas of one colour, any colour (pages, panels, banners, chat backgrounds), with a few small elements:
    the other kinds' backgrounds are mostly light or dark, and the default, trained on them, shifted the colour
    of a mid-tone page (measured: -1.9 dB at q10 on a flat brown screenshot)."""
    image = Image.new("RGB", (width, height), colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 3))):  # panels of another colour
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        draw.rectangle((x0, y0, x0 + int(rng.integers(width // 4, width)), y0 + int(rng.integers(height // 4, height))),
                       fill=colour(rng))
    for _ in range(int(rng.integers(1, 4))):  # sparse text, rules and buttons
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 30))
        ink = contrasting(rng, image.getpixel((x, y)))
        roll = rng.random()
        if roll < 0.5:
            draw.text((x, y), words(rng, int(rng.integers(1, 6))), fill=ink, font=font(rng, int(rng.integers(10, 28))))
        elif roll < 0.75:
            draw.line((x, y, min(width, x + int(rng.integers(40, width))), y), fill=ink, width=int(rng.integers(1, 3)))
        else:
            draw.rounded_rectangle((x, y, x + int(rng.integers(30, 120)), y + int(rng.integers(16, 36))),
                                   radius=int(rng.integers(0, 10)), fill=colour(rng))
    return image


KINDS = {
    "text": text_page,
    "terminal": terminal,
    "ui": ui_layout,
    "chart": chart,
    "lineart": line_art,
    "flat": flat_graphics,
    "dither": dithered,
    "pixelart": pixel_art,
    "scan": scanned_page,
    "field": colour_field,
}
MIX = ("text", "terminal", "ui", "chart", "lineart", "flat", "dither", "pixelart", "scan")  # the sets of seeds 1 and 2


def picture(seed: int, index: int, size: tuple[int, int] = (512, 512), kinds: tuple[str, ...] = MIX
            ) -> tuple[str, Image.Image]:
    """(kind, RGB image) number `index` of the set drawn from `seed`; `kinds` take turns."""
    kind = kinds[index % len(kinds)]
    rng = np.random.default_rng([seed, index])
    return kind, KINDS[kind](rng, *size).convert("RGB")


def write_set(out: Path, seed: int, count: int, size: tuple[int, int] = (512, 512), kinds: tuple[str, ...] = MIX
              ) -> list[Path]:
    """Write pictures 0..count-1 of `seed` as PNG files under `out` (the same bytes on every run)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        kind, image = picture(seed, index, size, kinds)
        paths.append(out / f"{seed}-{index:05d}-{kind}.png")  # sorted by index: the kinds take turns
        image.save(paths[-1])
    return paths
