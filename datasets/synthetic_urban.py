"""Procedural, seeded urban twins for SYNTHIA -> Cityscapes (issue 14): ``synth_synthia`` (source)
and ``synth_cityscapes`` (target), 16 classes laid out as streets are, with per-pixel depth.

Geometry (shared): a pinhole camera over a flat ground plane. Below the horizon a pixel sees the
ground at distance ``height * f / (row - horizon)``: road within the road's half-width, sidewalk
beyond it; facades stand at a lateral offset on both sides, split along the street into buildings,
walls, fences and trees (vegetation) of varied heights; above them, sky. Upright objects are
painted far to near as boxes standing on the ground: cars and buses on the road, persons on the
sidewalks, riders on bicycles and motorcycles at the road's edge, poles along the kerb carrying
traffic signs and traffic lights. Depth is the distance of the surface each pixel sees (sky 1 km).

Appearance is what differs between the domains, as between SYNTHIA and Cityscapes:

* ``synth_synthia``: varied and often elevated viewpoints (camera 1.5-8 m up, the horizon anywhere
  in the upper two thirds, a lateral offset), synthetic textures (saturated colours drawn per
  object, blocky noise) and random lighting (brightness and tint).
* ``synth_cityscapes``: a dashcam at a fixed 1.3 m and horizon, photographic colour (muted,
  per-class palettes with small variation), haze growing with depth, vignetting, horizontal motion
  blur and sensor noise; the ego vehicle's bonnet at the bottom is labelled 255 (ignored), as in
  Cityscapes.

Labels are the 19 Cityscapes train ids (255 ignore); terrain, truck and train never occur, as in
SYNTHIA. Image ``i`` depends only on ``(seed, domain, i)``, so a smaller set is a prefix of a larger.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

RENDERER_VERSION = 1
DOMAINS = {'synth_synthia': dict(code=51, default_count=9400), 'synth_cityscapes': dict(code=67, default_count=2975)}
IGNORE = 255
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, SKY, PERSON, RIDER, CAR, BUS, MOTORCYCLE, BICYCLE = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)
#: The 16 classes of SYNTHIA -> Cityscapes (mIoU-16).
PRESENT = (ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, SKY, PERSON, RIDER, CAR, BUS,
           MOTORCYCLE, BICYCLE)
#: Cityscapes-like photographic class colours (RGB, 0-1), for the target.
PALETTE = {ROAD: (0.33, 0.32, 0.34), SIDEWALK: (0.55, 0.52, 0.50), BUILDING: (0.45, 0.42, 0.40),
           WALL: (0.58, 0.55, 0.48), FENCE: (0.42, 0.38, 0.33), POLE: (0.30, 0.30, 0.30), LIGHT: (0.20, 0.22, 0.20),
           SIGN: (0.80, 0.72, 0.20), VEGETATION: (0.25, 0.38, 0.18), SKY: (0.62, 0.72, 0.85),
           PERSON: (0.35, 0.25, 0.25), RIDER: (0.50, 0.20, 0.20), CAR: (0.20, 0.24, 0.40), BUS: (0.55, 0.55, 0.30),
           MOTORCYCLE: (0.15, 0.15, 0.20), BICYCLE: (0.30, 0.15, 0.10)}
SKY_DEPTH = 1000.0


def _camera(rng, domain: str, h: int, w: int) -> dict:
    if domain == 'synth_synthia':
        return dict(height=rng.uniform(1.5, 8.0), horizon=rng.uniform(0.05, 0.62) * h, offset=rng.uniform(-3, 3),
                    cx=w / 2 + rng.uniform(-0.15, 0.15) * w, f=rng.uniform(0.8, 1.2) * w / 2)
    return dict(height=1.3, horizon=0.45 * h, offset=0.0, cx=w / 2, f=w / 2)


def _street(rng) -> dict:
    """Road and sidewalk widths and the facade segments along each side: (start, end, class, height)."""
    road, walk = rng.uniform(3.0, 7.0), rng.uniform(1.5, 4.0)
    sides = {}
    for side in (-1, 1):
        z, segments = 2.0, []
        while z < 200:
            length = rng.uniform(8, 30)
            cls = rng.choice([BUILDING, BUILDING, BUILDING, WALL, FENCE, VEGETATION])
            top = {BUILDING: rng.uniform(8, 30), WALL: rng.uniform(1.5, 4), FENCE: rng.uniform(1.0, 2.0),
                   VEGETATION: rng.uniform(4, 10)}[cls]
            segments.append((z, z + length, cls, top))
            z += length
        sides[side] = segments
    return dict(road=road, walk=walk, sides=sides)


def _objects(rng, street: dict) -> list[tuple]:
    """Upright boxes (lateral x, distance z, width, bottom, top, class), in metres."""
    road, walk, out = street['road'], street['walk'], []
    for _ in range(rng.integers(1, 6)):                      # vehicles on the road
        bus = rng.random() < 0.2
        out.append((rng.uniform(-road + 1.2, road - 1.2), rng.uniform(5, 60), 2.5 if bus else 1.8, 0.0,
                    3.2 if bus else 1.5, BUS if bus else CAR))
    for _ in range(rng.integers(0, 6)):                      # pedestrians on the sidewalks
        side = rng.choice([-1, 1])
        out.append((side * rng.uniform(road + 0.3, road + walk - 0.3), rng.uniform(3, 40), 0.55, 0.0,
                    rng.uniform(1.6, 1.9), PERSON))
    for _ in range(rng.integers(0, 3)):                      # riders on two wheels at the road's edge
        x, z = rng.choice([-1, 1]) * rng.uniform(road - 1.5, road - 0.5), rng.uniform(4, 40)
        out.append((x, z, 0.6, 0.0, 1.0, MOTORCYCLE if rng.random() < 0.4 else BICYCLE))
        out.append((x, z - 0.01, 0.5, 0.9, 1.75, RIDER))
    for z in np.arange(rng.uniform(3, 12), 80, rng.uniform(10, 25)):   # poles along the kerb
        x = rng.choice([-1, 1]) * (road + 0.3)
        out.append((x, z, 0.15, 0.0, rng.uniform(3.5, 6.0), POLE))
        kind = rng.choice([SIGN, LIGHT, None])
        if kind == SIGN:
            out.append((x, z - 0.01, 0.7, 2.2, 2.9, SIGN))
        elif kind == LIGHT:
            out.append((x, z - 0.01, 0.35, 3.0, 3.9, LIGHT))
    return out


def layout(rng, domain: str, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (H, W) uint8, depth (H, W) float32 metres, instance ids (H, W) int32) of one scene."""
    cam, street = _camera(rng, domain, h, w), _street(rng)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    dy, dx = ys - cam['horizon'], xs - cam['cx']
    labels = np.full((h, w), SKY, np.uint8)
    depth = np.full((h, w), SKY_DEPTH)
    instance = np.zeros((h, w), np.int32)
    with np.errstate(divide='ignore', invalid='ignore'):
        ground = np.where(dy > 0, cam['height'] * cam['f'] / dy, np.inf)
        lateral = dx * ground / cam['f'] + cam['offset']
    on_ground = np.isfinite(ground) & (ground < SKY_DEPTH)
    labels[on_ground] = np.where(np.abs(lateral[on_ground]) < street['road'], ROAD, SIDEWALK)
    depth[on_ground] = ground[on_ground]
    facade_x = street['road'] + street['walk']
    for side, segments in street['sides'].items():
        with np.errstate(divide='ignore', invalid='ignore'):
            z = (side * facade_x - cam['offset']) * cam['f'] / dx           # distance at which the ray meets the facade
            up = cam['height'] - dy * z / cam['f']                            # height of that point above the ground
        hits = (z > 0) & np.isfinite(z) & (z < depth)
        for k, (start, end, cls, top) in enumerate(segments):
            visible = hits & (z >= start) & (z < end) & (up >= 0) & (up <= top)
            labels[visible], depth[visible], instance[visible] = cls, z[visible], 1000 * (side + 2) + k
    for k, (x, z, width, bottom, top, cls) in enumerate(sorted(_objects(rng, street), key=lambda o: -o[1])):
        col = cam['cx'] + (x - cam['offset']) * cam['f'] / z
        row_top, row_bottom = cam['horizon'] + (cam['height'] - top) * cam['f'] / z, cam['horizon'] + (cam['height'] - bottom) * cam['f'] / z
        half = width / 2 * cam['f'] / z
        box = (np.abs(xs - col) <= max(half, 0.5)) & (ys >= row_top) & (ys <= row_bottom) & (z < depth)
        if cls in (PERSON, RIDER):                           # rounder silhouettes than a box
            box &= np.abs(xs - col) <= max(half, 0.5) * (0.6 + 0.4 * np.clip((ys - row_top) / max(row_bottom - row_top, 1) * 4, 0, 1))
        labels[box], depth[box], instance[box] = cls, z, 10 + k
    return labels, depth.astype(np.float32), instance


