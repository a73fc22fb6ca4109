"""Grey-scale echo cine loops of a latent heart, one standard view at a time.

Anatomy is drawn as ellipses (distance fields on a precomputed physical grid, cm) in a view frame
with the probe at the top; the frame is tilted and shifted per video (probe angle / position),
the sector depth and width, gain, dynamic range and frame rate vary. Each frame: reflectivity
map (blood dark, tissue grey, myocardium bright, pericardium/valves brightest) -> point-spread
blur (lateral resolution worse than axial, as in real sector scans) -> multiplicative Rayleigh
speckle (partly correlated across frames) -> log compression to 8 bits inside the sector.

The LV follows the volume curve of the patient's rhythm (ECG-triggered clip, 1-2 beats): a
prolate ellipsoid whose long axis shortens ~20 % and short axis carries the rest of the EF;
walls thicken by conservation of myocardial area. What each view shows (and does not):

| view | LV size / EF            | wall thickness            | LA               | RV              |
|------|-------------------------|---------------------------|------------------|-----------------|
| A4C  | area change (long axis) | walls parallel to beams:  | yes (area)       | yes (basal diam)|
|      |                         | lateral blur, imprecise   |                  |                 |
| A2C  | area change             | imprecise (as A4C)        | yes              | not in the view |
| PLAX | LV diameter (FS)        | IVS and posterior wall,   | AP diameter      | RVOT only, whose|
|      |                         | perpendicular: sharp      |                  | size is not RV's|
| PSAX | cavity area change      | whole ring: sharp         | not in the view  | crescent        |

Generator version 2 (an exam with wall-motion scores, or a clip quality other than "good"): the
LV is the wall each view cuts (e2r.phantom.echo_walls, regional.VIEW_SEGMENTS), each stretch
moving with its segment's ASE score, the normal segments' motion solved so that the 17 segments
eject exactly exam.lvef; the rest of the table holds. What changes per view:

| view | LV wall drawn (base -> apex -> base)          | shows an infarct of | LV size / EF as          |
|------|-----------------------------------------------|---------------------|--------------------------|
| A4C  | inferoseptal, apical septal, apex, apical     | LAD (apex), LCx,    | area change; single-plane|
|      | lateral, anterolateral                        | RCA                 | bias: wider, foreshortened|
| A2C  | inferior, apical inferior, apex, apical       | LAD, RCA; not LCx   | as A4C                   |
|      | anterior, anterior                            |                     |                          |
| PLAX | basal/mid anteroseptal (top), basal/mid       | LAD, LCx; not RCA   | diameters and FS from    |
|      | inferolateral (bottom); apex out of the view  |                     | these four segments      |
| PSAX | the six mid segments around the ring          | LAD, LCx, RCA       | cavity area change       |

Version 2 also gives each view only what it sees of the heart's shape (latent_v2's shape traits):
the apical views show the whole LV contour and the LA's medial-lateral and superior-inferior axes
(A2C a cut ~60 degrees round, between the medial-lateral and anteroposterior axes), with a depth
that takes in the atria; PLAX and PSAX cut the LV at one level (their diameter is the volume's
only through the heart's lv_linear_ratio, and each clip's plane falls a little differently); PLAX
shows the LA's anteroposterior diameter only; PSAX's RV crescent has its own shape
(rv_psax_ratio); the apical foreshortening is the study's apical window.

Clip quality: "off_axis" (probe off its window: heart tilted and displaced, apical LV further
foreshortened and cut off-centre, PLAX narrowed, PSAX ring stretched); "poor" (a sector of beams
dropped out, gain 6-12 dB low, a noise floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from e2r.phantom import echo_walls
from e2r.phantom.echo_walls import LVContours
from e2r.phantom.latent import Exam, beat_times
from e2r.phantom.regional import NORMAL, SEGMENTS

VIEWS = ("A4C", "A2C", "PLAX", "PSAX")
# Clip quality: "good"; "off_axis", the plane cut obliquely (foreshortened / stretched LV, the
# probe further off its window); "poor", low gain, heavy noise and a wall sector dropped out.
QUALITIES = ("good", "off_axis", "poor")
FRAME_RATES = (25.0, 30.0, 40.0, 50.0)

# Version 2 apical depth: the standard apical views show all four chambers, with the depth set a
# few centimetres beyond the atria (Rasmussen, echocardiographyskills.com, "The apical 4-chamber
# view"; the LA volume is traced in the apical views, ASE 2015). Version 1's 13-16 cm cut the far
# LA wall off in nearly every clip (the phantom's LA far wall lies at ~15.7-18.7 cm, 5th-95th
# percentile); version 2 adds this to the same draw (16.5-19.5 cm).
_V2_APICAL_EXTRA_DEPTH_CM = 3.5
# Version 2 parasternal cuts, per clip: PLAX's plane misses the LV's long axis by up to this
# (a chord, not the diameter); PSAX cuts the LV up to this far above or below the mid-papillary
# level (ASE 2015 places the linear measurement at the mitral leaflet tips and the short-axis view
# at the papillary level; where the plane falls varies between clips and observers). Phantom's
# choice of size.
_PLAX_OFFSET_CM = 0.5
_PSAX_LEVEL_CM = 1.0
# Version 2 PLAX: the probe sits over the LV base, so the LV's basal end (the mitral-aortic
# junction) lies this far right of the sector's centre line, and the LV runs off the sector's left
# edge: a good PLAX shows the mitral and aortic valves and "should not visualize the apex of the
# left ventricle" (Stanford critical care echo, "Parasternal long axis view", quality criteria;
# the issue's evidence: PLAX shows LV size as diameters, not the apex). Version 1 put the whole LV in the
# sector (its apex inside in ~97 % of clips), so PLAX showed the long axis the apical views trace.
_PLAX_BASE_X_CM = (0.8, 1.8)
# The A2C plane lies about 60 degrees from the A4C one (LA volume from the 2- and 4-chamber views,
# "which lie approximately in 60 degrees angle to one another": BMC Med Imaging 2021, s12880-021-00701-5).
_A2C_FROM_A4C = np.deg2rad(60.0)

# Reflectivity (linear amplitude, 1 = brightest) of the drawn tissues.
_BLOOD, _TISSUE, _MYO, _BRIGHT = 0.01, 0.04, 0.4, 1.0


@dataclass(frozen=True)
class EchoVideo:
    """One rendered cine loop and the acquisition facts a DICOM writer needs."""

    view: str
    frames: np.ndarray        # uint8 (F, H, W)
    fps: float
    pixel_spacing_cm: float   # isotropic, cm per pixel
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 of the sector's bounding box (inclusive)
    apex: tuple[int, int]     # probe position (x, y) in pixels
    depth_cm: float


@dataclass(frozen=True)
class _Grid:
    x: np.ndarray  # (H, W) lateral cm in the view frame
    y: np.ndarray  # (H, W) depth cm in the view frame
    sector: np.ndarray  # (H, W) bool
    r: np.ndarray  # (H, W) physical distance from the probe, cm
    ps: float      # cm per pixel
    apex: tuple[float, float]  # probe (row, col), pixels
    tilt: float    # rad
    shift: tuple[float, float]  # heart offset in the view frame, cm

    def pixel_box(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
        """Pixel rows/cols covering the view-frame rectangle [x0, x1] x [y0, y1] (cm)."""
        xs = np.array([x0, x1, x0, x1]) + self.shift[0]
        ys = np.array([y0, y0, y1, y1]) + self.shift[1]
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        px, py = c * xs - s * ys, s * xs + c * ys
        rows = py / self.ps + self.apex[0]
        cols = px / self.ps + self.apex[1]
        h, w = self.x.shape
        r0, r1 = max(0, int(np.floor(rows.min())) - 1), min(h, int(np.ceil(rows.max())) + 2)
        c0, c1 = max(0, int(np.floor(cols.min())) - 1), min(w, int(np.ceil(cols.max())) + 2)
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


class _Canvas:
    """A stack of reflectivity frames painted back to front (each shape only in its bounding box)."""

    def __init__(self, grid: _Grid, n_frames: int):
        self.g = grid
        self.img = np.full((n_frames,) + grid.x.shape, _TISSUE, dtype=np.float32)

    def ellipse(self, cx, cy, a, b, value: float, angle: float = 0.0) -> None:
        """Paint value inside the ellipse (per-frame centre/semi-axes arrays or scalars, cm)."""
        cx, cy, a, b = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in (cx, cy, a, b))
        ext = np.maximum(a, b) if angle else None
        ea, eb = (ext, ext) if angle else (a, b)
        rs, cs = self.g.pixel_box(float((cx - ea).min()), float((cx + ea).max()),
                                  float((cy - eb).min()), float((cy + eb).max()))
        gx, gy = self.g.x[rs, cs][None], self.g.y[rs, cs][None]
        dx, dy = gx - cx, gy - cy
        if angle:
            c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        dx, dy = dx / a, dy / b
        inside = dx * dx + dy * dy <= 1.0
        np.copyto(self.img[:, rs, cs], np.float32(value), where=inside)

    def band(self, y0, y1, x0, x1, value: float) -> None:
        """Paint value in the view-frame rectangle (per-frame arrays or scalars, cm)."""
        y0, y1, x0, x1 = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in (y0, y1, x0, x1))
        rs, cs = self.g.pixel_box(float(x0.min()), float(x1.max()), float(y0.min()), float(y1.max()))
        gx, gy = self.g.x[rs, cs][None], self.g.y[rs, cs][None]
        np.copyto(self.img[:, rs, cs], np.float32(value), where=(gy >= y0) & (gy <= y1) & (gx >= x0) & (gx <= x1))

    def contour(self, cx: float, cy: float, across: np.ndarray, along: np.ndarray, value: float,
                angle: float = 0.0) -> None:
        """Paint value inside a closed (F, M) contour, star-shaped about the fixed centre (cx, cy),
        given as offsets across / along the frame rotated by angle (as `ellipse`'s a / b axes)."""
        across, along = np.asarray(across, np.float64), np.asarray(along, np.float64)
        rad, phi = np.hypot(across, along), np.arctan2(across, along)
        reach = float(rad.max())
        rs, cs = self.g.pixel_box(cx - reach, cx + reach, cy - reach, cy + reach)
        dx, dy = self.g.x[rs, cs] - cx, self.g.y[rs, cs] - cy
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
        pix_r, pix_phi = np.hypot(dx, dy), np.arctan2(dx, dy)
        for k in range(len(self.img)):
            order = np.argsort(phi[k % len(phi)])
            edge = np.interp(pix_phi, phi[k % len(phi)][order], rad[k % len(phi)][order], period=2 * np.pi)
            np.copyto(self.img[k, rs, cs], np.float32(value), where=pix_r <= edge)


def _make_grid(size: int, depth: float, half_angle: float, tilt: float,
               shift: tuple[float, float]) -> _Grid:
    # Fit the sector: its depth into ~93 % of the rows, its widest chord into ~98 % of the columns.
    ps = max(depth / (0.93 * size), 2 * depth * np.sin(half_angle) / (0.98 * size))
    apex_row, apex_col = 2.0, size / 2 - 0.5
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    px, py = (cols - apex_col) * ps, (rows - apex_row) * ps
    r = np.hypot(px, py)
    theta = np.arctan2(px, np.maximum(py, 1e-6))
    sector = (r <= depth) & (np.abs(theta) <= half_angle) & (py > 0)
    # View frame: rotate by the probe tilt about the probe, then shift the heart.
    c, s = np.float32(np.cos(tilt)), np.float32(np.sin(tilt))
    x = c * px + s * py - np.float32(shift[0])
    y = -s * px + c * py - np.float32(shift[1])
    return _Grid(x=x, y=y, sector=sector, r=r, ps=ps, apex=(apex_row, apex_col), tilt=tilt, shift=shift)


def _cycle(exam: Exam, rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """LV filling state c(t) in [0, 1] (1 = end-diastole, 0 = end-systole) at frame times t (s).

    Ejection over ~LVET (Weissler: ~0.30 s, shorter at high rate), isovolumic relaxation,
    rapid filling (~75 % of the stroke volume in sinus), diastasis, atrial kick (~25 %), which
    AF lacks: there filling depends on the preceding RR (short RR, less filling).
    """
    beats = beat_times(rng, exam.heart_rate, exam.rhythm, -0.2, float(t[-1]) + 1.0)
    beats = beats - beats[beats <= 0.05].max() if np.any(beats <= 0.05) else beats
    lvet = float(np.clip(0.33 - 0.0012 * (exam.heart_rate - 70), 0.2, 0.36))
    k = np.searchsorted(beats, t, side="right") - 1
    k = np.clip(k, 0, len(beats) - 2)
    since = t - beats[k]
    rr = beats[k + 1] - beats[k]
    to_next = beats[k + 1] - t
    eject = 0.5 * (1 + np.cos(np.pi * np.clip(since / lvet, 0, 1)))       # 1 -> 0 during systole
    fill_t = np.clip(since - lvet - 0.07, 0, None)
    if exam.rhythm == "af":
        rapid = 1 - np.exp(-fill_t / 0.12)
        kick = 0.0
    else:
        rapid = 0.75 * (1 - np.exp(-fill_t / 0.09))
        kick = 0.25 * np.clip(1 - to_next / 0.12, 0, 1) + 0.25 * np.clip(
            1 - (rr - lvet - 0.07) / 0.5, 0, 1) * (since > lvet + 0.07)  # fused E/A at fast rates
    filled = np.clip(rapid + kick, 0, 1)
    return np.where(since < lvet, eject * 1.0, filled).astype(np.float32)


def render_view(exam: Exam, view: str, rng: np.random.Generator, size: int = 128,
                n_frames: int = 32, fps: float | None = None, quality: str = "good") -> EchoVideo:
    """Render one cine loop of `exam` in `view` (one of VIEWS) at `quality` (one of QUALITIES).

    A version 1 exam (no wall-motion scores) at good quality draws exactly version 1's clip; a
    version 2 exam, or any other quality, draws the walls each view cuts (e2r.phantom.echo_walls;
    a version 1 exam then counts as all segments normal)."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    if quality not in QUALITIES:
        raise ValueError(f"unknown clip quality {quality!r}; expected one of {QUALITIES}")
    regional = bool(exam.wall_motion) or quality != "good"
    fps = float(fps or rng.choice(FRAME_RATES))
    apical = view in ("A4C", "A2C")
    depth = float(rng.uniform(13.0, 16.0) if apical else rng.uniform(11.5, 15.0))
    if regional and apical:
        depth += _V2_APICAL_EXTRA_DEPTH_CM
    half_angle = np.deg2rad(rng.uniform(41, 46) if apical else rng.uniform(35, 42))
    tilt = np.deg2rad(rng.normal(0, 6))
    shift = (float(rng.normal(0, 0.5)), float(rng.normal(0, 0.4)))
    if quality == "off_axis":            # the probe off its window: the heart tilted and displaced
        tilt += np.deg2rad(rng.normal(0, 10))
        shift = (shift[0] + float(rng.normal(0, 1.0)), shift[1] + float(rng.normal(0, 0.6)))
    grid = _make_grid(size, depth, half_angle, tilt, shift)
    ps, apex = grid.ps, (int(round(grid.apex[1])), int(grid.apex[0]))

    t = np.arange(n_frames) / fps + rng.uniform(-0.08, 0.0)  # ECG-triggered clip
    fill = _cycle(exam, rng, t)
    edv, esv = exam.lvedv, exam.lvesv
    vol = esv + (edv - esv) * fill                       # LV volume per frame, mL
    contraction = 1.0 - fill                             # 0 at ED, 1 at ES
    l_ed = (6 * edv * exam.sphericity ** 2 / np.pi) ** (1 / 3)  # long axis, cm: V = pi/6 L D^2
    length = l_ed * (vol / edv) ** 0.22
    diam = np.sqrt(6 * vol / (np.pi * length))
    ivs, pw = exam.ivsd / 10, exam.lvpwd / 10

    def thick(h_ed: float) -> np.ndarray:
        # Wall thickening by conservation of myocardial cross-section (ring area constant).
        area = (diam[0] / 2 + h_ed) ** 2 - (diam[0] / 2) ** 2
        return -diam / 2 + np.sqrt(diam ** 2 / 4 + area)

    h_ivs, h_pw = thick(ivs), thick(pw)
    la_max = exam.la_volume
    la_vol = la_max * (0.55 + 0.45 * contraction)        # largest at LV end-systole
    la_d = (6 * la_vol / (np.pi * 1.3)) ** (1 / 3)       # LA as ellipsoid, L = 1.3 D
    rv_w = exam.rv_diameter / 10 * np.sqrt(1 - (0.42 - 0.008 * max(0.0, exam.rv_diameter - 38)) * contraction)

    cv = _Canvas(grid, n_frames)
    near = float(rng.uniform(1.2, 2.2))                  # chest wall to the heart, cm
    if regional:
        _draw_regional(cv, view, exam, rng, near, contraction, l_ed, diam, h_ivs, h_pw, la_d, rv_w,
                       off_axis=quality == "off_axis")
    elif view in ("A4C", "A2C"):
        _draw_apical(cv, view, exam, rng, near, length, diam, h_ivs, h_pw, la_d, rv_w, l_ed)
    elif view == "PLAX":
        _draw_plax(cv, rng, near, length, diam, h_ivs, h_pw, la_d, contraction)
    else:
        _draw_psax(cv, rng, near, diam, h_ivs, h_pw, rv_w)
    frames = _image(cv.img, grid, rng, ps, depth, poor=quality == "poor", half_angle=float(half_angle))
    ys, xs = np.nonzero(grid.sector)
    region = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    return EchoVideo(view=view, frames=frames, fps=fps, pixel_spacing_cm=float(ps), region=region,
                     apex=apex, depth_cm=depth)


def _grown(across: np.ndarray, along: np.ndarray, by: float) -> tuple[np.ndarray, np.ndarray]:
    """A contour moved outward by `by` cm along each ray from its centre."""
    r = np.maximum(np.hypot(across, along), 1e-6)
    return across * (r + by) / r, along * (r + by) / r


def _draw_regional(cv: _Canvas, view: str, exam: Exam, rng, near, contraction, l_ed, diam,
                   h_ivs, h_pw, la_d, rv_w, off_axis: bool) -> None:
    """Version 2: the LV wall the view cuts (echo_walls), the rest drawn as in version 1."""
    scores = exam.wall_motion or (NORMAL,) * len(SEGMENTS)
    q = echo_walls.normal_segment_ratio(scores, exam.lvef)
    d_ed, ivs, pw = float(diam[0]), exam.ivsd / 10, exam.lvpwd / 10
    # The LA's shape (latent_v2's la_ap_ratio): the volume-equivalent diameter la_d split into an
    # anteroposterior axis (PLAX) and medial-lateral and superior-inferior axes (apical views) of
    # the same volume; the A2C plane, ~60 degrees from the A4C one, cuts between the ML and AP axes.
    la_ap = la_d * exam.la_ap_ratio
    la_ml = la_d / np.sqrt(exam.la_ap_ratio)
    if view in ("A4C", "A2C"):
        widening, fore = echo_walls.apical_bias(exam.lvedv, scores, rng, off_axis=off_axis,
                                                window=exam.apical_foreshortening)
        oblique = float(rng.uniform(0.8, 0.95)) if off_axis else 1.0
        lv = echo_walls.apical_contours(scores, view, q, l_ed, d_ed, contraction, ivs, pw,
                                        widening_cm=widening, foreshortening=fore, oblique=oblique)
        if view == "A4C":
            la_w = la_ml
        else:
            c, s = np.cos(_A2C_FROM_A4C), np.sin(_A2C_FROM_A4C)
            la_w = la_ml * la_ap / np.sqrt((la_ap * c) ** 2 + (la_ml * s) ** 2)
        _draw_apical(cv, view, exam, rng, near, lv.length, lv.width, h_ivs, h_pw, la_d, rv_w,
                     float(lv.length[0]), lv=lv, la_w=la_w, la_len=la_ml)
        return
    # PLAX and PSAX cut the LV at one level, where its diameter differs from the volume-equivalent
    # one by the heart's lv_linear_ratio (latent_v2), and each clip's plane falls a little
    # differently (_PLAX_OFFSET_CM, _PSAX_LEVEL_CM). The plane comes from a stream jumped ahead of
    # the clip's (the clip's own stream is not advanced), so its other acquisition draws stay
    # those it had without the plane.
    plane = np.random.Generator(rng.bit_generator.jumped())
    if view == "PLAX":
        offset = float(plane.uniform(0.0, _PLAX_OFFSET_CM))
        cut = exam.lv_linear_ratio * np.sqrt(max(0.5, 1.0 - (2 * offset / d_ed) ** 2))
        oblique = float(rng.uniform(0.75, 0.92)) if off_axis else 1.0
        half_len = l_ed / 2 + 0.6
        base_x = float(plane.uniform(*_PLAX_BASE_X_CM))
        lv = echo_walls.plax_contours(scores, q, half_len, d_ed * cut, contraction, ivs, pw, oblique=oblique)
        _draw_plax(cv, rng, near, np.full_like(diam, l_ed), diam * cut, h_ivs, h_pw, la_ap, contraction, lv=lv,
                   lv_cx=base_x - half_len)
    else:
        level = float(plane.uniform(-_PSAX_LEVEL_CM, _PSAX_LEVEL_CM))
        cut = exam.lv_linear_ratio * np.sqrt(max(0.5, 1.0 - (2 * level / l_ed) ** 2))
        oblique = float(rng.uniform(1.15, 1.35)) if off_axis else 1.0
        lv = echo_walls.psax_contours(scores, q, d_ed * cut, contraction, ivs, pw, oblique=oblique)
        # The RV crescent: its own shape against the A4C basal diameter (latent_v2's rv_psax_ratio).
        _draw_psax(cv, rng, near, diam * cut, h_ivs, h_pw, rv_w * exam.rv_psax_ratio, lv=lv)


def _draw_apical(cv: _Canvas, view: str, exam: Exam, rng, near, length, diam, h_ivs, h_pw,
                 la_d, rv_w, l_ed, lv: LVContours | None = None, la_w=None, la_len=None) -> None:
    """A4C: apex at the top, LV down and to the right of the septum, RV left, atria below.
    A2C: LV axis near vertical, LA below, no RV. Shapes follow the LV long axis (angle theta).
    With `lv` (version 2) the LV myocardium and cavity are its contours; la_w / la_len (version 2)
    are the LA's width in this plane and its superior-inferior extent / 1.3 (default la_d)."""
    la_w = la_d if la_w is None else la_w
    la_len = la_d if la_len is None else la_len
    theta = np.deg2rad(rng.normal(10, 3) if view == "A4C" else rng.normal(3, 3))
    ux, uy = np.sin(theta), np.cos(theta)               # apex -> base
    nx, ny = np.cos(theta), -np.sin(theta)              # septum -> lateral wall
    ang = -theta
    apex_y = near + 1.0
    # A4C: the septum runs down the middle of the sector (RV left, LV right of it).
    apex_x = float(-(length[0] / 2) * ux + (diam[0] / 2 + h_ivs[0] / 2) * nx - 1.0) if view == "A4C" else 0.0

    def at(along, across):
        return apex_x + ux * along + nx * across, apex_y + uy * along + ny * across

    h_apex = 0.7 * (h_ivs + h_pw) / 2
    out_a = diam / 2 + (h_ivs + h_pw) / 2
    lv_c = at(length / 2, 0.0)
    out_c = at(length / 2, (h_pw - h_ivs) / 2)           # septum h_ivs thick, lateral wall h_pw
    if lv is None:
        cv.ellipse(*out_c, out_a + 0.25, length / 2 + h_apex + 0.25, _BRIGHT, angle=ang)
    else:
        lv_c = at(lv.centre_along, 0.0)
        cv.contour(*lv_c, *_grown(lv.epi_across, lv.epi_along, 0.25), _BRIGHT, angle=ang)
    if view == "A4C":
        rv_len = 0.8 * l_ed * (length / l_ed) ** 0.5
        rv_c = at(length - rv_len / 2, -(diam / 2 + h_ivs + rv_w / 2 + 0.05))
        cv.ellipse(*rv_c, rv_w / 2 + 0.4, rv_len / 2 + 0.4, _MYO, angle=ang)        # RV free wall
        ra_d = 3.4 * (exam.rv_diameter / 35.0) ** 0.7 * (la_d / la_d.max()) ** 0.3
        ra_c = at(length + 0.25 + 0.6 * ra_d, -(diam / 2 + h_ivs + ra_d / 2 + 0.1))
        cv.ellipse(*ra_c, ra_d / 2 + 0.25, 0.6 * ra_d + 0.25, _MYO, angle=ang)
        cv.ellipse(*ra_c, ra_d / 2, 0.6 * ra_d, _BLOOD, angle=ang)
    if lv is None:
        cv.ellipse(*out_c, out_a, length / 2 + h_apex, _MYO, angle=ang)
    else:
        cv.contour(*lv_c, lv.epi_across, lv.epi_along, _MYO, angle=ang)
    la_c = at(length + 0.45 + 0.65 * la_len, 0.15)
    cv.ellipse(*la_c, la_w / 2 + 0.25, 0.65 * la_len + 0.25, _MYO, angle=ang)
    cv.ellipse(*la_c, la_w / 2, 0.65 * la_len, _BLOOD, angle=ang)
    if view == "A4C":
        cv.ellipse(*rv_c, rv_w / 2, rv_len / 2, _BLOOD, angle=ang)
    if lv is None:
        cv.ellipse(*lv_c, diam / 2, length / 2, _BLOOD, angle=ang)
    else:
        cv.contour(*lv_c, lv.endo_across, lv.endo_along, _BLOOD, angle=ang)
    # Mitral annulus hinges (bright) and the closed leaflets across the base in systole.
    for side in (-1.0, 1.0):
        cv.ellipse(*at(length, side * (diam / 2 + 0.05)), 0.3, 0.18, _BRIGHT, angle=ang)
    # Leaflets: closed across the annulus in systole; in diastole the open leaflets and the
    # annular plane still show as a fainter line (keeps the LV and LA pools apart).
    systole = np.diff(length, prepend=length[0]) < 0
    cv.ellipse(*at(length + 0.05, 0.0), diam / 2 + 0.1, 0.16, _MYO * 0.6, angle=ang)
    cv.ellipse(*at(length + 0.05, 0.0), np.where(systole, diam / 2, 1e-3), 0.12, _BRIGHT * 0.7, angle=ang)


def _draw_plax(cv: _Canvas, rng, near, length, diam, h_ivs, h_pw, la_d, contraction,
               lv: LVContours | None = None, lv_cx: float = -1.2) -> None:
    """PLAX: RVOT on top (its size independent of the RV's), IVS, LV cavity, posterior wall,
    pericardium; aortic root and LA to the right. The LV long axis runs to the left from its
    centre at x = lv_cx (cm). With `lv` (version 2) the LV is its contours (`along` = x,
    `across` = depth) about the ED cavity centre."""
    rvot = float(np.clip(rng.normal(2.7, 0.35), 1.8, 3.6))
    sept_top = near + 0.4 + rvot
    half_len = length / 2 + 0.6
    cav_cy = sept_top + h_ivs + diam / 2
    pw_bot = cav_cy + diam / 2 + h_pw
    out_b = (pw_bot - sept_top) / 2
    out_cy = (pw_bot + sept_top) / 2
    ao_r = float(rng.uniform(2.6, 3.4))                 # aortic root diameter, cm
    ao_x = lv_cx + float(half_len.max()) + 0.9
    ao_y = sept_top + h_ivs[0] + ao_r / 2
    la_y = ao_y + ao_r / 2 + 0.35 + la_d / 2
    lv_cy = float(cav_cy[0])
    if lv is None:
        cv.ellipse(lv_cx, out_cy + 0.2, half_len + 0.5, out_b + 0.3, _BRIGHT)   # pericardium
    else:
        cv.contour(lv_cx, lv_cy, *_grown(lv.epi_along, lv.epi_across, 0.3), _BRIGHT)
    cv.ellipse(ao_x + 0.3, la_y, 0.6 * la_d + 0.25, la_d / 2 + 0.25, _MYO)
    cv.ellipse(ao_x + 0.3, la_y, 0.6 * la_d, la_d / 2, _BLOOD)                  # LA
    if lv is None:
        cv.ellipse(lv_cx, out_cy, half_len + 0.3, out_b, _MYO)
    else:
        cv.contour(lv_cx, lv_cy, lv.epi_along, lv.epi_across, _MYO)
    cv.ellipse(lv_cx - 0.5, near + 0.4 + rvot / 2, 3.2, rvot / 2, _BLOOD)      # RVOT
    cv.ellipse(ao_x, ao_y, 2.2, ao_r / 2 + 0.25, _MYO)                          # aortic root
    cv.ellipse(ao_x, ao_y, 2.3, ao_r / 2, _BLOOD)
    if lv is None:
        cv.ellipse(lv_cx, cav_cy, half_len, diam / 2, _BLOOD)
    else:
        cv.contour(lv_cx, lv_cy, lv.endo_along, lv.endo_across, _BLOOD)
    # Aortic valve cusps: a bright line across the root when closed (diastole).
    shut = np.where(contraction < 0.15, ao_r / 2, 1e-3)
    cv.ellipse(ao_x - 0.6, ao_y, 0.1, shut, _BRIGHT)


def _draw_psax(cv: _Canvas, rng, near, diam, h_ivs, h_pw, rv_w, lv: LVContours | None = None) -> None:
    """PSAX (mid-papillary): round LV with the septum toward the upper left, RV crescent wrapped
    around it there; no atria. With `lv` (version 2) the ring is its contours (x, y) about the
    ring's centre, the septal thickness drawn in the contour."""
    out_r = diam / 2 + (h_ivs + h_pw) / 2
    rv0 = float(rv_w[0])
    lv_cx, lv_cy = 0.5, near + 0.5 + 0.8 * rv0 + float(out_r[0])
    # The cavity sits off-centre in the outer ring so the septal side is h_ivs thick.
    shift = (h_pw - h_ivs) / 2
    ux, uy = -0.5, -0.866                                 # toward the septum / RV (upper left)
    cav_cx, cav_cy = lv_cx - shift * ux, lv_cy - shift * uy
    # RV: an ellipse centred just outside the LV ring toward the upper left; the LV drawn over it
    # leaves the crescent, whose width follows the RV size.
    rv_cx = lv_cx + ux * (out_r + 0.15 * rv_w)
    rv_cy = lv_cy + uy * (out_r + 0.15 * rv_w)
    rv_ang = np.arctan2(uy, ux) + np.pi / 2
    if lv is None:
        cv.ellipse(lv_cx, lv_cy, out_r + 0.25, out_r + 0.25, _BRIGHT)
    else:
        cv.contour(lv_cx, lv_cy, *_grown(lv.epi_across, lv.epi_along, 0.25), _BRIGHT)
    cv.ellipse(rv_cx, rv_cy, rv_w * 0.85 + 0.35, rv_w * 0.5 + 0.35, _MYO, angle=rv_ang)
    cv.ellipse(rv_cx, rv_cy, rv_w * 0.85, rv_w * 0.5, _BLOOD, angle=rv_ang)
    if lv is None:
        cv.ellipse(lv_cx, lv_cy, out_r, out_r, _MYO)
        cv.ellipse(cav_cx, cav_cy, diam / 2, diam / 2, _BLOOD)
    else:
        cv.contour(lv_cx, lv_cy, lv.epi_across, lv.epi_along, _MYO)
        cv.contour(lv_cx, lv_cy, lv.endo_across, lv.endo_along, _BLOOD)
        cav_cx, cav_cy, diam = lv_cx, lv_cy, np.hypot(lv.endo_across, lv.endo_along).mean(axis=1) * 2
    # Papillary muscles: small bright bodies in the cavity's lower half.
    for ang in (np.pi * 0.3, np.pi * 0.75):
        px, py = cav_cx + 0.62 * diam / 2 * np.cos(ang), cav_cy + 0.62 * diam / 2 * np.sin(ang)
        cv.ellipse(px, py, 0.22, 0.3, _MYO * 0.8)


def _image(refl: np.ndarray, grid: _Grid, rng: np.random.Generator, ps: float, depth: float,
           poor: bool = False, half_angle: float = 0.75) -> np.ndarray:
    """Reflectivity -> blur (axial < lateral) -> Rayleigh speckle -> log compression, 8 bits.

    poor: a sector of beams dropped out (tissue there as dark as blood: rib shadow, lung, walls
    parallel to the beams), low gain and heavy noise."""
    if poor:
        h, w = grid.r.shape
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
        beam = np.arctan2((cols - grid.apex[1]) * ps, np.maximum((rows - grid.apex[0]) * ps, 1e-6))
        centre = rng.uniform(-0.75, 0.75) * half_angle
        width = np.deg2rad(rng.uniform(8, 16))
        dropped = (np.abs(beam - centre) < width / 2) & (grid.r > rng.uniform(3.0, 6.0))
        refl = np.where(dropped[None], refl * np.float32(0.1), refl)
    lat_cm = rng.uniform(0.2, 0.28)                      # lateral beam width at mid-depth
    blur = ndimage.gaussian_filter(refl, sigma=(0, 0.06 / ps, lat_cm / ps), mode="nearest")
    f, h, w = refl.shape
    # Fully developed speckle: exponential intensity, Rayleigh amplitude, about one pixel per grain
    # at these pixel sizes (~1 mm); part of the pattern persists across frames.
    static = rng.standard_exponential((1, h, w), dtype=np.float32)
    fresh = rng.standard_exponential((f, h, w), dtype=np.float32)
    speckle = np.sqrt(0.65 * static + 0.35 * fresh)
    env = blur * speckle
    env *= (1.0 - rng.uniform(0.15, 0.35) * grid.r / depth)[None]   # attenuation left after TGC
    env += 0.03 * np.exp(-grid.r / 0.8)[None] * speckle                 # near-field clutter
    dr = rng.uniform(42, 52)                             # displayed dynamic range, dB
    gain_db = rng.normal(0, 2.5)
    if poor:                                             # low gain, a noise floor over everything
        gain_db -= rng.uniform(6, 12)
        env += rng.uniform(0.03, 0.06) * rng.standard_exponential(env.shape, dtype=np.float32)
    db = 20 * np.log10(np.maximum(env, 1e-6)) + gain_db
    out = np.clip(255 * (1 + db / dr), 0, 255)
    out[:, ~grid.sector] = 0
    return out.astype(np.uint8)
