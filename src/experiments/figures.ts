/**
 * Figures for the "Don't skip the skips" reproduction, as pure functions from plain data (numbers,
 * Float32Array maps) to SVG strings and PNG buffers. No engine types are used here.
 *
 * - `cosineFigure`      the paper's Fig. 3: per layer, box plots of cos(mu_i(x_clean), mu_i(x_stained)) for
 *                       AE (blue #1f77b4) and AESc (orange #ff7f0e).
 * - `activationMapsPng` the paper's Fig. 2: a grid of channel-mean maps mu_1..mu_9 (rows AESc-clean,
 *                       AESc-stained, AE-clean, AE-stained), each map min-max normalised on its own.
 * - `lineChart`         training curves (loss per epoch, validation PSNR), optionally with a log y axis.
 * - `imageGridPng`      a general labelled grid of images / maps (image, reconstruction, residual, mask...).
 * - `svgToPng`          rasterises any of the SVGs with resvg and the bundled DejaVu Sans font, so text renders
 *                       identically on every machine (system fonts are never loaded).
 *
 * Every SVG is a standalone SVG 1.1 document (xmlns, width, height, viewBox, a white background) whose text is
 * XML-escaped; it uses no ids, so several can be inlined into one HTML page without clashes. Raster cells are
 * embedded as data:image/png;base64 URIs (encoded with pngjs), upsampled nearest-neighbour to their final pixel
 * size before embedding, so that the rasterised PNG shows the maps' pixels exactly.
 *
 * Conventions: box plots use linear-interpolated quartiles (numpy's default), whiskers at the most extreme
 * data within 1.5 IQR of the box, and points outside the whiskers drawn as outlier dots. Non-finite values
 * (NaN, +-Infinity) are skipped everywhere and counted in a footnote.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { PNG } from 'pngjs';
import { quantileSorted } from './metrics.js';

// ---------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------

/** Blue of AE in the paper's Fig. 3 (matplotlib tab:blue). */
export const AE_COLOR = '#1f77b4';
/** Orange of AESc in the paper's Fig. 3 (matplotlib tab:orange). */
export const AESC_COLOR = '#ff7f0e';
/** matplotlib's tab10 palette, the default colours of `lineChart` series. */
export const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
];

const FONT_FAMILY = "'DejaVu Sans', Verdana, Arial, sans-serif";

/** Escapes text for XML/HTML element content and attribute values (& < > " '). */
export function escapeXml(s: string): string {
  return String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Rounds a coordinate to 2 decimals for compact SVG. */
function r2(v: number): string {
  const s = (Math.round(v * 100) / 100).toString();
  return s === '-0' ? '0' : s;
}

/** Rough width in px of `s` in DejaVu Sans at `size` px (the font is wide: ~0.6 em per glyph on average). */
export function textWidth(s: string, size: number): number {
  let w = 0;
  for (const ch of s) {
    if ('il.,:;|!\'`'.includes(ch)) w += 0.32;
    else if ('MWmw@%'.includes(ch)) w += 0.9;
    else if (ch === ' ') w += 0.32;
    else if (/[A-Z]/.test(ch)) w += 0.7;
    else w += 0.62;
  }
  return w * size;
}

interface TextOpts {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  fill?: string;
  rotate?: number;
  baseline?: 'auto' | 'middle' | 'hanging';
}

function svgText(x: number, y: number, s: string, o: TextOpts = {}): string {
  const size = o.size ?? 12;
  const attrs = [`x="${r2(x)}"`, `y="${r2(y)}"`, `font-size="${size}"`];
  if (o.anchor && o.anchor !== 'start') attrs.push(`text-anchor="${o.anchor}"`);
  if (o.weight === 'bold') attrs.push('font-weight="bold"');
  if (o.fill) attrs.push(`fill="${o.fill}"`);
  if (o.baseline === 'middle') attrs.push('dominant-baseline="central"');
  if (o.baseline === 'hanging') attrs.push('dominant-baseline="hanging"');
  if (o.rotate) attrs.push(`transform="rotate(${o.rotate} ${r2(x)} ${r2(y)})"`);
  return `<text ${attrs.join(' ')}>${escapeXml(s)}</text>`;
}

function svgOpen(width: number, height: number, extraNs = ''): string {
  const w = Math.ceil(width);
  const h = Math.ceil(height);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg"${extraNs} version="1.1" width="${w}" height="${h}" ` +
    `viewBox="0 0 ${w} ${h}" font-family="${FONT_FAMILY}">` +
    `<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>`
  );
}

/** Word-wraps `s` into lines no wider than `maxWidth` px at font `size` (a single long word is kept whole). */
export function wrapText(s: string, maxWidth: number, size: number): string[] {
  const words = s.split(/\s+/).filter((w) => w.length > 0);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    const cand = cur ? `${cur} ${w}` : w;
    if (cur && textWidth(cand, size) > maxWidth) {
      lines.push(cur);
      cur = w;
    } else cur = cand;
  }
  if (cur) lines.push(cur);
  return lines.length ? lines : [''];
}


/** Summary statistics of the finite values of `values` (non-finite ones are counted in `skipped`). */
export interface SummaryStats {
  /** Number of finite values. */
  n: number;
  /** Number of non-finite values (NaN, +-Infinity) that were skipped. */
  skipped: number;
  mean: number;
  median: number;
  /** First quartile (25 %), linear interpolation. */
  q1: number;
  /** Third quartile (75 %), linear interpolation. */
  q3: number;
  min: number;
  max: number;
  /** Lowest datum >= q1 - 1.5 IQR. */
  whiskerLow: number;
  /** Highest datum <= q3 + 1.5 IQR. */
  whiskerHigh: number;
  /** Data outside the whiskers. */
  outliers: number[];
}

