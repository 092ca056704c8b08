"""PNG preview of a dashboard's layout: the panel grid with titles, drawn from the generated JSON,
so a reader sees each dashboard without running Grafana."""
from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COL = 44          # pixels per grid column (24 columns)
UNIT = 26         # pixels per grid height unit
PAD = 16
HEADER = 64
COLORS = {
    "row": "#2d3748", "timeseries": "#dbeafe", "stat": "#dcfce7", "table": "#fef3c7", "logs": "#f3e8ff",
}
DATASOURCE_MARK = {"unimon-prometheus": "Prometheus", "unimon-logs": "container logs", "unimon-vm-logs": "VM console logs"}


def _font(size: int):
    return ImageFont.load_default(size=size)


def render(dashboard: dict, path: Path) -> None:
    panels = dashboard["panels"]
    bottom = max(pn["gridPos"]["y"] + pn["gridPos"]["h"] for pn in panels)
    width = PAD * 2 + COL * 24
    height = HEADER + PAD + bottom * UNIT + PAD
    img = Image.new("RGB", (width, height), "#f8fafc")
    draw = ImageDraw.Draw(img)
    title_font, text_font, small_font = _font(22), _font(14), _font(11)
    draw.text((PAD, 14), dashboard["title"], fill="#111827", font=title_font)
    names = ", ".join("$" + v["name"] for v in dashboard["templating"]["list"])
    draw.text((PAD, 42), f"variables: {names}", fill="#4b5563", font=small_font)
    for pn in panels:
        g = pn["gridPos"]
        x0 = PAD + g["x"] * COL
        y0 = HEADER + g["y"] * UNIT
        x1 = x0 + g["w"] * COL - 4
        y1 = y0 + g["h"] * UNIT - 4
        if pn["type"] == "row":
            draw.rectangle((x0, y0, x1, y1), fill=COLORS["row"])
            draw.text((x0 + 8, y0 + 4), pn["title"], fill="#ffffff", font=text_font)
            continue
        draw.rectangle((x0, y0, x1, y1), fill=COLORS.get(pn["type"], "#e5e7eb"), outline="#94a3b8")
        chars = max(10, (x1 - x0 - 16) // 8)
        lines = textwrap.wrap(pn["title"], chars)[:3]
        for i, line in enumerate(lines):
            draw.text((x0 + 8, y0 + 6 + i * 18), line, fill="#111827", font=text_font)
        top = y0 + 8 + len(lines) * 18
        for i, tgt in enumerate(pn["targets"][:4]):
            label = tgt.get("legendFormat") or tgt.get("query", "")
            label = label.replace("{{", "").replace("}}", "") if label != "__auto" else tgt.get("expr", "")
            if top + (i + 1) * 15 > y1 - 22:
                break
            draw.text((x0 + 14, top + i * 15), "- " + label[:chars + 10], fill="#334155", font=small_font)
        unit = pn["fieldConfig"]["defaults"].get("unit", "")
        source = DATASOURCE_MARK.get(pn["datasource"]["uid"], pn["datasource"]["type"])
        meta = f"{pn['type']} · {source} · {len(pn['targets'])} quer{'y' if len(pn['targets']) == 1 else 'ies'}"
        if unit and pn["type"] != "logs":
            meta += f" · {unit}"
        draw.text((x0 + 8, y1 - 18), meta, fill="#475569", font=small_font)
    img.save(path, format="PNG", optimize=True)
