/**
 * The synthetic stain corruption ("irregular ellipse of variable size and random colour") used to train
 * the autoencoders of "Don't skip the skips", reproduced from the authors' code as summarised in
 * docs/reference-facts.md §2 (steps 1..9 below carry the numbers used there).
 *
 * Images are single-channel Float32Array in [0, 1], row-major, height x width. All randomness comes from
 * the Rng passed in, so a stain is a pure function of (image, size, rng state); a training loop passes its
 * own Rng and so draws a fresh stain every time a sample is used.
 *
 * Choices where §2 (or the authors' code) leaves room, or where we deliberately differ:
 * - Image side S = min(height, width), for both semi-axes and for non-square images. (The authors' code
 *   bounds one semi-axis by the width and the other by the height; with a random rotation that split has
 *   no geometric meaning, and their images are square anyway, where both readings agree.)
 *   The bounds use exact integer arithmetic: floor(0.01*S) = floor(S/100), floor(0.12*S) = floor(12*S/100).
 * - S must be at least 9: below that floor(0.12*S) = 0 < 1 = the smallest semi-axis.
 * - Geometry in continuous pixel coordinates where pixel (r, c) has its centre at (r, c). The centre is an
 *   integer pixel, drawn in [m, H-1-m] x [m, W-1-m] with m = max(a, b), so the un-jittered ellipse keeps a
 *   margin of m pixel centres to every border. (The authors draw randint(m, W-m), one pixel further.)
 * - Ellipse: point(t) = centre + R(rotation) (a cos t, b sin t) in (col, row) coordinates, i.e. a lies
 *   along the column axis at rotation 0 and the rotation turns from the column axis towards the row axis.
 * - Perimeter (step 5): generated densely at one point per unit of arc length (len = round(perimeter),
 *   at least 3 points, points exactly uniformly spaced in arc length starting at t = 0, placed by
 *   inverting a fine arc-length table), like the per-pixel perimeter of skimage's ellipse_perimeter the
 *   authors use; then every floor(len/20)-th point is kept (all points when len < 20, as the authors do),
 *   which keeps 20..39 points. Points stay real-valued (the authors' are integer pixels).
 * - Jitter (step 6): k = floor(0.1*(a+b)/2) computed as floor((a+b)/20); the row and column offsets are
 *   integers uniform in [-k, k], so a point moves by up to k*sqrt(2) pixels.
 * - Curve (step 7): points sorted by angle atan2(row, col) around the centre in [0, 2*pi) (a point on the
 *   centre sorts first, as in the authors' clockwiseangle), consecutive duplicates dropped, then a closed
 *   centripetal Catmull-Rom spline (periodic, C1, cubic, alpha = 1/2) through them. The authors use
 *   scipy's interp1d(kind='cubic') on the point index with the first point repeated at the end (a
 *   non-periodic not-a-knot spline); the centripetal form is periodic and never forms cusps or loops
 *   inside a segment, which matters when jitter brings two points close together.
 * - Fill (step 7): the spline sampled at <= 0.25 px spacing, then a scanline fill of that polygon with the
 *   nonzero winding rule at pixel centres (a pixel is in the mask when its centre is inside; along a row
 *   the spans are half-open [x_in, x_out)). cv2.drawContours(thickness=-1) in the authors' code also paints
 *   the outline pixels, so their masks are about half a pixel larger along the border. Guard: if the fill
 *   selects no pixel at all (not observed for S >= 9), the centre pixel alone is the stain.
 * - Stain values (step 8): clip(N(c/255, sd), 0, 1) i.i.d. per mask pixel, drawn in row-major order, with
 *   sd = sqrt(0.05/255) ~= 0.0140 exactly as the authors' random_noise(var=0.05/255). We stay in [0, 1]
 *   (the authors multiply by 255 and store uint8).
 * - Draw order from the Rng: c, a, b, rotation, centre row, centre col, then (row, col) jitter of each kept
 *   point in perimeter order, then one normal per mask pixel.
 */
import { Rng } from '../engine/random.js';