/** Box-plot statistics (Tukey whiskers at 1.5 IQR) of the finite values; all NaN when there are none. */
export function summaryStats(values: ArrayLike<number>): SummaryStats {
  const finite: number[] = [];
  let skipped = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isFinite(v)) finite.push(v);
    else skipped++;
  }
  const n = finite.length;
  if (n === 0) {
    return {
      n, skipped, mean: NaN, median: NaN, q1: NaN, q3: NaN, min: NaN, max: NaN,
      whiskerLow: NaN, whiskerHigh: NaN, outliers: [],
    };
  }
  finite.sort((a, b) => a - b);
  let sum = 0;
  for (const v of finite) sum += v;
  const q1 = quantileSorted(finite, 0.25);
  const q3 = quantileSorted(finite, 0.75);
  const iqr = q3 - q1;
  const loFence = q1 - 1.5 * iqr;
  const hiFence = q3 + 1.5 * iqr;
  let whiskerLow = q1;
  let whiskerHigh = q3;
  const outliers: number[] = [];
  for (const v of finite) {
    if (v < loFence || v > hiFence) outliers.push(v);
    else {
      if (v < whiskerLow) whiskerLow = v;
      if (v > whiskerHigh) whiskerHigh = v;
    }
  }
  return {
    n, skipped, mean: sum / n, median: quantileSorted(finite, 0.5), q1, q3,
    min: finite[0]!, max: finite[n - 1]!, whiskerLow, whiskerHigh, outliers,
  };
}

/** "Nice" tick values (steps 1, 2 or 5 x 10^k) covering [lo, hi]; at least a step of 1 when `integer`. */
export function niceTicks(lo: number, hi: number, target = 6, integer = false): { ticks: number[]; step: number } {
  if (!(hi > lo)) return { ticks: [lo], step: 1 };
  const raw = (hi - lo) / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  let step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (integer && step < 1) step = 1;
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let k = first; k * step <= hi + step * 1e-9; k++) {
    ticks.push(Number((k * step).toPrecision(12)));
    if (ticks.length > 1000) break;
  }
  return { ticks, step };
}

/** Formats a tick value with just enough decimals for `step`. */
function fmtTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-4) return fmtSci(v);
  const dec = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(dec);
}

function fmtSci(v: number): string {
  const e = Math.floor(Math.log10(Math.abs(v)));
  const m = v / Math.pow(10, e);
  const ms = Math.abs(m - Math.round(m)) < 1e-9 ? String(Math.round(m)) : m.toPrecision(2);
  return ms === '1' ? `1e${e}` : `${ms}e${e}`;
}

// ---------------------------------------------------------------------------------------------------------
// Rasterisation
// ---------------------------------------------------------------------------------------------------------

let fontFilesCache: string[] | null = null;

/** Absolute paths of the bundled DejaVu Sans TTF files (regular, bold, oblique). */
export function dejavuFontFiles(): string[] {
  if (!fontFilesCache) {
    const require = createRequire(import.meta.url);
    const dir = path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
    fontFilesCache = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSans-Oblique.ttf'].map((f) => path.join(dir, f));
  }
  return fontFilesCache;
}

/**
 * Renders an SVG string to a PNG buffer with resvg, using only the bundled DejaVu fonts (system fonts are
 * not loaded, so the result is the same on every machine). `scale` zooms the output (2 = twice the SVG's
 * width and height in pixels). Transparent areas are painted white.
 */
export function svgToPng(svg: string, scale = 1): Buffer {
  if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`svgToPng: scale must be a positive number, got ${scale}`);
  const resvg = new Resvg(svg, {
    fitTo: scale === 1 ? { mode: 'original' } : { mode: 'zoom', value: scale },
    background: '#ffffff',
    font: { fontFiles: dejavuFontFiles(), loadSystemFonts: false, defaultFontFamily: 'DejaVu Sans' },
  });
  return Buffer.from(resvg.render().asPng());
}

// ---------------------------------------------------------------------------------------------------------
// Colormaps and map -> PNG
// ---------------------------------------------------------------------------------------------------------

/** Colormaps for maps: 'gray' (black -> white) or 'viridis' (matplotlib's, from an 11-stop table). */
export type Colormap = 'gray' | 'viridis';

/** viridis at t = 0, 0.1, ..., 1 (matplotlib), interpolated linearly in between. */
const VIRIDIS: readonly (readonly [number, number, number])[] = [
  [0x44, 0x01, 0x54], [0x48, 0x25, 0x76], [0x41, 0x44, 0x87], [0x35, 0x60, 0x8d], [0x2a, 0x78, 0x8e],
  [0x21, 0x90, 0x8c], [0x22, 0xa8, 0x84], [0x43, 0xbf, 0x71], [0x7a, 0xd1, 0x51], [0xbb, 0xdf, 0x27],
  [0xfd, 0xe7, 0x25],
];

