"""The assembly of pages into one document: its steps, in order."""

from __future__ import annotations

import dataclasses

from docparse.assemble.headings import fix_heading_levels, title_of
from docparse.assemble.joins import merge_across_pages
from docparse.assemble.roles import mark_captions, mark_footnotes, mark_furniture
from docparse.config import AssembleOptions
from docparse.document import Document

# Every step below would rather miss than be wrong: a body paragraph hidden as furniture, or two
# unrelated tables glued together, costs a reader more than a running header left in the text.


def assemble(doc: Document, options: AssembleOptions) -> Document:
    """The document with its blocks labelled and, with `options.merge`, blocks cut by page breaks joined.

    A one-page document keeps its blocks as they are; only its title is set. Otherwise, in order:
    furniture, footnotes and captions are labelled (roles), paragraphs and tables cut by a page
    break are merged into the page where they start (each keeping the list of its parts), heading
    levels are made consistent, and the heading that opens page 1 becomes the title.
    """
    if len(doc.pages) < 2:
        return dataclasses.replace(doc, title=title_of(doc.pages, [list(p.blocks) for p in doc.pages])[0])
    pages = [list(p.blocks) for p in doc.pages]
    mark_furniture(doc.pages, pages)
    mark_footnotes(doc.pages, pages)
    mark_captions(pages)
    if options.merge:
        merge_across_pages(doc.pages, pages)
    title, where = title_of(doc.pages, pages)
    fix_heading_levels(pages, where)
    new_pages = tuple(dataclasses.replace(p, blocks=tuple(b)) for p, b in zip(doc.pages, pages, strict=True))
    return dataclasses.replace(doc, pages=new_pages, title=title)
