"""Writing a document with its assets: figure crops (files or data URIs) and notation checks, then the output.

`write_with_assets(doc, options, output)` is the one call a writer of outputs makes per document:
it checks SMILES and ABC where the optional checkers are installed, crops every picture block
(figure, chart, chemical structure, music sheet) from the source file at print resolution, saves
the crops beside the output as `<stem>_files/pNNNN-<kind><k>.png` (or embeds them), points the
blocks at them, and writes the output. Every file is written atomically; the crops go first, so an
output never names a file that is not there.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never

from PIL import Image, ImageOps

from docparse.config import WriteOptions
from docparse.document import (
    Block,
    Chemistry,
    Document,
    Music,
    NotationBase,
    Page,
    Pictured,
    PicturedBase,
    block_type_name,
)
from docparse.errors import InputError, UsageError
from docparse.files import write_atomic
from docparse.inputs.detect import detect_kind
from docparse.inputs.source import find_source
from docparse.writers import write
from docparse.writers.common import DATA_URI_PREFIX
from docparse.writers.notation import check_abc, check_smiles

# Crops are rendered from the PDF at this resolution (the model saw the page at 200 dpi at most,
# often less), and never larger than MAX_CROP_SIDE pixels on their long side.
CROP_DPI = 300
MAX_CROP_SIDE = 4000
# The model's answer is untrusted: a page that claims more pictures than this gets crops for the first ones only.
MAX_CROPS_PER_PAGE = 64


@dataclass(frozen=True, slots=True)
class Written:
    """What write_with_assets did: the output text (for stdout when there is no output file), the
    crop files it wrote, and warnings for the user (no crops could be made, a notation is invalid)."""

    text: str
    files: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()


def assets_folder(output: Path) -> Path:
    """Where the crops of `output` go: `<stem>_files` beside it."""
    return output.with_name(f"{output.stem}_files")


def crop_name(page: Page, block: Block, index: int) -> str:
    """`p0001-figure1.png`: the page, the block kind and its count among that page's blocks of that kind."""
    return f"p{page.number:04d}-{block_type_name(block)}{index}.png"


def check_notation(doc: Document) -> Document:
    """The document with each chemistry and music block's `valid` set by RDKit / music21 where installed."""

    def checked(block: Block) -> Block:
        return dataclasses.replace(block, valid=_readable(block)) if isinstance(block, NotationBase) else block

    return _map_blocks(doc, lambda page, block, index: checked(block))


def _map_blocks(doc: Document, fn: Callable[[Page, Block, int], Block]) -> Document:
    """The document with each page's blocks passed through `fn(page, block, position)`."""
    pages = []
    for page in doc.pages:
        blocks = tuple(fn(page, block, i) for i, block in enumerate(page.blocks))
        pages.append(dataclasses.replace(page, blocks=blocks))
    return dataclasses.replace(doc, pages=tuple(pages))


def _pictured(page: Page) -> Iterator[tuple[int, Pictured, int]]:
    """(position on the page, block, its count among the page's pictures of its kind, from 1) for boxed pictures."""
    counts: dict[type, int] = {}
    for position, block in enumerate(page.blocks):
        if isinstance(block, PicturedBase) and block.box is not None:
            counts[type(block)] = counts.get(type(block), 0) + 1
            yield position, block, counts[type(block)]