export interface StainParams {
  /** Colour c, an integer in [10, 220] on the 0..255 scale; stain pixels have mean c/255. */
  colour: number;
  /** Semi-axes [a, b] in pixels, integers in stainBounds(height, width). */
  semiAxes: [number, number];
  /** Rotation in radians, in [0, 2*pi). */
  rotation: number;
  /** Centre [row, col], integer pixel coordinates. */
  centre: [number, number];
  /** Jitter amplitude k = floor(0.1*(a+b)/2) in pixels, per coordinate. */
  jitter: number;
}

export interface Stain {
  /** The stained image (a new array; the input is untouched). */
  image: Float32Array;
  /** 1 inside the stain, 0 elsewhere; height x width, row-major. */
  mask: Uint8Array;
  params: StainParams;
}

/** Smallest image side min(height, width) that can hold a stain. */
const MIN_SIDE = 9;
/** Colour range of step 1 (0..255 scale). */
const COLOUR_MIN = 10;
const COLOUR_MAX = 220;
/** Standard deviation of the stain pixels (step 8): the authors' var = 0.05/255. */
const STAIN_SD = Math.sqrt(0.05 / 255);
/** Step 5 keeps about this many perimeter points. */
const KEPT_POINTS = 20;

function checkSize(height: number, width: number, where: string): void {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new RangeError(`${where}: height and width must be positive integers (got ${height}x${width})`);
  }
  if (Math.min(height, width) < MIN_SIDE) {
    throw new RangeError(
      `${where}: image ${height}x${width} is too small for a stain: min(height, width) must be at least ` +
        `${MIN_SIDE} (got ${Math.min(height, width)}; the largest semi-axis floor(0.12*S) would be below 1)`,
    );
  }
}

/**
 * Range of the semi-axes (§2 step 2) for an image of the given size, with S = min(height, width):
 * minAxis = max(floor(0.01*S), 1), maxAxis = floor(0.12*S). Throws when S < 9.
 */
export function stainBounds(height: number, width: number): { minAxis: number; maxAxis: number } {
  checkSize(height, width, 'stainBounds');
  const s = Math.min(height, width);
  return { minAxis: Math.max(Math.floor(s / 100), 1), maxAxis: Math.floor((12 * s) / 100) };
}

type Point = [number, number]; // [row, col]

/** Step 5: perimeter points of the rotated ellipse, one per unit of arc length, in order of t. */
function ellipsePerimeter(a: number, b: number, rotation: number, cr: number, cc: number): Point[] {
  const cosR = Math.cos(rotation);
  const sinR = Math.sin(rotation);
  const at = (t: number): Point => {
    const u = a * Math.cos(t);
    const v = b * Math.sin(t);
    return [cr + u * sinR + v * cosR, cc + u * cosR - v * sinR];
  };
  // Fine arc-length table: cum[j] = length of the arc from t = 0 to t = 2*pi*j/nFine.
  const nFine = 16 * Math.ceil(Math.PI * (a + b)); // ~8 table entries per pixel of perimeter
  const cum = new Float64Array(nFine + 1);
  let prev = at(0);
  for (let j = 1; j <= nFine; j++) {
    const p = at((2 * Math.PI * j) / nFine);
    cum[j] = cum[j - 1] + Math.hypot(p[0] - prev[0], p[1] - prev[1]);
    prev = p;
  }
  const perimeter = cum[nFine];
  const len = Math.max(3, Math.round(perimeter));
  const points: Point[] = [];
  let j = 0;
  for (let i = 0; i < len; i++) {
    const s = (i * perimeter) / len;
    while (j < nFine - 1 && cum[j + 1] <= s) j++;
    const seg = cum[j + 1] - cum[j];
    const f = seg > 0 ? (s - cum[j]) / seg : 0;
    points.push(at((2 * Math.PI * (j + f)) / nFine));
  }
  return points;
}