/** RGB (0..255 each) of `t` in [0, 1] (clamped) under `cmap`. */
export function colormapRgb(t: number, cmap: Colormap): [number, number, number] {
  const u = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  if (cmap === 'gray') {
    const g = Math.round(u * 255);
    return [g, g, g];
  }
  const pos = u * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(pos));
  const f = pos - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  return [
    Math.round(a[0] + (b[0] - a[0]) * f),
    Math.round(a[1] + (b[1] - a[1]) * f),
    Math.round(a[2] + (b[2] - a[2]) * f),
  ];
}

/** A single-channel map, row-major, `h` rows x `w` columns. */
export interface MapData {
  data: Float32Array;
  h: number;
  w: number;
}

/** Options for `mapToPng`. */
export interface MapToPngOptions {
  /** Value range mapped to the colormap's ends; default: the map's own finite min..max (min-max normalised). */
  range?: [number, number];
  colormap?: Colormap;
  /** Output size in pixels (nearest-neighbour resampling); default the map's own size. */
  width?: number;
  height?: number;
}

/**
 * Encodes a map as an RGB PNG: values normalised to [0, 1] by `range` (default: min-max of the map's finite
 * values; a constant map becomes mid-colour 0.5), coloured with `colormap` (default gray), resampled
 * nearest-neighbour to width x height. Non-finite pixels are drawn magenta.
 */
export function mapToPng(map: MapData, opts: MapToPngOptions = {}): Buffer {
  const { data, h, w } = map;
  if (!(h > 0 && w > 0) || data.length !== h * w) {
    throw new Error(`mapToPng: data has ${data.length} values, expected h*w = ${h}*${w}`);
  }
  const outW = Math.max(1, Math.round(opts.width ?? w));
  const outH = Math.max(1, Math.round(opts.height ?? h));
  const cmap = opts.colormap ?? 'gray';
  let lo: number;
  let hi: number;
  if (opts.range) [lo, hi] = opts.range;
  else {
    lo = Infinity;
    hi = -Infinity;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  const span = hi - lo;
  const constant = !(span > 0) || !Number.isFinite(span);
  const png = new PNG({ width: outW, height: outH, colorType: 2, inputHasAlpha: true });
  const lut: [number, number, number][] = [];
  for (let k = 0; k < 256; k++) lut.push(colormapRgb(k / 255, cmap));
  const colIdx = new Int32Array(outW);
  for (let x = 0; x < outW; x++) colIdx[x] = Math.min(w - 1, Math.floor(((x + 0.5) * w) / outW));
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / outH));
    for (let x = 0; x < outW; x++) {
      const v = data[sy * w + colIdx[x]!]!;
      const o = (y * outW + x) * 4;
      if (!Number.isFinite(v)) {
        png.data[o] = 255; png.data[o + 1] = 0; png.data[o + 2] = 255; png.data[o + 3] = 255;
        continue;
      }
      const t = constant ? 0.5 : Math.min(1, Math.max(0, (v - lo) / span));
      const c = lut[Math.round(t * 255)]!;
      png.data[o] = c[0]; png.data[o + 1] = c[1]; png.data[o + 2] = c[2]; png.data[o + 3] = 255;
    }
  }
  return PNG.sync.write(png, { colorType: 2 });
}

// ---------------------------------------------------------------------------------------------------------
// Fig. 3: cosine similarity per layer, AE vs AESc
// ---------------------------------------------------------------------------------------------------------

/** Input of `cosineFigure`: per model, per layer name, the cosine similarities (one per image pair). */
export interface CosineData {
  /** Layer names in x order, e.g. ['l1', ..., 'l9']. */
  layers: string[];
  /** Optional spatial size per layer, shown under the name, e.g. ['256x256', '126x126', ...]. */
  sizes?: string[];
  /** AE (no skips): layer name -> similarities. A missing layer draws no box. */
  ae: Record<string, number[]>;
  /** AESc (skips): layer name -> similarities. */
  aesc: Record<string, number[]>;
}

/**
 * The paper's Fig. 3 as an SVG: for each layer side by side, a box plot of cos(mu_i(x_clean), mu_i(x_stained))
 * for AE (blue, left) and AESc (orange, right): box q1..q3, median line, whiskers to the most extreme datum
 * within 1.5 IQR, outlier dots, and a small white diamond at the mean. The y range fits the data (padded);
 * non-finite values are skipped (counted in a footnote); constant data draws a flat box.
 * Each box is a `<rect class="box" data-model="AE|AESc" data-layer="...">`.
 */
