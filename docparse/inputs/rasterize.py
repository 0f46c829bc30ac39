"""Inputs to page images: PDF pages rendered by PyMuPDF at the model's exact size, image files resized once."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pymupdf
from PIL import Image, ImageOps, UnidentifiedImageError

from docparse.config import RasterOptions
from docparse.document import Unit
from docparse.errors import InputError, PasswordError, UsageError
from docparse.inputs.detect import detect_kind
from docparse.inputs.pageprep import is_blank, raster_orientation, text_turn, turn_image, upside_down
from docparse.inputs.tallpage import is_tall, tall_size
from docparse.inputs.textlayer import TextLayer, read_layer, text_page
from docparse.prompt import MAX_ASPECT_RATIO, NOMINAL_DPI, smart_resize

pymupdf.TOOLS.mupdf_display_errors(False)  # MuPDF's repair chatter would go to stderr unasked


@dataclass(frozen=True, slots=True)
class PageImage:
    """One page as the model will see it.

    `image` is RGB at a size smart_resize leaves unchanged; `width` x `height` is the page in
    `unit` (PDF points for PDFs after /Rotate, pixels of the original for image files), so a
    model pixel maps to the page by the factor width / image.width.
    """

    source: str
    number: int
    image: Image.Image
    width: float
    height: float
    unit: Unit
    rotation: int = 0
    # The clockwise turn (0, 90, 180, 270) docparse gave the displayed page to make its content
    # upright: `image` is the turned page, `width` x `height` stay the page as displayed.
    turn: int = 0
    has_text: bool = False
    blank: bool = False
    notes: tuple[str, ...] = ()
    # The PDF page's own text layer (docparse.inputs.textlayer), read with the render; None for an image.
    layer: TextLayer | None = None


def select_pages(
    ranges: tuple[tuple[int, int | None], ...] | None, count: int, source: str, skip_missing: bool = False
) -> list[int]:
    """The 1-based page numbers the ranges pick from a document of `count` pages, in order, once each.

    A page past the end is a UsageError, or with `skip_missing` left out (InputError when none is left)."""
    if ranges is None:
        return list(range(1, count + 1))
    chosen: list[int] = []
    for start, end in ranges:
        last = count if end is None else end
        if skip_missing:
            last = min(last, count)
        elif start > count or last > count:
            raise UsageError(f"--pages asks for page {max(start, last)} but {source} has {_pages(count)}")
        chosen.extend(n for n in range(start, last + 1) if n not in chosen)
    if not chosen:
        raise InputError(f"{source} has {_pages(count)}: none of the pages asked for with --pages")
    return chosen


def _pages(count: int) -> str:
    return f"{count} page" + ("" if count == 1 else "s")


def missing_pages_note(ranges: tuple[tuple[int, int | None], ...] | None, count: int) -> str | None:
    """The warning for pages --pages asks for that a file of `count` pages lacks, or None."""
    asked = [(s, e) for s, e in ranges or () if (e if e is not None else s) > count]
    if not asked:
        return None
    spans = ",".join(str(s) if s == e else f"{s}-{'' if e is None else e}" for s, e in asked)
    return f"it has {_pages(count)}: --pages {spans} skipped where past its end"


class InputDocument:
    """An opened input: `page_numbers` are the selected pages, `pages()` renders them one at a time."""

    def __init__(self, path: Path, options: RasterOptions) -> None:
        self.path = path
        self.options = options
        self.kind = detect_kind(path)
        self._pdf: pymupdf.Document | None = None
        self._image: Image.Image | None = None
        if self.kind == "pdf":
            self._pdf = _open_pdf(path, options.password)
            count = self._pdf.page_count
        else:
            self._image = _open_image(path)
            count = getattr(self._image, "n_frames", 1)
        if count < 1:
            raise InputError(f"{path} has no pages")
        self.page_count = count
        self.page_numbers = select_pages(options.pages, count, str(path), options.skip_missing_pages)
        note = missing_pages_note(options.pages, count) if options.skip_missing_pages else None
        self.notes: tuple[str, ...] = (note,) if note else ()

    def pages(self) -> Iterator[PageImage]:
        """Render the selected pages lazily: only one page's pixels are held at a time."""
        for number in self.page_numbers:
            yield self.render(number)

    def render(self, number: int) -> PageImage:
        if self._pdf is not None:
            return _render_pdf_page(self._pdf, number, self.options, str(self.path))
        assert self._image is not None
        return _render_image_frame(self._image, number, self.options, str(self.path))

    def text_layer(self, number: int) -> TextLayer | None:
        """The page's own text layer (docparse.inputs.textlayer), read once; None for an image or an unreadable page."""
        if self._pdf is None:
            return None
        try:
            return read_layer(self._pdf.load_page(number - 1))
        except Exception:  # a page MuPDF cannot read text from has no witness; rendering reports the damage
            return None

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
        if self._image is not None:
            self._image.close()

    def __enter__(self) -> InputDocument:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_input(path: Path, options: RasterOptions) -> InputDocument:
    """Open a PDF or image file; raises UsageError / InputError / PasswordError with one-line messages."""
    return InputDocument(path, options)


