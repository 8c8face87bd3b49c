"""An all-sky map of where the observations point, on the equal-area Mollweide projection.

Astronomers' convention: right ascension grows to the left (east is left when looking up),
0h in the middle, a grid every 2h of RA and 30° of Dec. Few distinct positions are drawn as one
dot per target, sized by how many observations it has and coloured by its mission; hovering
says target, position and count. Many are drawn as density cells coloured by count (log scale).
Drawn with Bokeh (:func:`sky_map`).

:func:`to_sky` turns a point of the map back into RA/Dec, for clicks.

>>> x, y = mollweide([0.0, 90.0], [0.0, 0.0])
>>> abs(round(float(x[0]), 6)), bool(x[1] < 0)
(0.0, True)
>>> ra, dec = to_sky(*mollweide([123.0], [-45.0]))
>>> round(float(ra[0]), 6), round(float(dec[0]), 6)
(123.0, -45.0)
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cosmoscope.ui.plots import ChartData

SQRT2 = math.sqrt(2.0)
#: Half the width and height of the projected sky.
X_MAX, Y_MAX = 2 * SQRT2, SQRT2


def _theta(lat: np.ndarray) -> np.ndarray:
    """Mollweide's auxiliary angle: 2θ + sin 2θ = π sin φ, by Newton's method."""
    theta = lat.copy()
    target = np.pi * np.sin(lat)
    for _ in range(50):
        f = 2 * theta + np.sin(2 * theta) - target
        d = 2 + 2 * np.cos(2 * theta)
        step = np.where(d > 1e-12, f / np.where(d > 1e-12, d, 1), 0)
        theta = theta - step
        if np.all(np.abs(step) < 1e-12):
            break
    return np.where(np.abs(lat) >= np.pi / 2 - 1e-12, np.sign(lat) * np.pi / 2, theta)


def mollweide(ra, dec, centre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Map RA/Dec (degrees) to Mollweide x/y, RA growing to the left, ``centre`` in the middle."""
    ra = np.asarray(ra, dtype=float)
    lat = np.radians(np.asarray(dec, dtype=float))
    lon = -np.radians(((ra - centre + 180.0) % 360.0) - 180.0)
    theta = _theta(lat)
    return 2 * SQRT2 / np.pi * lon * np.cos(theta), SQRT2 * np.sin(theta)


