"""Page images of an HTML report at given viewport widths, without a browser.

No headless browser can be installed on the build machine (Playwright's and Pyppeteer's
browser downloads are blocked), so the report is laid out by WeasyPrint (HTML + CSS, media
queries included, no JavaScript: the report uses none) on pages as wide as the viewport,
and the pages are rasterised with pypdfium2. Both are benchmark-environment tools, never
mimlkit dependencies::

    python -m venv runs/shotenv && runs/shotenv/bin/pip install weasyprint pypdfium2
    runs/shotenv/bin/python benchmarks/report_screenshots.py runs/demo/report/report.html \
        --widths 1400 800 --out runs/shots

Writes ``<out>/report_<width>px_p<k>.png`` (one per page of ``--page-height`` px) and
prints, per width, the pages written and any element wider than the page (clipped content
is what a reader would have to scroll to).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def render(html: Path, width: int, page_height: int, out: Path, max_pages: int) -> list[Path]:
    import pypdfium2 as pdfium
    from weasyprint import CSS, HTML

    css = CSS(string=f"@page {{ size: {width}px {page_height}px; margin: 0 }}")
    doc = HTML(filename=str(html)).render(stylesheets=[css])
    overflow = []
    for page in doc.pages:
        stack = [page._page_box]
        while stack:
            box = stack.pop()
            w = getattr(box, "width", None)
            if isinstance(w, (int, float)) and w > width + 1:
                tag = getattr(getattr(box, "element", None), "tag", "?")
                overflow.append((str(tag), round(w)))
            stack.extend(getattr(box, "children", []) or [])
    pdf = doc.write_pdf()
    out.mkdir(parents=True, exist_ok=True)
    files = []
    pdf_doc = pdfium.PdfDocument(pdf)
    for k in range(min(len(pdf_doc), max_pages)):
        img = pdf_doc[k].render(scale=96 / 72).to_pil()
        f = out / f"report_{width}px_p{k + 1}.png"
        img.save(f)
        files.append(f)
    print(f"{width}px: {len(pdf_doc)} pages, {len(files)} written; wider than the page: "
          + (", ".join(f"<{t}> {w}px" for t, w in sorted(set(overflow))[:10]) or "none"))
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--widths", type=int, nargs="+", default=[1400, 800])
    ap.add_argument("--page-height", type=int, default=1800)
    ap.add_argument("--max-pages", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("runs/shots"))
    args = ap.parse_args()
    for w in args.widths:
        render(args.html, w, args.page_height, args.out, args.max_pages)


if __name__ == "__main__":
    main()
