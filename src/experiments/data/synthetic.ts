/**
 * A built-in synthetic data set in the MVTec AD layout (see mvtec.ts), for machines where MVTec AD itself
 * cannot be downloaded. Pure TypeScript, deterministic from a seed: the same seed and options give
 * byte-identical files.
 *
 * Categories (SYNTHETIC_CATEGORIES):
 * - textures: 'woven' (crossing threads in a plain weave, with small random phase / frequency variation,
 *   a slight waviness and noise), 'noise' (smoothed random noise at two scales, each normalised to a fixed
 *   power, so the spectrum is the same from image to image), 'tiles' (a regular grid of tiles with grout
 *   lines, per-tile brightness, mottled surface, random offset of the grid);
 * - objects, centred on a plain background with pose (rotation, small translation) and lighting (brightness
 *   gradient, global gain) variation: 'disc' (a machined disc with a central hole and six bolt holes),
 *   'nut' (a dark hexagonal nut with a chamfer and a threaded hole, on a light background).
 *
 * Defect kinds (DEFECT_KINDS), every category has all five, none of them an ellipse stain (the stain is the
 * training corruption, so the test defects must differ from it):
 * - 'scratch': a thin bright or dark curved line (a quadratic Bezier curve, antialiased);
 * - 'hole': a dark irregular blob with a bright rim;
 * - 'cut': on objects a missing wedge at the rim (the background shows through); on textures a thin
 *   wedge-shaped slit, dark, that breaks the pattern;
 * - 'contamination': an irregular patch of a foreign (striped, speckled) texture of another brightness;
 * - 'colour': an irregular spot whose intensity is shifted (away from the local mean).
 * On objects every defect is confined to the object (its coverage > 0.5; the cut to where the object was).
 * Each defect image is test/<kind>/NNN.png and its mask ground_truth/<kind>/NNN_mask.png (0/255), which marks
 * exactly the pixels whose 8-bit value the defect changed (as written; the gray value, of which the RGB tint
 * below is a function), so the mask is the set of pixels where the defect image differs from its clean image.
 *
 * Files: 8-bit gray PNGs, except the 'tiles' category, whose images are written as 8-bit RGB PNGs (a warm tint
 * whose BT.601 luminance is the gray image within 0.006) so that the loader's RGB path is exercised as with
 * the real MVTec AD, where most categories are RGB. Masks are always gray. Written through png.ts, atomically.
 *
 * Randomness comes only from the project's Rng: each image has its own Rng seeded from a hash of
 * (seed, category, split, label, index), so an image does not depend on how many others are generated.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../engine/random.js';
import { makeDirs, writeFileAtomic } from '../../engine/io/atomic.js';
import { writeGrayPng, writeRgbPng } from './png.js';

export type SyntheticKind = 'texture' | 'object';

export const SYNTHETIC_CATEGORIES: { name: string; kind: SyntheticKind; rgb?: boolean }[] = [
  { name: 'woven', kind: 'texture' },
  { name: 'noise', kind: 'texture' },
  { name: 'tiles', kind: 'texture', rgb: true },
  { name: 'disc', kind: 'object' },
  { name: 'nut', kind: 'object' },
];

export type DefectKind = 'scratch' | 'hole' | 'cut' | 'contamination' | 'colour';

export const DEFECT_KINDS: readonly DefectKind[] = ['scratch', 'hole', 'cut', 'contamination', 'colour'];

export interface GenerateOptions {
  /** Names from SYNTHETIC_CATEGORIES (default: all). */
  categories?: string[];
  /** Image side in pixels (default 128; at least 16). */
  size?: number;
  /** Images in train/good (default 80). */
  trainCount?: number;
  /** Images in test/good (default 10). */
  testGoodCount?: number;
  /** Images per defect kind in test/<kind> (default 5). */
  testDefectCount?: number;
  /** Seed of everything (default 0). */
  seed?: number;
}

/** One rendered image. */
export interface Scene {
  size: number;
  /** The image, size x size, values in [0, 1]. */
  image: Float32Array;
  /** Objects: coverage of the object in [0, 1] per pixel; textures: null. */
  foreground: Float32Array | null;
  /** Objects: the image as it would be without the object (lit, with noise); textures: null. */
  background: Float32Array | null;
  /** Objects: centre and outer radius of the object, in pixels. */
  centre?: { x: number; y: number; radius: number };
}

const MARKER = '.skipgrad-synthetic.json';

// ---------------------------------------------------------------------------------------------------------
// Small helpers

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);
/** The 8-bit value a [0, 1] sample is written as (png.ts rounds the same way). */
const to8 = (v: number): number => Math.round(clamp01(v) * 255);