class _Cropper:
    """Crops boxes of pages out of a PDF (re-rendered at CROP_DPI) or an image file (its own pixels)."""

    def __init__(self, path: Path, password: str | None) -> None:
        self.kind = detect_kind(path)
        self._pdf: Any = None
        self._image: Image.Image | None = None
        if self.kind == "pdf":
            import pymupdf

            try:
                self._pdf = pymupdf.open(path, filetype="pdf")
            except Exception as exc:
                raise InputError(f"{path} cannot be opened for crops ({exc})") from None
            if self._pdf.needs_pass and not (password and self._pdf.authenticate(password)):
                self._pdf.close()
                raise InputError(f"{path} is encrypted: its crops need --password")
        else:
            try:
                self._image = Image.open(path)
                self._image.load()
            except (OSError, Image.DecompressionBombError) as exc:
                raise InputError(f"{path} cannot be opened for crops ({exc})") from None

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
        if self._image is not None:
            self._image.close()

    def crop(self, page: Page, block: Pictured) -> bytes | None:
        """The block's box cut from its page as PNG bytes, turned upright as the model saw it; None
        when the box lies off the page or the page is not in the file."""
        box = block.box
        if box is None or not page.width or not page.height:
            return None
        image = self._crop_pdf(page, box) if self._pdf is not None else self._crop_image(page, box)
        if image is None:
            return None
        if page.rotation:
            image = image.rotate(-page.rotation, expand=True)  # PIL turns counter-clockwise
        out = io.BytesIO()
        image.save(out, format="PNG")  # optimize=True: 9% smaller, 70% slower (measured on the omni page)
        return out.getvalue()

    def _crop_pdf(self, page: Page, box: Any) -> Image.Image | None:
        import pymupdf

        if not 1 <= page.number <= self._pdf.page_count:
            return None
        pdf_page = self._pdf.load_page(page.number - 1)
        rect = pdf_page.rect  # the page as displayed (after /Rotate); clip is in the same space
        sx, sy = rect.width / float(page.width or 1), rect.height / float(page.height or 1)
        clip = pymupdf.Rect(box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy) & rect
        if clip.is_empty or clip.width < 1 or clip.height < 1:
            return None
        zoom = min(CROP_DPI / 72, MAX_CROP_SIDE / max(clip.width, clip.height))
        pix = pdf_page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), clip=clip, alpha=False, colorspace=pymupdf.csRGB)
        return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)

    def _crop_image(self, page: Page, box: Any) -> Image.Image | None:
        from docparse.inputs.rasterize import to_rgb

        assert self._image is not None
        try:
            self._image.seek(page.number - 1)
        except (EOFError, ValueError):
            return None
        frame = to_rgb(ImageOps.exif_transpose(self._image.copy()))
        sx, sy = frame.width / float(page.width or 1), frame.height / float(page.height or 1)
        left, top = max(0, round(box.x0 * sx)), max(0, round(box.y0 * sy))
        right, bottom = min(frame.width, round(box.x1 * sx)), min(frame.height, round(box.y1 * sy))
        if right - left < 1 or bottom - top < 1:
            return None
        crop = frame.crop((left, top, right, bottom))
        if max(crop.size) > MAX_CROP_SIDE:
            crop.thumbnail((MAX_CROP_SIDE, MAX_CROP_SIDE))
        return crop