def to_sky(x, y, centre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The RA/Dec (degrees) of map points (NaN outside the sky's ellipse)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    inside = (x / X_MAX) ** 2 + (y / Y_MAX) ** 2 <= 1 + 1e-9
    theta = np.arcsin(np.clip(y / SQRT2, -1, 1))
    lat = np.arcsin(np.clip((2 * theta + np.sin(2 * theta)) / np.pi, -1, 1))
    cos = np.cos(theta)
    lon = np.where(cos > 1e-12, np.pi * x / (2 * SQRT2 * np.where(cos > 1e-12, cos, 1)), 0.0)
    ra = (centre - np.degrees(lon)) % 360.0
    return np.where(inside, ra, np.nan), np.where(inside, np.degrees(lat), np.nan)


def _graticule():
    """Lines of the RA/Dec grid, as projected paths, and their labels."""
    lines = []
    decs = np.linspace(-90, 90, 181)
    for ra in range(0, 360, 30):
        x, y = mollweide(np.full_like(decs, ra if ra != 180 else 179.999), decs)
        lines.append(np.column_stack([x, y]))
    ras = np.linspace(-179.999, 179.999, 361)
    for dec in (-60, -30, 0, 30, 60):
        x, y = mollweide(ras, np.full_like(ras, dec))
        lines.append(np.column_stack([x, y]))
    labels = []
    for ra in range(30, 360, 30):
        x, y = mollweide([ra], [0])
        labels.append((float(x[0]), float(y[0]) + 0.04, f"{ra // 15}h"))
    for dec in (-60, -30, 30, 60):
        x, y = mollweide([180.0001], [dec])
        labels.append((float(x[0]) - 0.06, float(y[0]), f"{dec:+d}°"))
    return lines, labels


def _outline():
    t = np.linspace(0, 2 * np.pi, 361)
    return np.column_stack([X_MAX * np.cos(t), Y_MAX * np.sin(t)])


#: Pixels across the density map's raster (its height is half that).
RASTER_WIDTH = 720


def density_raster(sky, width: int = RASTER_WIDTH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The density cells of ``sky`` (RA/Dec boxes of :data:`~cosmoscope.ui.plots.SKY_BIN_DEG`,
    by their centres) painted on a raster of the projection:
    ``(xs, ys, counts)``, NaN off the sky and where nothing was observed. One image draws at once
    however many cells there are, where a polygon per cell would not."""
    from cosmoscope.ui.plots import SKY_BIN_DEG

    xs, ys, pixels, keys = _raster_cells(width, SKY_BIN_DEG)
    known = _cell_keys(sky["ra"].to_numpy(), sky["dec"].to_numpy(), SKY_BIN_DEG)
    order = np.argsort(known)
    known, counts = known[order], sky["n"].to_numpy().astype(float)[order]
    at = np.clip(np.searchsorted(known, keys), 0, max(len(known) - 1, 0))
    found = known[at] == keys if len(known) else np.zeros(len(keys), bool)
    # 32-bit: a colour on a log scale needs no more (hovering reads the exact counts from the
    # cells' centres), and the page gets 1 MB, not 2.
    image = np.full(len(xs) * len(ys), np.nan, dtype=np.float32)
    image[pixels[found]] = counts[at[found]]
    return xs, ys, image.reshape(len(ys), len(xs))


@functools.cache
def _raster_cells(width: int, cell_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, pixels, keys)``: the raster's axes, its pixels on the sky (flat indices) and
    the density cell of each; the same at every drawing, so worked out once."""
    xs = np.linspace(-X_MAX, X_MAX, width)
    ys = np.linspace(-Y_MAX, Y_MAX, width // 2)
    gx, gy = np.meshgrid(xs, ys)
    ra, dec = to_sky(gx.ravel(), gy.ravel())
    on_sky = ~np.isnan(ra)
    cells = (xs, ys, np.flatnonzero(on_sky), _cell_keys(ra[on_sky], dec[on_sky], cell_deg))
    for a in cells:
        a.flags.writeable = False  # shared by every drawing
    return cells


def _cell_keys(ra: np.ndarray, dec: np.ndarray, cell_deg: float) -> np.ndarray:
    """A number for the RA/Dec cell of ``cell_deg`` degrees holding each position (Dec 90 in the top row)."""
    return (np.floor((ra % 360) / cell_deg).astype(np.int64) * 1000
            + np.floor((np.clip(dec, -90, 90 - 1e-9) + 90) / cell_deg).astype(np.int64))


#: The name of the map's dots (targets' positions, or the density cells' centres): what
#: hovering and clicking act on (the renderer of that name among ``figure.renderers``).
DOTS = "sky-dots"


def sky_map(data: ChartData, **opts):
    """The all-sky map of :class:`~cosmoscope.ui.plots.ChartData` (a Bokeh figure)."""
    from bokeh.models import ColorBar, HoverTool, LogColorMapper, LogTicker, TapTool, WheelZoomTool

    from cosmoscope.ui.plots import SKY_BIN_DEG, _empty, figure

    if data.n_positions == 0:
        return _empty("Sky positions", "No RA/Dec known for these observations", **opts)
    sky = data.sky
    if data.sky_density:
        title = f"Sky density: {data.n_positions:,} observations, {sky.height:,} cells of {SKY_BIN_DEG:g}°"
    else:
        title = (f"Sky positions: {data.n_positions:,} observations of {sky.height:,} "
                 f"position{'s' if sky.height != 1 else ''}")
    if opts.get("responsive"):  # half as high as wide, the sky's shape
        size = {"sizing_mode": "stretch_width", "aspect_ratio": 2.0, "min_height": opts.get("min_height")}
    else:  # with room for the title and the colour bar
        width = opts.get("width", 800)
        size = {"width": width, "height": round((width - (80 if data.sky_density else 0)) / 2) + 40}
    zoom = WheelZoomTool()
    fig = figure(title, tools=["pan", zoom, "box_zoom", "save", "reset"], x_range=VIEW["x"], y_range=VIEW["y"],
                 **size)
    fig.toolbar_location = "above"
    fig.toolbar.active_scroll = zoom
    fig.axis.visible = fig.grid.visible = False
    x, y = mollweide(sky["ra"].to_numpy(), sky["dec"].to_numpy())
    if data.sky_density:
        xs, ys, image = density_raster(sky)
        counts = sky["n"].to_numpy()
        mapper = LogColorMapper(palette="Viridis256", low=max(float(counts.min()), 1), high=max(float(counts.max()), 2),
                                nan_color=(0, 0, 0, 0))
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        fig.image(image=[image], x=xs[0] - dx / 2, y=ys[0] - dy / 2, dw=xs[-1] - xs[0] + dx, dh=ys[-1] - ys[0] + dy,
                  color_mapper=mapper)
        fig.add_layout(ColorBar(color_mapper=mapper, ticker=LogTicker(), title="observations"), "right")
    _draw_frame(fig)
    if data.sky_density:
        # Invisible dots at the cells' centres carry the hover text and the clicks.
        # Numbers, not text: the page gets them as binary arrays, and formats them when hovered.
        source = {"x": x, "y": y, "observations": sky["n"].to_numpy(), "ra": sky["ra"].to_numpy(),
                  "dec": sky["dec"].to_numpy()}
        dots = fig.scatter("x", "y", source=source, name=DOTS, size=8, color="white", alpha=0, hover_alpha=0.6,
                           selection_alpha=0.8, nonselection_alpha=0)
        tips = [("RA", "@ra{0.00}°"), ("Dec", "@dec{+0.00}°"), ("observations", "@observations{0,0}")]
    else:
        n = sky["n"].to_numpy()
        source = {"x": x, "y": y, "target": sky["target_object"].fill_null("(no target)").to_list(),
                  "mission": sky["mission_id"].to_list(), "observations": n,
                  "ra": sky["ra"].to_numpy(), "dec": sky["dec"].to_numpy(),
                  "color": [data.color(m) for m in sky["mission_id"]], "size": np.clip(5 + 3 * np.sqrt(n), 6, 34)}
        dots = fig.scatter("x", "y", source=source, name=DOTS, size="size", color="color", alpha=0.75,
                           line_color="white", nonselection_alpha=0.4)
        tips = [("target", "@target"), ("observations", "@observations{0,0}"), ("mission", "@mission"),
                ("RA", "@ra{0.0000}°"), ("Dec", "@dec{+0.0000}°")]
    fig.add_tools(HoverTool(renderers=[dots], tooltips=tips), TapTool(renderers=[dots]))
    return fig


#: The map's view: the whole sky, whatever the data's extent.
VIEW = {"x": (-X_MAX * 1.02, X_MAX * 1.02), "y": (-Y_MAX * 1.04, Y_MAX * 1.04)}


def _draw_frame(fig) -> None:
    """The RA/Dec grid, the sky's outline and the grid's labels."""
    grid_x, grid_y, outline, labels = _frame()
    fig.line(grid_x, grid_y, color="#ced4da", line_width=0.8)
    fig.line(outline[:, 0], outline[:, 1], color="#868e96", line_width=1.2)
    fig.text(x=[x for x, _, _ in labels], y=[y for _, y, _ in labels], text=[t for _, _, t in labels],
             text_font_size="9pt", text_color="#495057", text_align="center", text_baseline="middle")


@functools.cache
def _frame():
    """The grid as one line broken by NaNs, the outline and the labels (the same in every map)."""
    lines, labels = _graticule()
    gap = np.full((1, 2), np.nan)
    grid = np.vstack([part for line in lines for part in (line, gap)][:-1])
    outline = _outline()
    for a in (grid, outline):
        a.flags.writeable = False  # shared by every drawing
    return grid[:, 0], grid[:, 1], outline, labels