export function cosineFigure(data: CosineData, title: string): string {
  const layers = data.layers;
  const nL = Math.max(1, layers.length);
  const models: { name: string; color: string; values: Record<string, number[]> }[] = [
    { name: 'AE', color: AE_COLOR, values: data.ae },
    { name: 'AESc', color: AESC_COLOR, values: data.aesc },
  ];
  const stats = models.map((m) => layers.map((l) => summaryStats(m.values[l] ?? [])));
  let skipped = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (const ms of stats) {
    for (const s of ms) {
      skipped += s.skipped;
      if (s.n > 0) {
        lo = Math.min(lo, s.min);
        hi = Math.max(hi, s.max);
      }
    }
  }
  const noData = !Number.isFinite(lo);
  if (noData) {
    lo = 0;
    hi = 1;
  } else if (hi - lo < 1e-9) {
    const pad = Math.max(0.01, Math.abs(hi) * 0.01);
    lo -= pad;
    hi += pad;
  } else {
    const pad = 0.06 * (hi - lo);
    lo -= pad;
    hi += pad;
  }
  const { ticks, step } = niceTicks(lo, hi, 6);
  const tickLabels = ticks.map((t) => fmtTick(t, step));

  // Layout.
  const sizeFont = 11;
  const labelFont = 13;
  let groupW = 76;
  for (let i = 0; i < layers.length; i++) {
    groupW = Math.max(groupW, textWidth(layers[i]!, labelFont) + 14, textWidth(data.sizes?.[i] ?? '', sizeFont) + 14);
  }
  const maxTickW = Math.max(...tickLabels.map((s) => textWidth(s, 12)));
  const left = 34 + maxTickW + 10;
  const right = 20;
  const titleLines = wrapText(title, Math.max(300, nL * groupW + left + right - 40), 16);
  const top = 30 + 20 * titleLines.length + 10;
  const plotW = nL * groupW;
  const plotH = 330;
  const hasSizes = !!data.sizes && data.sizes.some((s) => s);
  const bottom = 26 + (hasSizes ? 16 : 0) + 26 + (skipped > 0 || noData ? 16 : 0);
  const width = left + plotW + right;
  const height = top + plotH + bottom;
  const yOf = (v: number): number => top + plotH - ((v - lo) / (hi - lo)) * plotH;

  const out: string[] = [svgOpen(width, height)];
  // Title.
  titleLines.forEach((line, k) => out.push(svgText(width / 2, 24 + 20 * k, line, { size: 16, anchor: 'middle', weight: 'bold' })));
  // Legend (top right, above the plot area).
  {
    const ly = top - 14;
    let lx = left + plotW;
    const items = [...models].reverse();
    for (const m of items) {
      const tw = textWidth(m.name, 12);
      lx -= tw;
      out.push(svgText(lx, ly + 4.5, m.name, { size: 12 }));
      lx -= 18;
      out.push(`<rect x="${r2(lx)}" y="${r2(ly - 6)}" width="12" height="12" fill="${m.color}" fill-opacity="0.45" stroke="${m.color}" stroke-width="1.5"/>`);
      lx -= 14;
    }
  }
  // Grid + y ticks.
  for (let k = 0; k < ticks.length; k++) {
    const y = yOf(ticks[k]!);
    out.push(`<line x1="${r2(left)}" y1="${r2(y)}" x2="${r2(left + plotW)}" y2="${r2(y)}" stroke="#e3e3e3" stroke-width="1"/>`);
    out.push(`<line x1="${r2(left - 5)}" y1="${r2(y)}" x2="${r2(left)}" y2="${r2(y)}" stroke="#333" stroke-width="1"/>`);
    out.push(svgText(left - 8, y + 4, tickLabels[k]!, { size: 12, anchor: 'end' }));
  }
  // Layer separators (light) and boxes.
  const boxW = Math.min(26, groupW * 0.32);
  for (let i = 0; i < layers.length; i++) {
    const cx = left + (i + 0.5) * groupW;
    if (i > 0) {
      const x = left + i * groupW;
      out.push(`<line x1="${r2(x)}" y1="${r2(top)}" x2="${r2(x)}" y2="${r2(top + plotH)}" stroke="#f0f0f0" stroke-width="1"/>`);
    }
    models.forEach((m, mi) => {
      const s = stats[mi]![i]!;
      const bx = cx + (mi === 0 ? -1 : 1) * (boxW / 2 + 3);
      if (s.n === 0) {
        out.push(svgText(bx, top + plotH - 6, 'n=0', { size: 9, anchor: 'middle', fill: m.color }));
        return;
      }
      const x0 = bx - boxW / 2;
      const yq1 = yOf(s.q1);
      const yq3 = yOf(s.q3);
      const ymed = yOf(s.median);
      const ywl = yOf(s.whiskerLow);
      const ywh = yOf(s.whiskerHigh);
      const cap = boxW * 0.25;
      const lay = escapeXml(layers[i]!);
      out.push(`<g class="boxplot" data-model="${m.name}" data-layer="${lay}">`);
      out.push(`<line x1="${r2(bx)}" y1="${r2(ywh)}" x2="${r2(bx)}" y2="${r2(yq3)}" stroke="${m.color}" stroke-width="1.3"/>`);
      out.push(`<line x1="${r2(bx)}" y1="${r2(yq1)}" x2="${r2(bx)}" y2="${r2(ywl)}" stroke="${m.color}" stroke-width="1.3"/>`);
      out.push(`<line x1="${r2(bx - cap)}" y1="${r2(ywh)}" x2="${r2(bx + cap)}" y2="${r2(ywh)}" stroke="${m.color}" stroke-width="1.3"/>`);
      out.push(`<line x1="${r2(bx - cap)}" y1="${r2(ywl)}" x2="${r2(bx + cap)}" y2="${r2(ywl)}" stroke="${m.color}" stroke-width="1.3"/>`);
      out.push(
        `<rect class="box" data-model="${m.name}" data-layer="${lay}" data-n="${s.n}" x="${r2(x0)}" y="${r2(yq3)}" ` +
          `width="${r2(boxW)}" height="${r2(Math.max(1, yq1 - yq3))}" fill="${m.color}" fill-opacity="0.45" ` +
          `stroke="${m.color}" stroke-width="1.5"/>`,
      );
      out.push(`<line x1="${r2(x0)}" y1="${r2(ymed)}" x2="${r2(x0 + boxW)}" y2="${r2(ymed)}" stroke="#222" stroke-width="2"/>`);
      const ym = yOf(s.mean);
      out.push(`<path d="M${r2(bx)} ${r2(ym - 3.5)}L${r2(bx + 3.5)} ${r2(ym)}L${r2(bx)} ${r2(ym + 3.5)}L${r2(bx - 3.5)} ${r2(ym)}Z" fill="#ffffff" stroke="#222" stroke-width="0.8"/>`);
      for (const v of s.outliers) {
        out.push(`<circle cx="${r2(bx)}" cy="${r2(yOf(v))}" r="2.2" fill="none" stroke="${m.color}" stroke-width="1" stroke-opacity="0.8"/>`);
      }
      out.push('</g>');
    });
    // x labels.
    const ly = top + plotH + 18;
    out.push(`<line x1="${r2(cx)}" y1="${r2(top + plotH)}" x2="${r2(cx)}" y2="${r2(top + plotH + 5)}" stroke="#333" stroke-width="1"/>`);
    out.push(svgText(cx, ly, layers[i]!, { size: labelFont, anchor: 'middle' }));
    const sz = data.sizes?.[i];
    if (sz) out.push(svgText(cx, ly + 16, sz, { size: sizeFont, anchor: 'middle', fill: '#555' }));
  }
  // Axes frame.
  out.push(`<rect x="${r2(left)}" y="${r2(top)}" width="${r2(plotW)}" height="${r2(plotH)}" fill="none" stroke="#333" stroke-width="1"/>`);
  // Axis labels.
  const xLabelY = top + plotH + 18 + (hasSizes ? 16 : 0) + 22;
  out.push(svgText(left + plotW / 2, xLabelY, 'layer', { size: 13, anchor: 'middle' }));
  out.push(svgText(16, top + plotH / 2, 'cosine similarity', { size: 13, anchor: 'middle', rotate: -90, baseline: 'middle' }));
  let footY = xLabelY + 16;
  if (noData) {
    out.push(svgText(left, footY, 'no finite data', { size: 11, fill: '#a00' }));
    footY += 14;
  }
  if (skipped > 0) out.push(svgText(left, footY, `${skipped} non-finite value${skipped === 1 ? '' : 's'} skipped`, { size: 11, fill: '#a00' }));
  out.push('</svg>');
  return out.join('');
}