def add_crops(
    doc: Document, options: WriteOptions, output: Path | None, password: str | None = None
) -> tuple[Document, tuple[Path, ...], tuple[str, ...]]:
    """The document with each boxed picture's `image` set, the crop files written, and warnings.

    `options.images`: "none" clears every `image`; "embed" sets PNG data URIs; "files" writes the
    crops under assets_folder(output) and sets paths relative to the output (UsageError without an
    output file). A block whose crop could not be made has none. When the source file is gone or
    changed, no crop can be made at all: the blocks keep the `image` they had and a warning says why.
    """
    mode = options.images
    if mode == "none":
        return _map_blocks(doc, lambda page, b, i: _with_image(b, None)), (), ()
    if mode == "files" and output is None:
        raise UsageError("--images files needs an output file (-o): on stdout use --images embed or none")
    if not any(True for page in doc.pages for _ in _pictured(page)):
        return doc, (), ()
    source, reason = find_source(doc)
    if source is None:
        return doc, (), (f"pictures were not cropped: {reason}",)
    try:
        cropper = _Cropper(source, password)
    except (InputError, UsageError) as exc:
        return doc, (), (f"pictures were not cropped: {exc}",)
    refs: dict[tuple[int, int], str] = {}
    written: list[Path] = []
    notes: list[str] = []
    try:
        for page in doc.pages:
            for count, (position, block, index) in enumerate(_pictured(page), 1):
                if count > MAX_CROPS_PER_PAGE:
                    notes.append(f"page {page.number}: only its first {MAX_CROPS_PER_PAGE} pictures were cropped")
                    break
                try:
                    png = cropper.crop(page, block)
                except Exception as exc:  # a broken page in a PDF MuPDF otherwise reads: that crop only
                    notes.append(f"page {page.number}: a {block_type_name(block)} could not be cropped ({exc})")
                    continue
                if png is None:
                    continue
                if mode == "embed":
                    refs[(page.number, position)] = DATA_URI_PREFIX + base64.b64encode(png).decode("ascii")
                    continue
                assert output is not None
                folder = assets_folder(output)
                path = folder / crop_name(page, block, index)
                try:
                    write_atomic(path, png)
                except OSError as exc:
                    raise UsageError(f"{folder}: cannot write crops ({exc.strerror or exc})") from None
                written.append(path)
                refs[(page.number, position)] = f"{folder.name}/{path.name}"
    finally:
        cropper.close()
    if mode == "files" and output is not None:
        _remove_stale(assets_folder(output), written)
    updated = _map_blocks(doc, lambda page, b, i: _with_image(b, refs.get((page.number, i))))
    return updated, tuple(written), tuple(notes)


_CROP_FILE = re.compile(r"p\d{4}-[a-z]+\d+\.png")


def _remove_stale(folder: Path, written: Sequence[Path]) -> None:
    """Crops an earlier run left in `folder` that this run did not write again (only names of our pattern)."""
    keep = {p.name for p in written}
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _CROP_FILE.fullmatch(path.name) and path.name not in keep and path.is_file():
            path.unlink(missing_ok=True)


def _with_image(block: Block, ref: str | None) -> Block:
    if isinstance(block, PicturedBase) and block.image != ref:
        return dataclasses.replace(block, image=ref)
    return block


def notation_warnings(doc: Document) -> tuple[str, ...]:
    """One warning per chemistry or music block its checker could not read."""
    out: list[str] = []
    for page in doc.pages:
        for block in page.blocks:
            if isinstance(block, NotationBase) and block.valid is False:
                out.append(f"page {page.number}: {_unreadable(block)}")
    return tuple(out)


def _readable(block: Chemistry | Music) -> bool | None:
    """Whether the block's checker reads its notation (None: the checker is not installed). A match over
    every NotationBase block, so mypy names this place when a notation is added."""
    match block:
        case Chemistry(smiles=smiles):
            return check_smiles(smiles)
        case Music(abc=abc):
            return check_abc(abc)
        case _:
            assert_never(block)


def _unreadable(block: Chemistry | Music) -> str:
    match block:
        case Chemistry(smiles=smiles):
            return f"RDKit cannot read the SMILES {_short(smiles)}"
        case Music(abc=abc):
            return f"music21 cannot read the ABC notation {_short(abc)}"
        case _:
            assert_never(block)


def _short(text: str) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= 40 else one[:39] + "…")


def write_with_assets(
    doc: Document, options: WriteOptions, output: Path | None, *, password: str | None = None
) -> Written:
    """Check notation, make the crops `options.images` asks for, write the output; `output` None: stdout's
    text is returned (not printed) and `--images files` is a UsageError. `password` opens an encrypted
    source PDF for its crops."""
    doc = check_notation(doc)
    doc, files, warnings = add_crops(doc, options, output, password)
    text = write(doc, options)
    if output is not None:
        try:
            write_atomic(output, text)
        except OSError as exc:
            raise UsageError(f"-o {output}: cannot write ({exc.strerror or exc})") from None
    return Written(text=text, files=files, warnings=(*warnings, *notation_warnings(doc)))
