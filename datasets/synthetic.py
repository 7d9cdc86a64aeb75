"""Procedural, seeded twins of COMPAQ (visible Red channel), SNV and Hand Gesture (NIR).

The real sets cannot be downloaded here, so the suite ships a renderer whose *scene geometry*
is shared by both bands and whose *appearance* follows what differs between them:

* visible Red channel (source, ``synth_compaq``): skin is mid-bright, textured and shaded, and
  shares its brightness with skin-coloured distractors (wood, beige walls, tanned fabrics);
  lighting is roughly uniform.
* NIR under 850 nm active illumination (targets, ``synth_snv``, ``synth_hand``): skin is bright
  and nearly textureless, hair, eyebrows and pupils are dark, a fabric's brightness is unrelated
  to its visible colour, and the illuminator gives a strong centre-weighted, depth-dependent
  fall-off, followed by sensor gain (saturation), blur and noise.

Every image also carries a depth map (metres), which DADA needs on the source. Image ``i`` of a
domain depends only on ``(seed, domain, i)``, so a smaller split is a prefix of a larger one.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

RENDERER_VERSION = 1

#: Real-set sizes (seed 002 §5.1): COMPAQ 4675, SNV 800, Hand Gesture 500.
DOMAINS = {
    'synth_compaq': dict(band='visible_red', code=11, default_count=4675),
    'synth_snv': dict(band='nir', code=23, default_count=800),
    'synth_hand': dict(band='nir', code=37, default_count=500),
}

#: Finger extension (thumb, index, middle, ring, pinky) of the rendered hand gestures.
GESTURES = {
    'fist': (0, 0, 0, 0, 0), 'point': (0, 1, 0, 0, 0), 'victory': (0, 1, 1, 0, 0),
    'three': (0, 1, 1, 1, 0), 'four': (0, 1, 1, 1, 1), 'open': (1, 1, 1, 1, 1),
    'thumb_up': (1, 0, 0, 0, 0), 'l_shape': (1, 1, 0, 0, 0), 'rock': (0, 1, 0, 0, 1),
    'call': (1, 0, 0, 0, 1), 'three_thumb': (1, 1, 1, 0, 0), 'pinky': (0, 0, 0, 0, 1),
}

SKIN, HAIR, EYE, CLOTH, WALL, WOOD, FABRIC = 'skin', 'hair', 'eye', 'cloth', 'wall', 'wood', 'fabric'


class _Canvas:
    """Painter's-algorithm canvas: per-pixel material instance, depth and shading."""

    def __init__(self, size: int):
        self.size = size
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        self.x = (xs + 0.5) / size
        self.y = (ys + 0.5) / size
        self.instance = np.zeros((size, size), np.int32)
        self.depth = np.zeros((size, size), np.float32)
        self.shade = np.ones((size, size), np.float32)
        self.materials: list[dict] = []

    def paint(self, mask: np.ndarray, material: dict, depth, shade=None):
        self.materials.append(material)
        idx = len(self.materials) - 1
        self.instance[mask] = idx
        self.depth[mask] = depth if np.isscalar(depth) else depth[mask]
        self.shade[mask] = 1.0 if shade is None else shade[mask]
        return idx

    def ellipse(self, cx, cy, rx, ry, angle=0.0):
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = self.x - cx, self.y - cy
        u = (c * dx + s * dy) / rx
        v = (-s * dx + c * dy) / ry
        r2 = u * u + v * v
        return r2 <= 1.0, np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))

    def capsule(self, p0, p1, radius):
        (x0, y0), (x1, y1) = p0, p1
        vx, vy = x1 - x0, y1 - y0
        t = ((self.x - x0) * vx + (self.y - y0) * vy) / max(vx * vx + vy * vy, 1e-9)
        t = np.clip(t, 0.0, 1.0)
        d = np.hypot(self.x - (x0 + t * vx), self.y - (y0 + t * vy)) / radius
        return d <= 1.0, np.sqrt(np.clip(1.0 - d * d, 0.0, 1.0))

    def rect(self, x0, y0, x1, y1):
        return (self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1)


def _skin(rng):
    return dict(kind=SKIN, red=rng.uniform(0.42, 0.82), nir=rng.uniform(0.8, 0.95),
                phase=rng.uniform(0, 6.3))


def _hair(rng):
    return dict(kind=HAIR, red=rng.uniform(0.05, 0.4), nir=rng.uniform(0.05, 0.18),
                phase=rng.uniform(0, 6.3))