/** Angle of a point around the centre in [0, 2*pi); a point on the centre gets -pi (sorts first). */
function angleAround(p: Point, cr: number, cc: number): number {
  const dr = p[0] - cr;
  const dc = p[1] - cc;
  if (dr === 0 && dc === 0) return -Math.PI;
  const ang = Math.atan2(dr, dc);
  return ang < 0 ? ang + 2 * Math.PI : ang;
}

/** Step 7 (curve): closed centripetal Catmull-Rom spline through the points, sampled at <= 0.25 px. */
function closedCatmullRom(pts: Point[]): Point[] {
  const n = pts.length;
  if (n < 3) return pts.slice();
  const out: Point[] = [];
  const knot = (p: Point, q: Point): number => Math.sqrt(Math.hypot(q[0] - p[0], q[1] - p[1])); // alpha = 1/2
  for (let i = 0; i < n; i++) {
    const p0 = pts[(i - 1 + n) % n];
    const p1 = pts[i];
    const p2 = pts[(i + 1) % n];
    const p3 = pts[(i + 2) % n];
    const t0 = 0;
    const t1 = t0 + knot(p0, p1);
    const t2 = t1 + knot(p1, p2);
    const t3 = t2 + knot(p2, p3);
    const steps = Math.max(4, Math.ceil(4 * Math.hypot(p2[0] - p1[0], p2[1] - p1[1])));
    for (let s = 0; s < steps; s++) {
      const t = t1 + ((t2 - t1) * s) / steps;
      const q: Point = [0, 0];
      for (let d = 0; d < 2; d++) {
        // Barry-Goldman pyramid (all knot intervals are > 0: consecutive points are distinct).
        const a1 = ((t1 - t) * p0[d] + (t - t0) * p1[d]) / (t1 - t0);
        const a2 = ((t2 - t) * p1[d] + (t - t1) * p2[d]) / (t2 - t1);
        const a3 = ((t3 - t) * p2[d] + (t - t2) * p3[d]) / (t3 - t2);
        const b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0);
        const b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1);
        q[d] = ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1);
      }
      out.push(q);
    }
  }
  return out;
}

/** Filled mask and the number of its pixels. */
interface Fill {
  mask: Uint8Array;
  count: number;
  /** Rows rowLo..rowHi hold every mask pixel (empty range when count is 0). */
  rowLo: number;
  rowHi: number;
}

/** Step 7 (fill): nonzero-rule scanline fill of a closed polygon at pixel centres, clipped to the image. */
function fillPolygon(poly: Point[], height: number, width: number): Fill {
  const mask = new Uint8Array(height * width);
  const fill: Fill = { mask, count: 0, rowLo: height, rowHi: -1 };
  const n = poly.length;
  if (n < 3) return fill;
  // Crossings of every edge with the pixel-centre rows it spans, bucketed by row. Half-open rule in the
  // row coordinate (rows r with min <= r < max), so a vertex lying on a row is counted once.
  const crossings: ({ x: number; dir: number }[] | undefined)[] = new Array(height);
  for (let i = 0; i < n; i++) {
    const p = poly[i];
    const q = poly[(i + 1) % n];
    if (p[0] === q[0]) continue;
    const dir = q[0] > p[0] ? 1 : -1;
    const lo = Math.max(0, Math.ceil(Math.min(p[0], q[0])));
    const hi = Math.min(height - 1, Math.ceil(Math.max(p[0], q[0])) - 1);
    for (let r = lo; r <= hi; r++) {
      (crossings[r] ??= []).push({ x: p[1] + ((r - p[0]) / (q[0] - p[0])) * (q[1] - p[1]), dir });
    }
  }
  for (let r = 0; r < height; r++) {
    const row = crossings[r];
    if (row === undefined) continue;
    row.sort((u, v) => u.x - v.x);
    let winding = 0;
    let xIn = 0;
    for (const { x, dir } of row) {
      const before = winding;
      winding += dir;
      if (before === 0 && winding !== 0) {
        xIn = x;
      } else if (before !== 0 && winding === 0) {
        const cStart = Math.max(0, Math.ceil(xIn));
        const cEnd = Math.min(width - 1, Math.ceil(x) - 1);
        for (let c = cStart; c <= cEnd; c++) {
          if (mask[r * width + c] === 0) fill.count++;
          mask[r * width + c] = 1;
        }
        if (cEnd >= cStart) {
          fill.rowLo = Math.min(fill.rowLo, r);
          fill.rowHi = Math.max(fill.rowHi, r);
        }
      }
    }
  }
  return fill;
}

