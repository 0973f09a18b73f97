"""Render a report context with Jinja2 (StrictUndefined: a missing value fails loudly, never prints blank).

The page is self-contained: inline CSS, inline SVG plots, sample grids as data: URIs, and a Content-Security-Policy
that forbids every network fetch and every script, so a reader (or the browser test) can see it makes none.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
# No scripts, no external anything: images only from data: URIs, styles only inline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render(context: dict, template: str = "index.html") -> str:
    """HTML text of `template` rendered with `context` (+ the CSP); raises jinja2.UndefinedError on a gap."""
    return environment().get_template(template).render(csp=CSP, **context)