def _surface(rng, kind, skin_like: bool):
    """A non-skin material; ``skin_like`` gives it a skin-coloured visible Red response."""
    red = rng.uniform(0.45, 0.85) if skin_like else rng.uniform(0.05, 0.95)
    return dict(kind=kind, red=red, nir=rng.uniform(0.15, 1.0), phase=rng.uniform(0, 6.3),
                freq=rng.uniform(25, 70), angle=rng.uniform(0, math.pi),
                pattern=rng.choice(['plain', 'stripes', 'checks']))


def _room(canvas: _Canvas, rng, far: float):
    """Wall, floor and 1-5 pieces of furniture or fabric, many skin-coloured in the visible band."""
    canvas.paint(np.ones_like(canvas.x, bool), _surface(rng, WALL, rng.random() < 0.6), far)
    horizon = rng.uniform(0.6, 0.9)
    floor_depth = far * (0.35 + 0.65 * np.clip((1 - canvas.y) / (1 - horizon + 1e-3), 0, 1))
    canvas.paint(canvas.y > horizon, _surface(rng, WOOD, rng.random() < 0.6), floor_depth)
    for _ in range(rng.integers(1, 6)):
        kind = WOOD if rng.random() < 0.5 else FABRIC
        x0, y0 = rng.uniform(-0.1, 0.85), rng.uniform(0.05, 0.8)
        w, h = rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.5)
        material = _surface(rng, kind, rng.random() < 0.65)
        depth = far * rng.uniform(0.5, 0.95)
        if kind == FABRIC and rng.random() < 0.5:
            mask, bulge = canvas.ellipse(x0 + w / 2, y0 + h / 2, w / 2, h / 2, rng.uniform(0, 3.1))
            canvas.paint(mask, material, depth, 0.6 + 0.4 * bulge)
        else:
            canvas.paint(canvas.rect(x0, y0, x0 + w, y0 + h), material, depth)


def _person(canvas: _Canvas, rng, distance: float):
    """One person: clothed torso, neck, face with hair/eyebrows/eyes, two arms ending in hands."""
    head_h = min(0.3, 0.32 / distance)
    cx, cy = rng.uniform(0.12, 0.88), rng.uniform(0.2, 0.55)
    rx, ry = 0.38 * head_h, 0.5 * head_h
    tilt = rng.normal(0, 0.15)
    skin, cloth = _skin(rng), _surface(rng, CLOTH, rng.random() < 0.3)
    shoulder_y = cy + 1.35 * ry
    torso_w = 2.6 * rx
    canvas.paint(canvas.rect(cx - torso_w, shoulder_y, cx + torso_w, 1.2), cloth, distance + 0.05)
    neck, sh = canvas.capsule((cx, cy + ry * 0.6), (cx, shoulder_y + 0.01), 0.35 * rx)
    canvas.paint(neck, skin, distance + 0.02, 0.6 + 0.4 * sh)
    sleeve = rng.choice(['none', 'short', 'long'])
    for side in (-1, 1):
        shoulder = (cx + side * torso_w * 0.9, shoulder_y + 0.2 * ry)
        elbow = (shoulder[0] + side * rng.uniform(0.1, 0.9) * ry, shoulder[1] + rng.uniform(1.2, 2.2) * ry)
        hand = (elbow[0] + rng.uniform(-1.5, 1.5) * ry, elbow[1] + rng.uniform(-2.2, 1.0) * ry)
        radius = 0.28 * rx
        upper, us = canvas.capsule(shoulder, elbow, radius)
        lower, ls = canvas.capsule(elbow, hand, radius * 0.9)
        arm_depth = distance - rng.uniform(0.0, 0.3)
        canvas.paint(upper, cloth if sleeve != 'none' else skin, arm_depth, 0.6 + 0.4 * us)
        canvas.paint(lower, cloth if sleeve == 'long' else skin, arm_depth, 0.6 + 0.4 * ls)
        palm, ps = canvas.ellipse(hand[0], hand[1], radius * 1.5, radius * 1.9, rng.uniform(0, 3.1))
        canvas.paint(palm, skin, arm_depth - 0.02, 0.6 + 0.4 * ps)
    hair = _hair(rng)
    if rng.random() < 0.85:
        back, bs = canvas.ellipse(cx, cy - 0.12 * ry, rx * 1.15, ry * 1.0, tilt)
        canvas.paint(back, hair, distance + 0.01, 0.7 + 0.3 * bs)
    face, fs = canvas.ellipse(cx, cy, rx, ry, tilt)
    canvas.paint(face, skin, distance, 0.55 + 0.45 * fs)
    if rng.random() < 0.85:
        hairline = cy - ry * rng.uniform(0.2, 0.6)
        canvas.paint(face & (canvas.y < hairline), hair, distance - 0.005, 0.7 + 0.3 * fs)
    for side in (-1, 1):
        ex, ey = cx + side * 0.42 * rx, cy - 0.05 * ry
        brow, _ = canvas.ellipse(ex, ey - 0.2 * ry, 0.3 * rx, 0.05 * ry, tilt)
        canvas.paint(brow & face, hair, distance - 0.01)
        eye, _ = canvas.ellipse(ex, ey, 0.16 * rx, 0.08 * ry, tilt)
        canvas.paint(eye & face, dict(kind=EYE, red=rng.uniform(0.1, 0.3), nir=0.05, phase=0.0),
                     distance - 0.01)