/**
 * Add one stain (docs/reference-facts.md §2) to a single-channel image in [0, 1], height x width row-major.
 * Returns the stained copy, the binary mask and the drawn parameters; `image` itself is not modified.
 * Throws a RangeError when min(height, width) < 9 or when image.length !== height*width.
 */
export function addStain(image: Float32Array, height: number, width: number, rng: Rng): Stain {
  checkSize(height, width, 'addStain');
  if (image.length !== height * width) {
    throw new RangeError(`addStain: image has ${image.length} pixels, expected ${height}x${width} = ${height * width}`);
  }
  const { minAxis, maxAxis } = stainBounds(height, width);

  // 1. Colour c, integer uniform in [10, 220].
  const colour = rng.int(COLOUR_MIN, COLOUR_MAX);
  // 2. Semi-axes a, b, each integer uniform in [max(floor(0.01*S), 1), floor(0.12*S)], independently.
  const a = rng.int(minAxis, maxAxis);
  const b = rng.int(minAxis, maxAxis);
  // 3. Rotation uniform in [0, 2*pi).
  const rotation = rng.uniform(0, 2 * Math.PI);
  // 4. Centre uniform with a margin m = max(a, b) from every border (integer pixel).
  const m = Math.max(a, b);
  const cr = rng.int(m, height - 1 - m);
  const cc = rng.int(m, width - 1 - m);

  // 5. Dense perimeter (one point per unit of arc length); keep every floor(len/20)-th point.
  const perimeter = ellipsePerimeter(a, b, rotation, cr, cc);
  const step = perimeter.length < KEPT_POINTS ? 1 : Math.floor(perimeter.length / KEPT_POINTS);
  const kept: Point[] = [];
  for (let i = 0; i < perimeter.length; i += step) kept.push(perimeter[i]);

  // 6. Jitter each kept point's row and column by an integer uniform in [-k, k], k = floor(0.1*(a+b)/2).
  const k = Math.floor((a + b) / 20);
  for (const p of kept) {
    p[0] += rng.int(-k, k);
    p[1] += rng.int(-k, k);
  }

  // 7. Sort by angle around the centre, close the loop (drop repeated points), interpolate a smooth
  //    closed cubic curve through the points and fill it -> binary mask.
  const sorted = kept
    .map((p) => ({ p, ang: angleAround(p, cr, cc) }))
    .sort((u, v) => u.ang - v.ang)
    .map((e) => e.p);
  const loop: Point[] = [];
  for (const p of sorted) {
    const last = loop[loop.length - 1];
    if (last === undefined || last[0] !== p[0] || last[1] !== p[1]) loop.push(p);
  }
  while (loop.length > 1 && loop[0][0] === loop[loop.length - 1][0] && loop[0][1] === loop[loop.length - 1][1]) {
    loop.pop();
  }
  const fill = fillPolygon(closedCatmullRom(loop), height, width);
  const mask = fill.mask;
  if (fill.count === 0) {
    // Guard, see the header.
    mask[cr * width + cc] = 1;
    fill.rowLo = fill.rowHi = cr;
  }

  // 8. Stain pixels clip(N(c/255, sd), 0, 1), i.i.d. per mask pixel (row-major draw order).
  // 9. Hard replacement: x*(1-mask) + stain*mask.
  const out = new Float32Array(image);
  const mean = colour / 255;
  for (let i = fill.rowLo * width; i < (fill.rowHi + 1) * width; i++) {
    if (mask[i] === 1) out[i] = Math.min(1, Math.max(0, rng.normal(mean, STAIN_SD)));
  }

  return { image: out, mask, params: { colour, semiAxes: [a, b], rotation, centre: [cr, cc], jitter: k } };
}