def _open_pdf(path: Path, password: str | None) -> pymupdf.Document:
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # PyMuPDF raises FileDataError, RuntimeError and friends
        raise InputError(f"{path} is not a readable PDF ({_short(exc)})") from None
    if doc.needs_pass:
        if password is None:
            doc.close()
            raise PasswordError(f"{path} is encrypted: give its password with --password")
        if not doc.authenticate(password):
            doc.close()
            raise PasswordError(f"{path}: wrong password")
    return doc


def _open_image(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path} is neither a PDF nor a supported image ({_short(exc)})") from None
    except OSError as exc:
        raise InputError(f"{path} is a broken image ({_short(exc)})") from None
    return img


def target_size(width: float, height: float, unit: Unit, options: RasterOptions) -> tuple[int, int]:
    """(width, height) in pixels the model will see for a page of this size.

    A PDF page is first measured at NOMINAL_DPI, an image at its own pixels; smart_resize then fits
    that to the pixel bounds. Raises InputError for a page smart_resize cannot take.
    """
    scale = NOMINAL_DPI / 72 if unit == "pt" else 1.0
    try:
        h, w = smart_resize(
            max(1, round(height * scale)),
            max(1, round(width * scale)),
            options.min_pixels,
            options.max_pixels,
        )
    except ValueError as exc:
        if width > 0 and height * scale > MAX_ASPECT_RATIO * width * scale:  # too tall: read in bands
            return tall_size(width * scale, height * scale, options.min_pixels, options.max_pixels)
        raise InputError(f"page of {width:g}x{height:g} {unit} cannot be fed to the model: {exc}") from None
    return w, h


def _render_pdf_page(doc: pymupdf.Document, number: int, options: RasterOptions, source: str) -> PageImage:
    try:
        page = doc.load_page(number - 1)
        rect = page.rect  # after /Rotate: the page as a reader sees it
        w_pt, h_pt = rect.width, rect.height
        tw, th = target_size(w_pt, h_pt, "pt", options)
        pix = page.get_pixmap(matrix=pymupdf.Matrix(tw / w_pt, th / h_pt), alpha=False, colorspace=pymupdf.csRGB)
        img = Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
        rotation = page.rotation
        textpage = text_page(page)  # read once: orientation, has_text and the layer docparse.layer.agreement checks
        directions = _text_directions(page, textpage)
        has_text = bool(textpage.extractText().strip())
        layer = read_layer(page, textpage)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{source}: page {number} cannot be rendered ({_short(exc)})") from None
    if img.size != (tw, th):
        # MuPDF rounds the pixmap outward; a pixel of slack is padded or cropped, never resampled.
        canvas = Image.new("RGB", (tw, th), "white")
        canvas.paste(img, (0, 0))
        img = canvas
    image = PageImage(source, number, img, w_pt, h_pt, "pt", rotation, has_text=has_text, layer=layer)
    return _prepared(image, directions)