def _hand(canvas: _Canvas, rng, distance: float, gesture: tuple, scale: float):
    """A close-range hand: forearm from the image border, palm and five fingers of a gesture."""
    skin = _skin(rng)
    angle = rng.normal(0, 0.35)                          # rotation of the hand about the wrist
    up = np.array([math.sin(angle), -math.cos(angle)])   # palm -> fingertips direction
    right = np.array([-up[1], up[0]])
    wrist = np.array([rng.uniform(0.35, 0.65), rng.uniform(0.72, 0.85)])
    palm_c = wrist + up * 0.16 * scale
    forearm_end = wrist - up * 0.6
    arm, arm_s = canvas.capsule(tuple(forearm_end), tuple(wrist), 0.085 * scale)
    if rng.random() < 0.5:   # a sleeve covers the far end of the forearm
        cut = wrist - up * rng.uniform(0.12, 0.3)
        sleeve, ss = canvas.capsule(tuple(forearm_end), tuple(cut), 0.1 * scale)
        canvas.paint(arm, skin, distance + 0.02, 0.6 + 0.4 * arm_s)
        canvas.paint(sleeve, _surface(rng, CLOTH, rng.random() < 0.3), distance + 0.03, 0.6 + 0.4 * ss)
    else:
        canvas.paint(arm, skin, distance + 0.02, 0.6 + 0.4 * arm_s)
    palm, ps = canvas.ellipse(palm_c[0], palm_c[1], 0.11 * scale, 0.13 * scale, angle)
    canvas.paint(palm, skin, distance, 0.55 + 0.45 * ps)
    lengths = (0.13, 0.17, 0.19, 0.17, 0.13)
    offsets = (-0.11, -0.06, -0.01, 0.04, 0.085)
    spread = rng.uniform(0.05, 0.25)
    for f, (extended, length, off) in enumerate(zip(gesture, lengths, offsets)):
        if f == 0:   # thumb leaves the side of the palm
            base = palm_c + right * -0.09 * scale + up * -0.02 * scale
            direction = -right * 0.8 + up * 0.6
        else:
            base = palm_c + right * off * scale + up * 0.1 * scale
            direction = up + right * (f - 2.5) * spread * 0.4
        direction = direction / np.linalg.norm(direction)
        reach = (length if extended else 0.045) * scale
        tip = base + direction * reach
        finger, fsh = canvas.capsule(tuple(base), tuple(tip), 0.024 * scale)
        canvas.paint(finger, skin, distance - 0.01, 0.6 + 0.4 * fsh)


def _pattern(canvas: _Canvas, material: dict, rng) -> np.ndarray:
    """The material's spatial texture in [-1, 1] (fabric weave, wood grain, stripes, checks)."""
    kind, x, y = material['kind'], canvas.x, canvas.y
    if kind not in (WOOD, FABRIC, CLOTH, WALL):
        return np.zeros_like(x)
    a, f, ph = material['angle'], material['freq'], material['phase']
    u = x * math.cos(a) + y * math.sin(a)
    v = -x * math.sin(a) + y * math.cos(a)
    if kind == WOOD:
        return np.sin(f * u + 3.0 * np.sin(7 * v + ph))
    if kind == FABRIC:
        return 0.5 * (np.sin(2.5 * f * u + ph) + np.sin(2.5 * f * v))
    if kind == WALL:
        return np.sin(3 * u + ph) * 0.5
    return {'plain': np.zeros_like(x), 'stripes': np.sign(np.sin(f * 0.4 * u + ph)),
            'checks': np.sign(np.sin(f * 0.4 * u + ph) * np.sin(f * 0.4 * v))}[material['pattern']]


