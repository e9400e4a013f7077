"""Charts drawn on the server as SVG: no script and no CDN on a page that sits beside
pupils' data. Colours are presentation attributes, so the desk's style policy holds."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

PALETTE = {"delivered": "#1e7b34", "rejected": "#b3261e", "quarantined": "#b06000",
           "tempfailed": "#6b7c93", "refused": "#8e24aa"}
OTHER = "#9aa5b1"
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _colour(name: str) -> str:
    return PALETTE.get(name, OTHER)


def stacked_days(days: dict[str, dict[str, int]], title: str) -> Markup:
    """One bar per day, stacked by verdict, with a legend."""
    width, height, left, bottom = 760, 220, 40, 30
    if not days:
        return Markup(f"<p>{escape(title)}: no mail in this period.</p>")
    top = max(sum(v.values()) for v in days.values()) or 1
    step = (width - left - 10) / len(days)
    bar = min(40.0, max(2.0, step * 0.7))
    parts = [f'<svg viewBox="0 0 {width} {height + 24}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<text x="{left}" y="12" {FONT}>{top}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
             'stroke="#d7dce2"/>']
    verdicts = sorted({v for d in days.values() for v in d})
    for i, (day, counts) in enumerate(days.items()):
        x, y = left + i * step, height - bottom
        for verdict in verdicts:
            n = counts.get(verdict, 0)
            h = (height - bottom - 20) * n / top
            if n:
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                             f'fill="{_colour(verdict)}"><title>{escape(day)}: {n} '
                             f'{escape(verdict)}</title></rect>')
        if len(days) <= 16 or i % max(1, len(days) // 8) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" {FONT}>'
                         f"{escape(day[5:])}</text>")
    for j, verdict in enumerate(verdicts):
        x = left + j * 120
        parts.append(f'<rect x="{x}" y="{height + 6}" width="10" height="10" '
                     f'fill="{_colour(verdict)}"/><text x="{x + 14}" y="{height + 15}" {FONT}>'
                     f"{escape(verdict)}</text>")
    return Markup("".join(parts) + "</svg>")


def bars(values: dict[str, float], title: str, unit: str = "", limit: int = 15) -> Markup:
    """Horizontal bars, largest first: hits per check, per term, false positives."""
    items = list(values.items())[:limit]
    if not items:
        return Markup(f"<p>{escape(title)}: none in this period.</p>")
    width, row, label = 760, 20, 230
    top = max(v for _, v in items) or 1
    parts = [f'<svg viewBox="0 0 {width} {row * len(items) + 6}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for i, (name, value) in enumerate(items):
        y = i * row + 3
        w = (width - label - 60) * value / top
        parts.append(f'<text x="0" y="{y + 13}" {FONT}>{escape(name[:38])}</text>'
                     f'<rect x="{label}" y="{y}" width="{max(w, 1):.1f}" height="{row - 6}" '
                     f'fill="#1f5fa8"><title>{escape(name)}: {value:g}{unit}</title></rect>'
                     f'<text x="{label + w + 4:.1f}" y="{y + 13}" {FONT}>{value:g}{unit}</text>')
    return Markup("".join(parts) + "</svg>")


def lines(series: dict[str, dict[str, float]], title: str, unit: str = "") -> Markup:
    """Lines over days (latency median and 95th percentile)."""
    days = sorted({d for s in series.values() for d in s})
    if not days:
        return Markup(f"<p>{escape(title)}: no mail in this period.</p>")
    width, height, left, bottom = 760, 200, 50, 30
    top = max((v for s in series.values() for v in s.values()), default=1) or 1
    step = (width - left - 10) / max(1, len(days) - 1)
    parts = [f'<svg viewBox="0 0 {width} {height + 24}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="12" {FONT}>{top:.0f}{escape(unit)}</text>']
    for k, (name, points) in enumerate(series.items()):
        colour = ("#1f5fa8", "#b06000", "#1e7b34")[k % 3]
        xy = [(left + days.index(d) * step,
               height - bottom - (height - bottom - 20) * v / top) for d, v in sorted(points.items())]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in xy)
        parts.append(f'<rect x="{left + k * 160}" y="{height + 6}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{left + k * 160 + 14}" y="{height + 15}" '
                     f"{FONT}>{escape(name)}</text>")
    for i, d in enumerate(days):
        if len(days) <= 16 or i % max(1, len(days) // 8) == 0:
            parts.append(f'<text x="{left + i * step:.1f}" y="{height - bottom + 14}" {FONT}>'
                         f"{escape(d[5:])}</text>")
    return Markup("".join(parts) + "</svg>")