# Ideographs, kana and hangul: written top to bottom as well as left to right, so a CJK line
# running downwards may be vertical writing on an upright page; such lines do not vote.
_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _text_directions(page: pymupdf.Page, textpage: pymupdf.TextPage) -> list[tuple[float, float, int]]:
    """(dx, dy, characters) of each text line, as the line runs on the displayed page (after /Rotate).

    Lines mostly of CJK characters are left out (see _CJK); a page with only those has no say.
    """
    turn = page.rotation_matrix
    out: list[tuple[float, float, int]] = []
    for block in textpage.extractDICT().get("blocks", []):
        for line in block.get("lines", []):
            text = "".join(span.get("text", "") for span in line.get("spans", []))
            chars = len("".join(text.split()))
            if chars and len(_CJK.findall(text)) * 2 < chars:
                dx, dy = line["dir"]
                out.append((dx * turn.a + dy * turn.c, dx * turn.b + dy * turn.d, chars))
    return out


def _prepared(image: PageImage, directions: list[tuple[float, float, int]]) -> PageImage:
    """The page with blankness and orientation decided, and its image turned upright when needed.

    With a text layer, the direction most of its characters run in says how to turn the page
    (0, 90, 180 or 270). Without one: a raster with next to no ink is blank; a sideways raster is
    turned back by undoing the page's /Rotate when it has one, else by the lines' straight edge
    when that is clear, else by its Latin letters when they read upside down one way round, else
    left as is with a note; a raster whose lines (then) run horizontally is turned by 180 more when
    its Latin text is clearly upside down.
    """
    has_text = bool(directions) or image.has_text
    notes: list[str] = []
    if is_tall(image.image.size):  # read in bands from the top down, as displayed
        return dataclasses.replace(image, has_text=has_text, blank=not has_text and is_blank(image.image, False))
    if has_text:
        turn = text_turn(directions) or 0
    elif is_blank(image.image, has_text=False):
        return dataclasses.replace(image, blank=True)
    else:
        found = raster_orientation(image.image)
        turn = 0
        if found.sideways:
            if image.rotation in (90, 270):
                turn = 360 - image.rotation
            elif found.turn is not None:
                turn = found.turn
            else:
                # The lines' ends do not tell; Latin letters may: one way round they read upside down.
                flipped = [t for t in (90, 270) if upside_down(turn_image(image.image, t))]
                if len(flipped) == 1:
                    turn = (flipped[0] + 180) % 360
                else:
                    notes.append("the page looks sideways but which way up could not be told; it was left as displayed")
        # Once its lines run horizontally, a Latin page may still be upside down.
        if (turn or not found.sideways) and upside_down(turn_image(image.image, turn)):
            turn = (turn + 180) % 360
    if turn:
        notes.append(f"the page content was turned {turn} degrees clockwise to be upright before the model saw it")
    return dataclasses.replace(
        image, image=turn_image(image.image, turn), turn=turn, has_text=has_text, notes=tuple(notes)
    )


def _render_image_frame(img: Image.Image, number: int, options: RasterOptions, source: str) -> PageImage:
    try:
        img.seek(number - 1)
        frame = ImageOps.exif_transpose(img.copy())
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"{source}: frame {number} cannot be read ({_short(exc)})") from None
    rgb = to_rgb(frame)
    w, h = rgb.size
    tw, th = target_size(w, h, "px", options)
    if (tw, th) != (w, h):
        # The same filter the Qwen2-VL image processor uses, so the model sees what it would have.
        rgb = rgb.resize((tw, th), Image.Resampling.BICUBIC)
    return _prepared(PageImage(source, number, rgb, float(w), float(h), "px", 0), [])


def to_rgb(img: Image.Image) -> Image.Image:
    """The image in RGB: transparency flattened onto white, 16-bit and float greyscale stretched to 8 bits."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, "white")
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit and float greyscale: stretch the used range to 8 bits rather than clip it.
        return ImageOps.autocontrast(img.convert("F").point(lambda v: v / 257).convert("L")).convert("RGB")
    return img.convert("RGB")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