def _appearance(rng, domain: str, labels: np.ndarray, depth: np.ndarray, instance: np.ndarray) -> np.ndarray:
    h, w = labels.shape
    image = np.zeros((h, w, 3))
    synthetic = domain == 'synth_synthia'
    for ident in np.unique(instance * 256 + labels):
        part = (instance * 256 + labels) == ident
        cls = int(ident % 256)
        if synthetic:                                        # saturated colour drawn per object
            colour = rng.uniform(0.05, 0.95, 3) * 0.5 + np.array(PALETTE[cls]) * 0.5
        else:                                                # photographic: the class palette, small variation
            colour = np.clip(np.array(PALETTE[cls]) + rng.normal(0, 0.03, 3), 0, 1)
        image[part] = colour
    if synthetic:
        blocks = rng.normal(0, 0.08, (h // 4 + 1, w // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
        image = image * rng.uniform(0.6, 1.3) * rng.uniform(0.85, 1.15, 3) + blocks
    else:
        haze = 1 - np.exp(-depth / rng.uniform(80, 200))
        image = image * (1 - haze[..., None]) + np.array([0.70, 0.72, 0.76]) * haze[..., None]
        yy, xx = np.mgrid[0:h, 0:w]
        image *= (1 - 0.35 * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / 2)[..., None]
        image = uniform_filter1d(image, size=int(rng.integers(1, 4)), axis=1)
        image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def render_sample(domain: str, index: int, h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8 RGB, labels (H, W) uint8 train ids, depth (H, W) float32 m) of image ``index``."""
    if domain not in DOMAINS:
        raise KeyError(f'unknown urban domain {domain!r}; expected one of {sorted(DOMAINS)}')
    rng = np.random.default_rng([seed, DOMAINS[domain]['code'], index])
    labels, depth, instance = layout(rng, domain, h, w)
    image = _appearance(rng, domain, labels, depth, instance)
    if domain == 'synth_cityscapes':                         # the ego vehicle's bonnet: ignored, as in Cityscapes
        bonnet = np.mgrid[0:h, 0:w][0] >= h * 0.92
        labels[bonnet], image[bonnet] = IGNORE, (image[bonnet] * 0.2).astype(np.uint8)
    return image, labels, depth


def generate(domain: str, count: int, h: int, w: int, seed: int = 0) -> dict:
    """``count`` images of ``domain``: images (N, H, W, 3) uint8, labels (N, H, W) uint8, depth (N, H, W) float32."""
    samples = [render_sample(domain, i, h, w, seed) for i in range(count)]
    return {key: np.stack([s[k] for s in samples]) for k, key in enumerate(('images', 'labels', 'depth'))}