// ---------------------------------------------------------------------------------------------------------
// Line chart (training curves)
// ---------------------------------------------------------------------------------------------------------

/** One line of `lineChart`. Points with a non-finite x or y (or y <= 0 on a log axis) break the line. */
export interface LineSeries {
  name: string;
  x: number[];
  y: number[];
  /** CSS colour; default: the tab10 palette in series order. */
  color?: string;
  /** Dashed line. */
  dashed?: boolean;
}

/** Options of `lineChart`. */
export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Logarithmic y axis (base 10). */
  logY?: boolean;
  /** Size in px (default 640 x 400). */
  width?: number;
  height?: number;
  /** Draw point markers (default: when every series has at most 60 points). */
  markers?: boolean;
}

/**
 * A line chart as an SVG (training loss per epoch, validation PSNR, ...). Legend in a row under the title,
 * nice ticks, integer x ticks when all x are integers, log10 y axis when `logY`.
 */
export function lineChart(series: LineSeries[], opts: LineChartOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  const logY = !!opts.logY;
  const fy = (v: number): number => (logY ? Math.log10(v) : v);
  const okY = (v: number): boolean => Number.isFinite(v) && (!logY || v > 0);
  let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
  let allInt = true;
  let skipped = 0;
  let maxLen = 0;
  for (const s of series) {
    const n = Math.min(s.x.length, s.y.length);
    maxLen = Math.max(maxLen, n);
    for (let i = 0; i < n; i++) {
      const x = s.x[i]!;
      const y = s.y[i]!;
      if (!Number.isFinite(x) || !okY(y)) {
        skipped++;
        continue;
      }
      xlo = Math.min(xlo, x); xhi = Math.max(xhi, x);
      const t = fy(y);
      ylo = Math.min(ylo, t); yhi = Math.max(yhi, t);
      if (!Number.isInteger(x)) allInt = false;
    }
  }
  const noData = !Number.isFinite(xlo);
  if (noData) { xlo = 0; xhi = 1; ylo = 0; yhi = 1; }
  if (xhi - xlo < 1e-12) { xlo -= 1; xhi += 1; }
  if (yhi - ylo < 1e-12) {
    const pad = logY ? 0.5 : Math.max(1e-6, Math.abs(yhi) * 0.05, 0.5 * (Math.abs(yhi) < 1 ? Math.abs(yhi) || 1 : 1));
    ylo -= pad; yhi += pad;
  } else {
    const pad = 0.05 * (yhi - ylo);
    ylo -= pad; yhi += pad;
  }
  // Y ticks (in transformed space when log).
  let yTicks: { t: number; label: string }[];
  if (logY) {
    const pows: number[] = [];
    for (let e = Math.ceil(ylo - 1e-9); e <= yhi + 1e-9; e++) pows.push(e);
    let mults = [1];
    if (pows.length < 3) mults = [1, 2, 5];
    const ts: number[] = [];
    for (let e = Math.floor(ylo) - 1; e <= Math.ceil(yhi) + 1; e++) {
      for (const m of mults) {
        const t = e + Math.log10(m);
        if (t >= ylo - 1e-9 && t <= yhi + 1e-9) ts.push(t);
      }
    }
    if (ts.length >= 2) yTicks = ts.map((t) => ({ t, label: fmtLogTick(Math.pow(10, t)) }));
    else {
      const { ticks, step } = niceTicks(Math.pow(10, ylo), Math.pow(10, yhi), 4);
      yTicks = ticks.filter((v) => v > 0).map((v) => ({ t: Math.log10(v), label: fmtTick(v, step) }));
    }
  } else {
    const { ticks, step } = niceTicks(ylo, yhi, 6);
    yTicks = ticks.map((t) => ({ t, label: fmtTick(t, step) }));
  }
  const xt = niceTicks(xlo, xhi, 7, allInt);
  const xTicks = xt.ticks.map((t) => ({ t, label: fmtTick(t, xt.step) }));

  const maxTickW = Math.max(20, ...yTicks.map((t) => textWidth(t.label, 12)));
  const left = 34 + maxTickW + 10;
  const right = 24;
  const titleLines = wrapText(opts.title, width - 40, 16);
  // Legend items laid out in rows.
  const legendRows: { name: string; color: string; dashed: boolean; x: number }[][] = [[]];
  {
    let x = left;
    series.forEach((s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length]!;
      const w = 26 + textWidth(s.name, 12) + 18;
      if (x + w > width - right && legendRows[legendRows.length - 1]!.length > 0) {
        legendRows.push([]);
        x = left;
      }
      legendRows[legendRows.length - 1]!.push({ name: s.name, color, dashed: !!s.dashed, x });
      x += w;
    });
  }
  const nLegendRows = series.length ? legendRows.length : 0;
  const top = 22 + 20 * titleLines.length + 18 * nLegendRows + 12;
  const bottom = 58 + (skipped > 0 || noData ? 14 : 0);
  const plotW = width - left - right;
  const plotH = Math.max(60, height - top - bottom);
  const totalH = top + plotH + bottom;
  const X = (x: number): number => left + ((x - xlo) / (xhi - xlo)) * plotW;
  const Y = (t: number): number => top + plotH - ((t - ylo) / (yhi - ylo)) * plotH;

  const out: string[] = [svgOpen(width, totalH)];
  titleLines.forEach((line, k) => out.push(svgText(width / 2, 24 + 20 * k, line, { size: 16, anchor: 'middle', weight: 'bold' })));
  legendRows.forEach((row, ri) => {
    const y = 22 + 20 * titleLines.length + 18 * ri + 6;
    for (const it of row) {
      out.push(`<line x1="${r2(it.x)}" y1="${r2(y)}" x2="${r2(it.x + 20)}" y2="${r2(y)}" stroke="${it.color}" stroke-width="2.5"${it.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      out.push(svgText(it.x + 26, y + 4.5, it.name, { size: 12 }));
    }
  });
  for (const { t, label } of yTicks) {
    const y = Y(t);
    out.push(`<line x1="${r2(left)}" y1="${r2(y)}" x2="${r2(left + plotW)}" y2="${r2(y)}" stroke="#e3e3e3" stroke-width="1"/>`);
    out.push(`<line x1="${r2(left - 5)}" y1="${r2(y)}" x2="${r2(left)}" y2="${r2(y)}" stroke="#333" stroke-width="1"/>`);
    out.push(svgText(left - 8, y + 4, label, { size: 12, anchor: 'end' }));
  }
  for (const { t, label } of xTicks) {
    const x = X(t);
    out.push(`<line x1="${r2(x)}" y1="${r2(top)}" x2="${r2(x)}" y2="${r2(top + plotH)}" stroke="#f0f0f0" stroke-width="1"/>`);
    out.push(`<line x1="${r2(x)}" y1="${r2(top + plotH)}" x2="${r2(x)}" y2="${r2(top + plotH + 5)}" stroke="#333" stroke-width="1"/>`);
    out.push(svgText(x, top + plotH + 19, label, { size: 12, anchor: 'middle' }));
  }
  const showMarkers = opts.markers ?? maxLen <= 60;
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const n = Math.min(s.x.length, s.y.length);
    let d = '';
    let pen = false;
    const dots: string[] = [];
    const segLens: number[] = [];
    let segLen = 0;
    for (let k = 0; k < n; k++) {
      const x = s.x[k]!;
      const y = s.y[k]!;
      if (!Number.isFinite(x) || !okY(y)) {
        if (pen) segLens.push(segLen);
        pen = false;
        segLen = 0;
        continue;
      }
      const px = X(x);
      const py = Y(fy(y));
      d += `${pen ? 'L' : 'M'}${r2(px)} ${r2(py)}`;
      pen = true;
      segLen++;
      if (showMarkers) dots.push(`<circle cx="${r2(px)}" cy="${r2(py)}" r="2.5" fill="${color}"/>`);
    }
    if (pen) segLens.push(segLen);
    if (d) {
      out.push(`<path class="series" data-name="${escapeXml(s.name)}" d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    }
    // Isolated single points are invisible as a path; always mark them.
    if (!showMarkers && segLens.some((l) => l === 1)) {
      let run: { px: number; py: number }[] = [];
      const flush = (): void => {
        if (run.length === 1) dots.push(`<circle cx="${r2(run[0]!.px)}" cy="${r2(run[0]!.py)}" r="2.5" fill="${color}"/>`);
        run = [];
      };
      for (let k = 0; k < n; k++) {
        const x = s.x[k]!;
        const y = s.y[k]!;
        if (!Number.isFinite(x) || !okY(y)) { flush(); continue; }
        run.push({ px: X(x), py: Y(fy(y)) });
      }
      flush();
    }
    out.push(...dots);
  });
  out.push(`<rect x="${r2(left)}" y="${r2(top)}" width="${r2(plotW)}" height="${r2(plotH)}" fill="none" stroke="#333" stroke-width="1"/>`);
  out.push(svgText(left + plotW / 2, top + plotH + 42, opts.xLabel, { size: 13, anchor: 'middle' }));
  out.push(svgText(16, top + plotH / 2, opts.yLabel + (logY ? ' (log scale)' : ''), { size: 13, anchor: 'middle', rotate: -90, baseline: 'middle' }));
  let footY = top + plotH + 56;
  if (noData) { out.push(svgText(left, footY, 'no finite data', { size: 11, fill: '#a00' })); footY += 14; }
  else if (skipped > 0) out.push(svgText(left, footY, `${skipped} point${skipped === 1 ? '' : 's'} not drawn (non-finite${logY ? ' or <= 0' : ''})`, { size: 11, fill: '#a00' }));
  out.push('</svg>');
  return out.join('');
}