/** sqrt(a^2 + b^2) (Math.hypot is much slower in V8). */
const dist2 = (a: number, b: number): number => Math.sqrt(a * a + b * b);

/** FNV-1a of a string, 32 bits: turns (seed, category, split, label, index) into an Rng seed. */
function hashSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  const s = parts.join('\u0000');
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** One pass of a periodic box blur of radius r (r < S) along rows (horizontal) or columns. */
function boxBlurPass(src: Float32Array, dst: Float32Array, S: number, r: number, horizontal: boolean, line: Float64Array): void {
  const norm = 1 / (2 * r + 1);
  const step = horizontal ? 1 : S;
  const stride = horizontal ? S : 1;
  for (let l = 0; l < S; l++) {
    const base = l * stride;
    // line[k + r] = src at position k (periodic), k in [-r, S + r].
    for (let k = -r; k < S + r + 1; k++) line[k + r] = src[base + (((k % S) + S) % S) * step];
    let acc = 0;
    for (let k = 0; k <= 2 * r; k++) acc += line[k];
    for (let k = 0; k < S; k++) {
      dst[base + k * step] = acc * norm;
      acc += line[k + 2 * r + 1] - line[k];
    }
  }
}

let gaussTable: Float32Array | null = null;

/**
 * n samples of N(0, sd^2) noise, fast: two 16-bit indices per Rng draw into a fixed table of 65536 standard
 * normal values (made once from Rng(0x5eed)). Used for per-pixel noise, where Box-Muller per pixel dominated
 * the generation time.
 */
function noiseField(rng: Rng, n: number, sd: number): Float32Array {
  if (!gaussTable) {
    const r = new Rng(0x5eed);
    gaussTable = new Float32Array(65536);
    for (let i = 0; i < gaussTable.length; i++) gaussTable[i] = r.normal();
  }
  const t = gaussTable;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = rng.nextUint32();
    out[i] = sd * t[u & 0xffff];
    if (i + 1 < n) out[i + 1] = sd * t[u >>> 16];
  }
  return out;
}

/** White Gaussian noise blurred periodically (3 box passes ~ a Gaussian of sd ~ r), normalised to mean 0, sd 1. */
function smoothNoise(rng: Rng, S: number, r: number): Float32Array {
  const a = noiseField(rng, S * S, 1);
  if (r >= 1) {
    const b = new Float32Array(S * S);
    const line = new Float64Array(S + 2 * r + 1);
    for (let pass = 0; pass < 3; pass++) {
      boxBlurPass(a, b, S, r, true, line);
      boxBlurPass(b, a, S, r, false, line);
    }
  }
  let mean = 0;
  for (let i = 0; i < a.length; i++) mean += a[i];
  mean /= a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i] - mean) ** 2;
  const sd = Math.sqrt(v / a.length) || 1;
  for (let i = 0; i < a.length; i++) a[i] = (a[i] - mean) / sd;
  return a;
}

/** Multiplicative lighting: global gain times a linear brightness gradient in a random direction. */
function lightingField(rng: Rng, S: number, gainSpread: number, gradient: number): Float32Array {
  const gain = 1 + rng.uniform(-gainSpread, gainSpread);
  const dir = rng.uniform(0, 2 * Math.PI);
  const g = rng.uniform(0, gradient);
  const c = Math.cos(dir);
  const s = Math.sin(dir);
  const out = new Float32Array(S * S);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const u = (x + 0.5) / S - 0.5;
      const v = (y + 0.5) / S - 0.5;
      out[y * S + x] = gain * (1 + g * (u * c + v * s));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Textures

function renderWoven(rng: Rng, S: number, cat: Rng): Scene {
  // Category constants (the same for every image of a data set): threads per image side.
  const threads = 12 + cat.int(0, 4);
  const fx = threads * (1 + rng.uniform(-0.03, 0.03));
  const fy = threads * (1 + rng.uniform(-0.03, 0.03));
  const ox = rng.uniform(0, 2);
  const oy = rng.uniform(0, 2);
  const waveAmp = rng.uniform(0.03, 0.08);
  const waveFreq = rng.uniform(1, 2.5);
  const wavePhase = rng.uniform(0, 2 * Math.PI);
  const gain = 1 + rng.uniform(-0.04, 0.04);
  const img = new Float32Array(S * S);
  const noise = noiseField(rng, S * S, 0.025);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const u = (x + 0.5) / S;
      const v = (y + 0.5) / S;
      const tx = u * fx + ox + waveAmp * Math.sin(2 * Math.PI * waveFreq * v + wavePhase);
      const ty = v * fy + oy + waveAmp * Math.sin(2 * Math.PI * waveFreq * u + wavePhase + 1.3);
      const ix = Math.floor(tx);
      const iy = Math.floor(ty);
      const ax = tx - ix;
      const ay = ty - iy;
      // Plain weave: the horizontal thread is on top where ix + iy is even, the vertical one elsewhere.
      const horizontalOnTop = ((ix + iy) & 1) === 0;
      const across = horizontalOnTop ? ay : ax;
      const along = horizontalOnTop ? ax : ay;
      const profile = Math.pow(Math.sin(Math.PI * across), 0.7) * (0.8 + 0.2 * Math.sin(Math.PI * along));
      img[y * S + x] = clamp01(gain * (0.22 + 0.55 * profile) + noise[y * S + x]);
    }
  }
  return { size: S, image: img, foreground: null, background: null };
}