_VISIBLE_TEXTURE = {SKIN: 0.05, HAIR: 0.08, EYE: 0.0, CLOTH: 0.12, WALL: 0.03, WOOD: 0.12, FABRIC: 0.1}
_NIR_TEXTURE = {SKIN: 0.004, HAIR: 0.02, EYE: 0.0, CLOTH: 0.1, WALL: 0.03, WOOD: 0.05, FABRIC: 0.08}


def _albedo(canvas: _Canvas, rng, band: str) -> np.ndarray:
    key, amplitude = ('red', _VISIBLE_TEXTURE) if band == 'visible_red' else ('nir', _NIR_TEXTURE)
    albedo = np.zeros_like(canvas.x)
    fine = rng.standard_normal(canvas.x.shape).astype(np.float32)
    blotch = gaussian_filter(rng.standard_normal(canvas.x.shape).astype(np.float32), canvas.size / 24)
    blotch /= blotch.std() + 1e-6
    for idx, material in enumerate(canvas.materials):
        region = canvas.instance == idx
        if not region.any():
            continue
        amp = amplitude[material['kind']]
        texture = _pattern(canvas, material, rng)[region]
        if material['kind'] == SKIN:   # pores and blotches: strong in the visible, absent in NIR
            texture = 0.6 * fine[region] + 0.8 * blotch[region]
        elif material['kind'] == HAIR:
            texture = fine[region]
        albedo[region] = material[key] * (1.0 + amp * texture)
    return albedo


def _render(canvas: _Canvas, rng, band: str) -> np.ndarray:
    albedo = _albedo(canvas, rng, band)
    if band == 'visible_red':
        gx, gy = rng.uniform(-0.25, 0.25, size=2)
        light = rng.uniform(0.8, 1.1) * (1.0 + gx * (canvas.x - 0.5) + gy * (canvas.y - 0.5))
        img = albedo * (0.65 + 0.35 * canvas.shade) * light
        img += rng.normal(0, 0.015, img.shape)
    else:
        sigma = rng.uniform(0.35, 0.6)
        cx, cy = rng.uniform(0.4, 0.6, size=2)
        falloff = np.exp(-((canvas.x - cx) ** 2 + (canvas.y - cy) ** 2) / (2 * sigma ** 2))
        near = np.percentile(canvas.depth, 5)
        inverse_square = np.clip((near / canvas.depth) ** 2, 0.05, 1.0)
        gain = rng.uniform(1.1, 1.6)
        img = gain * albedo * (0.85 + 0.15 * canvas.shade) * falloff * inverse_square
        img = gaussian_filter(img, rng.uniform(0.5, 1.2) * canvas.size / 128)
        img += rng.normal(0, rng.uniform(0.015, 0.045), img.shape)
    return np.clip(img, 0.0, 1.0)


def render_sample(domain: str, index: int, size: int, seed: int):
    """Render image ``index`` of ``domain``: (image uint8 HxW, skin mask uint8 HxW, depth float32 HxW)."""
    spec = DOMAINS[domain]
    rng = np.random.default_rng([seed, spec['code'], index])
    canvas = _Canvas(size)
    hand_scene = domain == 'synth_hand' or (domain == 'synth_compaq' and rng.random() < 0.25)
    if hand_scene:
        far = rng.uniform(1.0, 3.0)
        _room(canvas, rng, far)
        gesture = list(GESTURES.values())[rng.integers(len(GESTURES))]
        _hand(canvas, rng, rng.uniform(0.25, 0.5), gesture, scale=rng.uniform(1.2, 1.7))
    else:
        far = rng.uniform(4.0, 7.0)
        _room(canvas, rng, far)
        people = rng.integers(1, 4)
        for distance in sorted(rng.uniform(1.0, far * 0.5, size=people), reverse=True):
            _person(canvas, rng, distance)
    image = _render(canvas, rng, spec['band'])
    skin_ids = [i for i, m in enumerate(canvas.materials) if m['kind'] == SKIN]
    mask = np.isin(canvas.instance, skin_ids)
    return (image * 255 + 0.5).astype(np.uint8), mask.astype(np.uint8), canvas.depth.copy()


def generate(domain: str, count: int, size: int, seed: int) -> dict:
    """Render ``count`` samples of ``domain`` as stacked arrays: images, masks (0/1) and depth."""
    if domain not in DOMAINS:
        raise KeyError(f'unknown synthetic domain {domain!r}; expected one of {sorted(DOMAINS)}')
    samples = [render_sample(domain, i, size, seed) for i in range(count)]
    images, masks, depth = (np.stack(a) for a in zip(*samples))
    return dict(images=images, masks=masks, depth=depth.astype(np.float16))