function fmtLogTick(v: number): string {
  const e = Math.round(Math.log10(v));
  if (Math.abs(v - Math.pow(10, e)) / v < 1e-9 && (e < -3 || e > 4)) return `1e${e}`;
  if (v >= 1e5 || v < 1e-4) return fmtSci(v);
  return String(Number(v.toPrecision(6)));
}

// ---------------------------------------------------------------------------------------------------------
// Image grids (Fig. 2 and residual / anomaly map examples)
// ---------------------------------------------------------------------------------------------------------

/** One cell of `imageGridPng`: a map with an optional fixed value range and colormap. */
export interface GridCell extends MapData {
  /** Value range mapped to the colormap ends (e.g. [0, 1] for images and masks); default min-max of the map. */
  range?: [number, number];
  /** Colormap of this cell; default the grid's. */
  colormap?: Colormap;
}

/** Options of `imageGridPng` / `imageGridSvg`. */
export interface ImageGridOptions {
  /** Title above the grid. */
  title?: string;
  /** Cell side in px (default 128). Maps are fitted inside, keeping aspect ratio, nearest-neighbour. */
  cell?: number;
  /** Default colormap (default 'gray'). */
  colormap?: Colormap;
  /** A footnote under the grid. */
  note?: string;
  /** Draw a min..max colour bar of this colormap at the bottom with these end labels. */
  colorbar?: { colormap: Colormap; low: string; high: string };
  /** Extra vertical gap in px inserted before these row indices (to separate groups of rows). */
  gapBeforeRows?: number[];
}