function renderNoise(rng: Rng, S: number, cat: Rng): Scene {
  const fineR = Math.max(1, Math.round(S / 96));
  const coarseR = Math.max(2, Math.round(S / 20));
  const fineAmp = 0.09 + cat.uniform(0, 0.02);
  const coarseAmp = 0.06 + cat.uniform(0, 0.02);
  const fine = smoothNoise(rng, S, fineR);
  const coarse = smoothNoise(rng, S, coarseR);
  const base = 0.5 + rng.uniform(-0.03, 0.03);
  const noise = noiseField(rng, S * S, 0.01);
  const img = new Float32Array(S * S);
  for (let i = 0; i < img.length; i++) img[i] = clamp01(base + fineAmp * fine[i] + coarseAmp * coarse[i] + noise[i]);
  return { size: S, image: img, foreground: null, background: null };
}

function renderTiles(rng: Rng, S: number, cat: Rng): Scene {
  const perSide = 4 + cat.int(0, 1);
  const P = S / perSide;
  const grout = Math.max(1.5, 0.07 * P);
  const ox = rng.uniform(0, P);
  const oy = rng.uniform(0, P);
  const n = perSide + 2;
  const tileLevel = new Float32Array(n * n);
  for (let i = 0; i < tileLevel.length; i++) tileLevel[i] = 0.62 + rng.normal(0, 0.05);
  const mottle = smoothNoise(rng, S, Math.max(1, Math.round(S / 32)));
  const light = lightingField(rng, S, 0.03, 0.1);
  const noise = noiseField(rng, S * S, 0.012);
  const img = new Float32Array(S * S);
  for (let y = 0; y < S; y++) {
    const py = y + 0.5 + oy;
    const iy = Math.floor(py / P);
    const my = py - iy * P;
    const dy = Math.min(my, P - my);
    const cy = clamp01(dy - grout / 2 + 0.5);
    for (let x = 0; x < S; x++) {
      const px = x + 0.5 + ox;
      const ix = Math.floor(px / P);
      const mx = px - ix * P;
      const dx = Math.min(mx, P - mx);
      const cx = clamp01(dx - grout / 2 + 0.5);
      const cover = cx * cy;
      // Bevel: tiles darken slightly towards their edges.
      const edge = Math.min(dx, dy) - grout / 2;
      const bevel = 1 - 0.12 * Math.exp(-Math.max(0, edge) / Math.max(1, 0.04 * P));
      const tile = tileLevel[(iy % n) * n + (ix % n)] * bevel + 0.035 * mottle[y * S + x];
      const groutV = 0.3;
      const i = y * S + x;
      img[i] = clamp01(light[i] * (groutV * (1 - cover) + tile * cover) + noise[i]);
    }
  }
  return { size: S, image: img, foreground: null, background: null };
}

// ---------------------------------------------------------------------------------------------------------
// Objects

interface ObjectParts {
  /** The object's brightness per pixel (before lighting and noise), meaningful where foreground > 0. */
  surface: Float32Array;
  /** The object's coverage in [0, 1] per pixel (antialiased edges). */
  foreground: Float32Array;
  /** Its outer radius (inradius for the nut), in pixels. */
  radius: number;
}

function composeObject(
  rng: Rng,
  S: number,
  bgLevel: number,
  parts: (cx: number, cy: number) => ObjectParts,
): Scene {
  const cx = S / 2 + rng.uniform(-0.03, 0.03) * S;
  const cy = S / 2 + rng.uniform(-0.03, 0.03) * S;
  const { surface, foreground, radius } = parts(cx, cy);
  const light = lightingField(rng, S, 0.05, 0.3);
  const image = new Float32Array(S * S);
  const background = new Float32Array(S * S);
  // One sensor-noise sample per pixel, shared by the background and the object.
  const noise = noiseField(rng, S * S, 0.011);
  for (let i = 0; i < image.length; i++) {
    const b = clamp01(light[i] * bgLevel + noise[i]);
    const s = clamp01(light[i] * surface[i] + noise[i]);
    background[i] = b;
    const f = foreground[i];
    image[i] = b * (1 - f) + s * f;
  }
  return { size: S, image, foreground, background, centre: { x: cx, y: cy, radius } };
}

function renderDisc(rng: Rng, S: number): Scene {
  const theta = rng.uniform(0, 2 * Math.PI);
  const R = 0.36 * S;
  const rHole = 0.12 * S;
  const rBoltRing = 0.275 * S;
  const rBolt = 0.028 * S;
  const surfLevel = 0.62 + rng.uniform(-0.03, 0.03);
  return composeObject(rng, S, 0.12, (cx, cy) => {
    const surface = new Float32Array(S * S);
    const foreground = new Float32Array(S * S);
    const bolts: [number, number][] = [];
    for (let k = 0; k < 6; k++) {
      const a = theta + (k * Math.PI) / 3;
      bolts.push([cx + rBoltRing * Math.cos(a), cy + rBoltRing * Math.sin(a)]);
    }
    const ringPeriod = Math.max(2, S / 40);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        const rho = dist2(dx, dy);
        let f = clamp01(R - rho + 0.5) * clamp01(rho - rHole + 0.5);
        if (f > 0 && Math.abs(rho - rBoltRing) < rBolt + 1) {
          for (const [bx, by] of bolts) f *= clamp01(dist2(x + 0.5 - bx, y + 0.5 - by) - rBolt + 0.5);
        }
        const i = y * S + x;
        foreground[i] = f;
        // Machined concentric rings, a raised collar around the hole, a darker outer lip.
        let s = surfLevel + 0.03 * Math.sin((2 * Math.PI * rho) / ringPeriod);
        if (rho > 0.16 * S && rho < 0.21 * S) s += 0.14;
        if (rho > 0.33 * S) s -= 0.12;
        surface[i] = s;
      }
    }
    return { surface, foreground, radius: R };
  });
}

function renderNut(rng: Rng, S: number): Scene {
  const theta = rng.uniform(0, 2 * Math.PI);
  const R = 0.38 * S; // circumradius of the hexagon
  const ri = R * Math.cos(Math.PI / 6); // inradius
  const rHole = 0.16 * S;
  const chamferStart = 0.9 * ri;
  const threadPeriod = Math.max(2, S / 64);
  const faceLevel = 0.45 + rng.uniform(-0.03, 0.03);
  const normals: [number, number][] = [0, 1, 2].map((k) => [Math.cos(theta + (k * Math.PI) / 3), Math.sin(theta + (k * Math.PI) / 3)]);
  return composeObject(rng, S, 0.82, (cx, cy) => {
    const surface = new Float32Array(S * S);
    const foreground = new Float32Array(S * S);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        const rho = dist2(dx, dy);
        let hexd = 0;
        for (const [nx, ny] of normals) hexd = Math.max(hexd, Math.abs(dx * nx + dy * ny));
        const i = y * S + x;
        foreground[i] = clamp01(ri - hexd + 0.5) * clamp01(rho - rHole + 0.5);
        let s = faceLevel;
        if (rho > chamferStart) s -= 0.22 * clamp01((rho - chamferStart) / (R - chamferStart)); // chamfered corners
        if (rho < rHole + 0.045 * S) s = 0.22 + 0.08 * Math.sin((2 * Math.PI * rho) / threadPeriod); // thread
        if (ri - hexd < 0.02 * S) s += 0.1; // bright edge
        surface[i] = s;
      }
    }
    return { surface, foreground, radius: ri };
  });
}