/**
 * A labelled grid of maps as an SVG (cells embedded as base64 PNG data URIs at their final pixel size, so
 * `svgToPng(svg)` at scale 1 reproduces the maps' pixels). `columns` label the columns (word-wrapped to the
 * cell width), `rows[i].label` the rows; a null cell is left blank.
 */
export function imageGridSvg(
  rows: { label: string; cells: (GridCell | null)[] }[],
  columns: string[],
  opts: ImageGridOptions = {},
): string {
  const cell = Math.max(8, Math.round(opts.cell ?? 128));
  const nCols = Math.max(columns.length, ...rows.map((r) => r.cells.length), 1);
  const gap = 6;
  const labelFont = 13;
  const rowLabelW = Math.ceil(Math.min(
    220,
    Math.max(60, ...rows.map((r) => Math.max(...wrapText(r.label, 200, labelFont).map((l) => textWidth(l, labelFont))) + 16)),
  ));
  const colLines = Array.from({ length: nCols }, (_, c) => wrapText(columns[c] ?? '', cell - 4, 12));
  const maxColLines = Math.max(1, ...colLines.map((l) => l.length));
  const titleLines = opts.title ? wrapText(opts.title, rowLabelW + nCols * (cell + gap) - 20, 15) : [];
  const margin = 10;
  const top = margin + (titleLines.length ? 20 * titleLines.length + 6 : 0) + 15 * maxColLines + 6;
  const left = margin + rowLabelW;
  const extraGap = (ri: number): number => (opts.gapBeforeRows ?? []).filter((g) => g > 0 && g <= ri).length * 10;
  const gridH = rows.length * cell + Math.max(0, rows.length - 1) * gap + extraGap(rows.length);
  const width = left + nCols * cell + (nCols - 1) * gap + margin;
  let footH = 0;
  if (opts.colorbar) footH += 30;
  const noteLines = opts.note ? wrapText(opts.note, width - 2 * margin, 11) : [];
  footH += noteLines.length * 14;
  const height = top + gridH + (footH ? footH + 10 : 0) + margin;

  const out: string[] = [svgOpen(width, height, ' xmlns:xlink="http://www.w3.org/1999/xlink"')];
  titleLines.forEach((line, k) => out.push(svgText(width / 2, margin + 16 + 20 * k, line, { size: 15, anchor: 'middle', weight: 'bold' })));
  for (let c = 0; c < nCols; c++) {
    const cx = left + c * (cell + gap) + cell / 2;
    const lines = colLines[c]!;
    lines.forEach((line, k) => {
      const y = top - 8 - (lines.length - 1 - k) * 15;
      out.push(svgText(cx, y, line, { size: 12, anchor: 'middle' }));
    });
  }
  rows.forEach((row, ri) => {
    const y0 = top + ri * (cell + gap) + extraGap(ri);
    const lines = wrapText(row.label, rowLabelW - 12, labelFont);
    lines.forEach((line, k) => {
      const y = y0 + cell / 2 + (k - (lines.length - 1) / 2) * 16;
      out.push(svgText(left - 10, y, line, { size: labelFont, anchor: 'end', baseline: 'middle' }));
    });
    for (let c = 0; c < nCols; c++) {
      const x0 = left + c * (cell + gap);
      const m = row.cells[c];
      if (!m) {
        out.push(`<rect x="${x0}" y="${y0}" width="${cell}" height="${cell}" fill="#f4f4f4" stroke="#ccc" stroke-width="1"/>`);
        continue;
      }
      const s = cell / Math.max(m.h, m.w);
      const dw = Math.max(1, Math.round(m.w * s));
      const dh = Math.max(1, Math.round(m.h * s));
      const dx = x0 + Math.floor((cell - dw) / 2);
      const dy = y0 + Math.floor((cell - dh) / 2);
      const png = mapToPng(m, { range: m.range, colormap: m.colormap ?? opts.colormap ?? 'gray', width: dw, height: dh });
      out.push(
        `<image x="${dx}" y="${dy}" width="${dw}" height="${dh}" preserveAspectRatio="none" image-rendering="optimizeSpeed" ` +
          `style="image-rendering:pixelated" xlink:href="data:image/png;base64,${png.toString('base64')}"/>`,
      );
      out.push(`<rect x="${dx - 0.5}" y="${dy - 0.5}" width="${dw + 1}" height="${dh + 1}" fill="none" stroke="#888" stroke-width="1"/>`);
    }
  });
  let fy = top + gridH + 10;
  if (opts.colorbar) {
    const cb = opts.colorbar;
    const barW = Math.max(40, Math.min(240, width - 2 * margin - 160));
    const bx = width - margin - textWidth(cb.high, 11) - 8 - barW;
    const bw = Math.round(barW);
    const ramp = new Float32Array(bw);
    for (let k = 0; k < bw; k++) ramp[k] = k / Math.max(1, bw - 1);
    const rampPng = mapToPng({ data: ramp, h: 1, w: bw }, { range: [0, 1], colormap: cb.colormap, width: bw, height: 12 });
    out.push(
      `<image x="${r2(bx)}" y="${r2(fy + 4)}" width="${bw}" height="12" preserveAspectRatio="none" ` +
        `xlink:href="data:image/png;base64,${rampPng.toString('base64')}"/>`,
    );
    out.push(`<rect x="${r2(bx)}" y="${r2(fy + 4)}" width="${r2(barW)}" height="12" fill="none" stroke="#888" stroke-width="1"/>`);
    out.push(svgText(bx - 6, fy + 14, cb.low, { size: 11, anchor: 'end' }));
    out.push(svgText(bx + barW + 6, fy + 14, cb.high, { size: 11 }));
    fy += 30;
  }
  noteLines.forEach((line, k) => out.push(svgText(margin, fy + 10 + 14 * k, line, { size: 11, fill: '#444' })));
  out.push('</svg>');
  return out.join('');
}