/** Render a defect-free image of a category. `cat` draws the category's constants and must be seeded the same for every image. */
export function renderGood(category: string, size: number, rng: Rng, cat: Rng = new Rng(0)): Scene {
  switch (category) {
    case 'woven':
      return renderWoven(rng, size, cat);
    case 'noise':
      return renderNoise(rng, size, cat);
    case 'tiles':
      return renderTiles(rng, size, cat);
    case 'disc':
      return renderDisc(rng, size);
    case 'nut':
      return renderNut(rng, size);
    default:
      throw new Error(`synthetic: unknown category '${category}' (known: ${SYNTHETIC_CATEGORIES.map((c) => c.name).join(', ')})`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Defects

/** Where a defect may change pixels: the object (coverage > 0.5) for objects, everywhere for textures. */
function canvasOf(scene: Scene): Uint8Array {
  const n = scene.size * scene.size;
  const c = new Uint8Array(n);
  if (!scene.foreground) return c.fill(1);
  for (let i = 0; i < n; i++) c[i] = scene.foreground[i] > 0.5 ? 1 : 0;
  return c;
}

/** A defect centre: anywhere `margin` from the borders for textures; on the object, `margin` inside it, for objects. */
function pickCentre(scene: Scene, rng: Rng, margin: number): { x: number; y: number } {
  const S = scene.size;
  const m = Math.min(margin, S / 2 - 1);
  const fg = scene.foreground;
  if (!fg) return { x: rng.uniform(m, S - m), y: rng.uniform(m, S - m) };
  const solid = (x: number, y: number): boolean => {
    const xi = Math.floor(x);
    const yi = Math.floor(y);
    return xi >= 0 && yi >= 0 && xi < S && yi < S && fg[yi * S + xi] > 0.999;
  };
  const probe = Math.min(margin, 0.06 * S);
  for (let tries = 0; tries < 2000; tries++) {
    const x = rng.uniform(0, S);
    const y = rng.uniform(0, S);
    let ok = solid(x, y);
    for (let k = 0; ok && k < 8; k++) {
      const a = (k * Math.PI) / 4;
      ok = solid(x + probe * Math.cos(a), y + probe * Math.sin(a));
    }
    if (ok) return { x, y };
  }
  const solidIdx: number[] = [];
  for (let i = 0; i < fg.length; i++) if (fg[i] > 0.999) solidIdx.push(i);
  const i = solidIdx.length ? solidIdx[rng.int(0, solidIdx.length - 1)] : (S * S) >> 1;
  return { x: (i % S) + 0.5, y: Math.floor(i / S) + 0.5 };
}

/** An irregular closed shape: radius r0 * (1 + sum_k a_k cos(k phi + p_k)), k = 2..kMax. */
function blobShape(rng: Rng, r0: number, kMax: number, amp: number): (phi: number) => number {
  const terms: [number, number, number][] = [];
  for (let k = 2; k <= kMax; k++) terms.push([k, rng.uniform(0, amp), rng.uniform(0, 2 * Math.PI)]);
  return (phi) => {
    let f = 1;
    for (const [k, a, p] of terms) f += a * Math.cos(k * phi + p);
    return r0 * f;
  };
}

/** The bounding box of a disc of radius r around (x, y), clipped to the image. */
function box(S: number, x: number, y: number, r: number): [number, number, number, number] {
  return [
    Math.max(0, Math.floor(x - r - 1)),
    Math.min(S - 1, Math.ceil(x + r + 1)),
    Math.max(0, Math.floor(y - r - 1)),
    Math.min(S - 1, Math.ceil(y + r + 1)),
  ];
}

function localMean(img: Float32Array, S: number, x: number, y: number, r: number): number {
  const [x0, x1, y0, y1] = box(S, x, y, r);
  let s = 0;
  let n = 0;
  for (let yy = y0; yy <= y1; yy++) for (let xx = x0; xx <= x1; xx++) (s += img[yy * S + xx]), n++;
  return n ? s / n : 0.5;
}

/** Apply a defect to a rendered scene: the defective image and the 0/1 mask of the pixels it changed. */
export function applyDefect(scene: Scene, kind: DefectKind, rng: Rng): { image: Float32Array; mask: Uint8Array } {
  const S = scene.size;
  const src = scene.image;
  const out = Float32Array.from(src);
  const canvas = canvasOf(scene);
  const touched = new Uint8Array(S * S);
  /** Set pixel i to v where the canvas allows it. */
  const set = (i: number, v: number): void => {
    if (!canvas[i]) return;
    out[i] = clamp01(v);
    touched[i] = 1;
  };

  switch (kind) {
    case 'scratch': {
      const L = rng.uniform(0.15, 0.35) * S;
      const c = pickCentre(scene, rng, 0.05 * S);
      const dir = rng.uniform(0, Math.PI);
      const ux = Math.cos(dir);
      const uy = Math.sin(dir);
      const bend = rng.uniform(-0.3, 0.3) * L;
      const p0 = [c.x - (ux * L) / 2, c.y - (uy * L) / 2];
      const p2 = [c.x + (ux * L) / 2, c.y + (uy * L) / 2];
      const p1 = [c.x - uy * bend, c.y + ux * bend];
      const hw = Math.max(0.7, (S / 256) * rng.uniform(0.8, 1.6));
      const bright = rng.next() < 0.5;
      const target = bright ? 0.96 : 0.04;
      const dmin = new Float32Array(S * S).fill(Infinity);
      const steps = Math.ceil(L * 4) + 1;
      for (let k = 0; k <= steps; k++) {
        const t = k / steps;
        const a = (1 - t) * (1 - t);
        const b = 2 * (1 - t) * t;
        const d = t * t;
        const qx = a * p0[0] + b * p1[0] + d * p2[0];
        const qy = a * p0[1] + b * p1[1] + d * p2[1];
        const [x0, x1, y0, y1] = box(S, qx, qy, hw + 1);
        for (let y = y0; y <= y1; y++) {
          for (let x = x0; x <= x1; x++) {
            const dist = dist2(x + 0.5 - qx, y + 0.5 - qy);
            const i = y * S + x;
            if (dist < dmin[i]) dmin[i] = dist;
          }
        }
      }
      for (let i = 0; i < dmin.length; i++) {
        if (dmin[i] === Infinity) continue;
        const w = clamp01(hw + 0.5 - dmin[i]);
        if (w < 0.25) continue;
        set(i, src[i] + w * 0.8 * (target - src[i]));
      }
      break;
    }
    case 'hole': {
      const r0 = Math.max(2, rng.uniform(0.025, 0.06) * S);
      const c = pickCentre(scene, rng, r0 * 1.5);
      const shape = blobShape(rng, r0, 4, 0.12);
      const rim = Math.max(1, 0.3 * r0);
      const [x0, x1, y0, y1] = box(S, c.x, c.y, r0 * 1.5 + rim);
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - c.x;
          const dy = y + 0.5 - c.y;
          const rho = dist2(dx, dy);
          const rb = shape(Math.atan2(dy, dx));
          const i = y * S + x;
          if (rho < rb) set(i, 0.03 + 0.05 * (rho / rb) + rng.normal(0, 0.01));
          else if (rho < rb + rim) set(i, src[i] + (0.6 - 0.3 * ((rho - rb) / rim)) * (0.92 - src[i]));
        }
      }
      break;
    }
    case 'cut': {
      if (scene.foreground && scene.background && scene.centre) {
        // A missing wedge at the rim of the object: the background shows where the object was.
        const { x: ox, y: oy, radius } = scene.centre;
        const phi = rng.uniform(0, 2 * Math.PI);
        const ux = Math.cos(phi);
        const uy = Math.sin(phi);
        const apexR = rng.uniform(0.55, 0.75) * radius;
        const ax = ox + apexR * ux;
        const ay = oy + apexR * uy;
        const half = (rng.uniform(15, 30) * Math.PI) / 180;
        const cosHalf = Math.cos(half);
        const fg = scene.foreground;
        for (let y = 0; y < S; y++) {
          for (let x = 0; x < S; x++) {
            const dx = x + 0.5 - ax;
            const dy = y + 0.5 - ay;
            const d = dist2(dx, dy);
            const i = y * S + x;
            if (d > 0 && (dx * ux + dy * uy) / d > cosHalf && fg[i] > 0) {
              out[i] = scene.background[i];
              touched[i] = 1;
            }
          }
        }
      } else {
        // A thin wedge-shaped slit through the texture, dark where it opens.
        const L = rng.uniform(0.15, 0.3) * S;
        const wb = Math.max(1.5, rng.uniform(0.015, 0.04) * S);
        const c = pickCentre(scene, rng, L / 2 + wb);
        const dir = rng.uniform(0, 2 * Math.PI);
        const ux = Math.cos(dir);
        const uy = Math.sin(dir);
        const ax = c.x - (ux * L) / 2;
        const ay = c.y - (uy * L) / 2;
        const [x0, x1, y0, y1] = box(S, c.x, c.y, L / 2 + wb);
        for (let y = y0; y <= y1; y++) {
          for (let x = x0; x <= x1; x++) {
            const dx = x + 0.5 - ax;
            const dy = y + 0.5 - ay;
            const along = dx * ux + dy * uy;
            const across = Math.abs(-dx * uy + dy * ux);
            if (along < 0 || along > L) continue;
            const width = 0.5 + (wb - 0.5) * (along / L);
            if (across < width) set(y * S + x, 0.06 + rng.normal(0, 0.015));
          }
        }
      }
      break;
    }
    case 'contamination': {
      const r0 = Math.max(3, rng.uniform(0.04, 0.09) * S);
      const c = pickCentre(scene, rng, r0 * 1.2);
      const shape = blobShape(rng, r0, 6, 0.16);
      const mean = localMean(src, S, c.x, c.y, r0);
      const level = mean > 0.5 ? rng.uniform(0.08, 0.25) : rng.uniform(0.75, 0.92);
      const stripeDir = rng.uniform(0, Math.PI);
      const sx = Math.cos(stripeDir);
      const sy = Math.sin(stripeDir);
      const period = rng.uniform(2.5, 4.5);
      const [x0, x1, y0, y1] = box(S, c.x, c.y, r0 * 1.8);
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - c.x;
          const dy = y + 0.5 - c.y;
          if (dist2(dx, dy) >= shape(Math.atan2(dy, dx))) continue;
          const i = y * S + x;
          const foreign = level + 0.1 * Math.sin((2 * Math.PI * (dx * sx + dy * sy)) / period) + rng.normal(0, 0.05);
          set(i, src[i] + 0.9 * (foreign - src[i]));
        }
      }
      break;
    }
    case 'colour': {
      const r0 = Math.max(3, rng.uniform(0.05, 0.1) * S);
      const c = pickCentre(scene, rng, r0 * 1.1);
      const shape = blobShape(rng, r0, 4, 0.08);
      const mean = localMean(src, S, c.x, c.y, r0);
      const delta = (mean > 0.5 ? -1 : 1) * rng.uniform(0.15, 0.3);
      const [x0, x1, y0, y1] = box(S, c.x, c.y, r0 * 1.4);
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - c.x;
          const dy = y + 0.5 - c.y;
          const rb = shape(Math.atan2(dy, dx));
          const rho = dist2(dx, dy);
          if (rho >= rb) continue;
          const w = 1 - 0.4 * (rho / rb) ** 2;
          set(y * S + x, src[y * S + x] + delta * w);
        }
      }
      break;
    }
    default:
      throw new Error(`synthetic: unknown defect kind '${kind as string}' (known: ${DEFECT_KINDS.join(', ')})`);
  }

  // The mask is exactly the set of pixels whose 8-bit value (as written) changed.
  const mask = new Uint8Array(S * S);
  for (let k = 0; k < mask.length; k++) mask[k] = touched[k] && to8(out[k]) !== to8(src[k]) ? 1 : 0;
  return { image: out, mask };
}

// ---------------------------------------------------------------------------------------------------------
// Samples and the data set on disk

export type Split = 'train' | 'test';

/**
 * Render one sample of the data set exactly as generateDataset writes it (before 8-bit rounding): the clean
 * scene, and for a defect label the defective image and its mask. Deterministic from the arguments.
 */
export function renderSample(
  category: string,
  size: number,
  seed: number,
  split: Split,
  label: 'good' | DefectKind,
  index: number,
): { clean: Float32Array; image: Float32Array; mask: Uint8Array | null } {
  const cat = new Rng(hashSeed(seed, category, 'category'));
  const rng = new Rng(hashSeed(seed, category, split, label, index));
  const scene = renderGood(category, size, rng, cat);
  if (label === 'good') return { clean: scene.image, image: scene.image, mask: null };
  if (split === 'train') throw new Error('synthetic: the training split holds only good images');
  const { image, mask } = applyDefect(scene, label, rng.fork());
  return { clean: scene.image, image, mask };
}

/** Tint a gray image into interleaved RGB bytes whose BT.601 luminance is the gray value within 0.006. */
export function tintRgb(gray: Float32Array): Uint8Array {
  const out = new Uint8Array(gray.length * 3);
  for (let i = 0; i < gray.length; i++) {
    const g = gray[i];
    out[3 * i] = Math.round(255 * clamp01(1.04 * g + 0.02));
    out[3 * i + 1] = Math.round(255 * clamp01(g));
    out[3 * i + 2] = Math.round(255 * clamp01(0.88 * g));
  }
  return out;
}