/** `imageGridSvg` rasterised with `svgToPng` at scale 1 (a PNG buffer). */
export function imageGridPng(
  rows: { label: string; cells: (GridCell | null)[] }[],
  columns: string[],
  opts: ImageGridOptions = {},
): Buffer {
  return svgToPng(imageGridSvg(rows, columns, opts), 1);
}

/** Options of `activationMapsPng`. */
export interface ActivationMapsOptions {
  title?: string;
  /** Default 'viridis'. */
  colormap?: Colormap;
  /** Cell side in px (default 128: the 256x256 maps are shown at half resolution, nearest-neighbour). */
  cell?: number;
  /** Extra gap before these rows (default [2]: separates AESc rows 0-1 from AE rows 2-3 when there are 4). */
  gapBeforeRows?: number[];
}

/**
 * The paper's Fig. 2 as a PNG: rows (e.g. AESc-clean, AESc-stained, AE-clean, AE-stained) x columns
 * (mu_1..mu_9, labelled e.g. 'l1 256x256'), each map min-max normalised on its own, drawn with the colormap
 * (default viridis), scaled nearest-neighbour to a common cell size; labels are real text.
 */
export function activationMapsPng(
  rows: { label: string; maps: MapData[] }[],
  columns: string[],
  opts: ActivationMapsOptions = {},
): Buffer {
  return svgToPng(activationMapsSvg(rows, columns, opts), 1);
}

/** The SVG that `activationMapsPng` rasterises (maps embedded as PNG data URIs). */
export function activationMapsSvg(
  rows: { label: string; maps: MapData[] }[],
  columns: string[],
  opts: ActivationMapsOptions = {},
): string {
  const cmap = opts.colormap ?? 'viridis';
  return imageGridSvg(
    rows.map((r) => ({ label: r.label, cells: r.maps.map((m) => ({ data: m.data, h: m.h, w: m.w })) })),
    columns,
    {
      title: opts.title,
      cell: opts.cell ?? 128,
      colormap: cmap,
      colorbar: { colormap: cmap, low: 'map min', high: 'map max' },
      note: 'Each map is the channel mean μ_i of a layer, min-max normalised on its own.',
      gapBeforeRows: opts.gapBeforeRows ?? (rows.length === 4 ? [2] : []),
    },
  );
}