function checkCount(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new Error(`synthetic: ${name} must be a non-negative integer, got ${v}`);
}

function pad(i: number, count: number): string {
  return String(i).padStart(Math.max(3, String(Math.max(0, count - 1)).length), '0');
}

/**
 * True when catDir holds a complete synthetic category made with exactly these size, seed and image counts (the test
 * counts only where `want` gives them). (Not "at least": the loader's limits apply per folder and 0 means all, so a
 * larger set would give a run more images than a fresh one, and its results would depend on what earlier runs left
 * in --out.)
 */
export function syntheticCategoryServes(catDir: string, want: Required<Pick<GenerateOptions, 'size' | 'seed' | 'trainCount'>> & Pick<GenerateOptions, 'testGoodCount' | 'testDefectCount'>): boolean {
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(fs.readFileSync(path.join(catDir, MARKER), 'utf8')) as Record<string, unknown>;
  } catch {
    return false;
  }
  // A test count left out of `want` is not checked (training reads train/good alone, whose images do not depend on it).
  return meta.complete === true && (['size', 'seed', 'trainCount', 'testGoodCount', 'testDefectCount'] as const).every((k) => want[k] === undefined || meta[k] === want[k]);
}

/**
 * Write a synthetic data set in the MVTec AD layout under root (see the module comment). A category folder
 * that already exists is replaced only if this generator wrote it (it holds the marker file
 * `.skipgrad-synthetic.json`); otherwise, unless it is empty, the call fails rather than delete foreign data.
 * Each category is written into a hidden folder next to it (the marker says complete: true at the end); then the
 * old folder is renamed aside, the new one renamed into place and the old one deleted. An interrupted run leaves
 * the previous set, the new one, or (killed between the two renames) neither in place, which the next run
 * generates again; never half a set that looks complete.
 */
export function generateDataset(root: string, opts: GenerateOptions = {}): { root: string; categories: string[] } {
  const known = SYNTHETIC_CATEGORIES.map((c) => c.name);
  const categories = opts.categories ?? known;
  for (const c of categories) {
    if (!known.includes(c)) throw new Error(`synthetic: unknown category '${c}' (known: ${known.join(', ')})`);
  }
  const size = opts.size ?? 128;
  if (!Number.isInteger(size) || size < 16) throw new Error(`synthetic: size must be an integer >= 16, got ${size}`);
  const trainCount = opts.trainCount ?? 80;
  const testGoodCount = opts.testGoodCount ?? 10;
  const testDefectCount = opts.testDefectCount ?? 5;
  const seed = opts.seed ?? 0;
  checkCount('trainCount', trainCount);
  checkCount('testGoodCount', testGoodCount);
  checkCount('testDefectCount', testDefectCount);
  if (!Number.isInteger(seed)) throw new Error(`synthetic: seed must be an integer, got ${seed}`);

  makeDirs(root);
  for (const name of categories) {
    const rgb = SYNTHETIC_CATEGORIES.find((c) => c.name === name)?.rgb === true;
    const finalDir = path.join(root, name);
    if (fs.existsSync(finalDir) && !fs.existsSync(path.join(finalDir, MARKER)) && fs.readdirSync(finalDir).length > 0) {
      throw new Error(`synthetic: ${finalDir} exists and was not written by this generator (no ${MARKER}); not overwriting it`);
    }
    const catDir = path.join(root, `.${name}.partial`);
    fs.rmSync(catDir, { recursive: true, force: true }); // what a killed run left
    const dirs = [path.join(catDir, 'train', 'good'), path.join(catDir, 'test', 'good')];
    for (const kind of DEFECT_KINDS) dirs.push(path.join(catDir, 'test', kind), path.join(catDir, 'ground_truth', kind));
    for (const d of dirs) makeDirs(d);
    const meta = { generator: 'skipgrad synthetic', category: name, size, trainCount, testGoodCount, testDefectCount, seed, rgb };
    const writeMarker = (complete: boolean): void => writeFileAtomic(path.join(catDir, MARKER), Buffer.from(JSON.stringify({ ...meta, complete }, null, 2) + '\n'));
    writeMarker(false);

    const writeImage = (file: string, img: Float32Array): void => {
      if (rgb) writeRgbPng(file, tintRgb(img), size, size);
      else writeGrayPng(file, img, size, size);
    };
    for (let i = 0; i < trainCount; i++) {
      writeImage(path.join(catDir, 'train', 'good', `${pad(i, trainCount)}.png`), renderSample(name, size, seed, 'train', 'good', i).image);
    }
    for (let i = 0; i < testGoodCount; i++) {
      writeImage(path.join(catDir, 'test', 'good', `${pad(i, testGoodCount)}.png`), renderSample(name, size, seed, 'test', 'good', i).image);
    }
    for (const kind of DEFECT_KINDS) {
      for (let i = 0; i < testDefectCount; i++) {
        const stem = pad(i, testDefectCount);
        const s = renderSample(name, size, seed, 'test', kind, i);
        writeImage(path.join(catDir, 'test', kind, `${stem}.png`), s.image);
        const mask = new Uint8Array(size * size);
        for (let k = 0; k < mask.length; k++) mask[k] = s.mask![k] ? 255 : 0;
        writeGrayPng(path.join(catDir, 'ground_truth', kind, `${stem}_mask.png`), mask, size, size);
      }
    }
    writeMarker(true);
    const old = path.join(root, `.${name}.old`);
    fs.rmSync(old, { recursive: true, force: true });
    if (fs.existsSync(finalDir)) fs.renameSync(finalDir, old);
    fs.renameSync(catDir, finalDir);
    fs.rmSync(old, { recursive: true, force: true });
  }
  return { root, categories: [...categories] };
}
