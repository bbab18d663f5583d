/**
 * Figures and the HTML report (src/experiments/figures.ts, src/experiments/report.ts): the SVGs are
 * well-formed standalone documents (a small strict tag checker below), the PNGs decode to the expected size
 * and content, and the report is one self-contained, escaped HTML file.
 */
import { describe, it, expect } from 'vitest';
import { PNG } from 'pngjs';
import {
  AE_COLOR,
  AESC_COLOR,
  activationMapsPng,
  activationMapsSvg,
  colormapRgb,
  cosineFigure,
  imageGridPng,
  lineChart,
  niceTicks,
  summaryStats,
  svgToPng,
  type CosineData,
  type MapData,
} from '../src/experiments/figures.js';
import { renderReport, type ReportData } from '../src/experiments/report.js';

// ------------------------------------------------------------------------------------------------
// A strict little XML checker: every '<' opens a well-formed tag with quoted attributes, tags balance,
// text holds no raw '<' / '>' and every '&' starts an entity. Returns the list of problems.
// ------------------------------------------------------------------------------------------------
function xmlProblems(doc: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const tagRe = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*\s*=\s*"[^"<]*")*)\s*(\/?)>/y;
  const entityRe = /^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/;
  let i = 0;
  let roots = 0;
  while (i < doc.length) {
    const ch = doc[i]!;
    if (ch === '<') {
      tagRe.lastIndex = i;
      const m = tagRe.exec(doc);
      if (!m) {
        problems.push(`bad tag at ${i}: ${doc.slice(i, i + 60)}`);
        break;
      }
      const [, close, name, attrs, selfClose] = m;
      // Attribute values: '&' must be an entity there too.
      for (const a of attrs!.matchAll(/"([^"]*)"/g)) {
        for (const amp of a[1]!.matchAll(/&/g)) {
          if (!entityRe.test(a[1]!.slice(amp.index))) problems.push(`raw & in attribute of <${name}>`);
        }
      }
      if (close) {
        const top = stack.pop();
        if (top !== name) problems.push(`</${name}> closes <${top}>`);
      } else if (!selfClose) {
        if (stack.length === 0) roots++;
        stack.push(name!);
      } else if (stack.length === 0) roots++;
      i += m[0].length;
    } else if (ch === '>') {
      problems.push(`raw > in text at ${i}`);
      i++;
    } else if (ch === '&') {
      if (!entityRe.test(doc.slice(i, i + 12))) problems.push(`raw & in text at ${i}`);
      i++;
    } else {
      if (stack.length === 0 && !/\s/.test(ch)) problems.push(`text outside the root at ${i}`);
      i++;
    }
  }
  if (stack.length) problems.push(`unclosed: ${stack.join(' ')}`);
  if (roots !== 1) problems.push(`${roots} root elements`);
  return problems;
}

function expectStandaloneSvg(svg: string): void {
  expect(svg.startsWith('<svg ')).toBe(true);
  expect(svg.endsWith('</svg>')).toBe(true);
  const open = /^<svg\b[^>]*>/.exec(svg)![0];
  expect(open).toContain('xmlns="http://www.w3.org/2000/svg"');
  expect(open).toMatch(/\swidth="\d+"/);
  expect(open).toMatch(/\sheight="\d+"/);
  expect(open).toMatch(/\sviewBox="0 0 \d+ \d+"/);
  expect(xmlProblems(svg)).toEqual([]);
}

function svgSize(svg: string): { width: number; height: number } {
  const open = /^<svg\b[^>]*>/.exec(svg)![0];
  return { width: Number(/\swidth="(\d+)"/.exec(open)![1]), height: Number(/\sheight="(\d+)"/.exec(open)![1]) };
}

function decode(png: Buffer): PNG {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return PNG.sync.read(png);
}

function pixel(p: PNG, x: number, y: number): [number, number, number] {
  const o = (y * p.width + x) * 4;
  return [p.data[o]!, p.data[o + 1]!, p.data[o + 2]!];
}

function distinctColours(p: PNG): number {
  const set = new Set<number>();
  for (let o = 0; o < p.data.length; o += 4) set.add((p.data[o]! << 16) | (p.data[o + 1]! << 8) | p.data[o + 2]!);
  return set.size;
}

/** Deterministic pseudo-random numbers in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const LAYERS = ['l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8', 'l9'];
const DIMS = [256, 126, 61, 29, 13, 29, 61, 126, 256];

function cosineData(): CosineData {
  const rnd = lcg(7);
  const ae: Record<string, number[]> = {};
  const aesc: Record<string, number[]> = {};
  LAYERS.forEach((l, i) => {
    ae[l] = Array.from({ length: 40 }, () => Math.min(1, 0.97 + 0.003 * i + 0.02 * (rnd() - 0.5)));
    aesc[l] = Array.from({ length: 40 }, () => Math.min(1, 0.97 - 0.03 * i + 0.04 * (rnd() - 0.5)));
  });
  ae['l2']!.push(NaN);
  aesc['l9']!.push(0.2); // an outlier
  return { layers: LAYERS, sizes: DIMS.map((d) => `${d}x${d}`), ae, aesc };
}

function mapOf(h: number, w: number, f: (y: number, x: number) => number): MapData {
  const data = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(y, x);
  return { data, h, w };
}

describe('helpers', () => {
  it('summaryStats uses linear quartiles, Tukey whiskers, and skips non-finite values', () => {
    const s = summaryStats([1, 2, 3, 4, NaN, 100, Infinity]);
    expect(s.n).toBe(5);
    expect(s.skipped).toBe(2);
    expect(s.median).toBe(3);
    expect(s.q1).toBe(2);
    expect(s.q3).toBe(4);
    expect(s.whiskerLow).toBe(1);
    expect(s.whiskerHigh).toBe(4);
    expect(s.outliers).toEqual([100]);
    expect(summaryStats([NaN]).n).toBe(0);
  });

  it('niceTicks covers the range with 1/2/5 steps', () => {
    const { ticks, step } = niceTicks(0.683, 1.012, 6);
    expect(step).toBeCloseTo(0.05);
    expect(ticks[0]).toBeCloseTo(0.7);
    expect(ticks[ticks.length - 1]).toBeCloseTo(1.0);
    expect(niceTicks(1, 3, 10, true).step).toBe(1);
  });

  it('colormaps run from dark to bright', () => {
    expect(colormapRgb(0, 'gray')).toEqual([0, 0, 0]);
    expect(colormapRgb(1, 'gray')).toEqual([255, 255, 255]);
    expect(colormapRgb(0, 'viridis')).toEqual([0x44, 0x01, 0x54]);
    expect(colormapRgb(1, 'viridis')).toEqual([0xfd, 0xe7, 0x25]);
  });
});

describe('cosineFigure', () => {
  it('is a well-formed standalone SVG with one box per layer per model in the two colours', () => {
    const svg = cosineFigure(cosineData(), 'carpet & <friends>');
    expectStandaloneSvg(svg);
    const boxes = [...svg.matchAll(/<rect class="box" data-model="(AE|AESc)" data-layer="([^"]*)"[^>]*fill="(#[0-9a-f]{6})"/g)];
    expect(boxes.length).toBe(2 * LAYERS.length);
    for (const l of LAYERS) {
      expect(boxes.filter((b) => b[2] === l && b[1] === 'AE' && b[3] === AE_COLOR).length).toBe(1);
      expect(boxes.filter((b) => b[2] === l && b[1] === 'AESc' && b[3] === AESC_COLOR).length).toBe(1);
    }
    expect(svg).toContain('carpet &amp; &lt;friends&gt;');
    expect(svg).toContain('>256x256<');
    expect(svg).toContain('>cosine similarity<');
    expect(svg).toContain('1 non-finite value skipped');
    expect(svg).toMatch(/<circle [^>]*stroke="#ff7f0e"/); // the AESc outlier
  });

  it('handles constant data, missing layers, escaped layer names and no data at all', () => {
    const constant = cosineFigure({ layers: ['a<b', 'l2'], ae: { 'a<b': [1, 1, 1] }, aesc: { 'a<b': [1, 1], l2: [NaN] } }, 't');
    expectStandaloneSvg(constant);
    expect((constant.match(/<rect class="box"/g) ?? []).length).toBe(2);
    expect(constant).toContain('data-layer="a&lt;b"');
    expect(constant).not.toContain('NaN');
    const empty = cosineFigure({ layers: ['l1'], ae: {}, aesc: {} }, 'empty');
    expectStandaloneSvg(empty);
    expect(empty).toContain('no finite data');
    expect(empty).not.toContain('NaN');
  });
});

describe('svgToPng', () => {
  it('renders a valid PNG of the SVG size (and scaled), not all one colour', () => {
    const svg = cosineFigure(cosineData(), 'carpet');
    const { width, height } = svgSize(svg);
    const p = decode(svgToPng(svg));
    expect(p.width).toBe(width);
    expect(p.height).toBe(height);
    expect(distinctColours(p)).toBeGreaterThan(20);
    const p2 = decode(svgToPng(svg, 2));
    expect(p2.width).toBe(2 * width);
    expect(p2.height).toBe(2 * height);
    // Text rendered with the bundled font: the title row holds dark pixels.
    let dark = 0;
    for (let y = 0; y < 34; y++) for (let x = 0; x < width; x++) if (pixel(p, x, y)[0] < 80) dark++;
    expect(dark).toBeGreaterThan(100);
  });
});

describe('lineChart', () => {
  it('draws each series, on linear and log axes, skipping non-finite points', () => {
    const x = [1, 2, 3, 4, 5, 6];
    const series = [
      { name: 'AE <train>', x, y: [0.05, 0.02, 0.01, 0.006, 0.004, 0.003] },
      { name: 'AESc', x, y: [0.03, NaN, 0.004, 0.002, 0.001, 0.0008], color: AESC_COLOR },
    ];
    for (const logY of [false, true]) {
      const svg = lineChart(series, { title: 'loss & more', xLabel: 'epoch', yLabel: 'MSE', logY });
      expectStandaloneSvg(svg);
      expect((svg.match(/<path class="series"/g) ?? []).length).toBe(2);
      expect(svg).toContain('AE &lt;train&gt;');
      expect(svg).toContain('1 point not drawn');
      expect(svg).not.toContain('NaN');
      expect(decode(svgToPng(svg)).width).toBe(svgSize(svg).width);
    }
    expectStandaloneSvg(lineChart([], { title: 'nothing', xLabel: 'x', yLabel: 'y' }));
    expectStandaloneSvg(lineChart([{ name: 'one', x: [3], y: [7] }], { title: 'one point', xLabel: 'x', yLabel: 'y' }));
  });
});

describe('activationMapsPng', () => {
  const rowLabels = ['AESc-clean', 'AESc-stained', 'AE-clean', 'AE-stained'];
  const columns = LAYERS.map((l, i) => `${l} ${DIMS[i]}x${DIMS[i]}`);
  const rnd = lcg(3);
  // The l5 map (13x13) of row 0 is a horizontal gradient; the l4 map (29x29) of row 1 a vertical one.
  const rows = rowLabels.map((label, r) => ({
    label,
    maps: DIMS.map((d, c) =>
      r === 0 && c === 4
        ? mapOf(d, d, (_y, x) => 5 + 2 * x)
        : r === 1 && c === 3
          ? mapOf(d, d, (y) => -y)
          : mapOf(d, d, () => rnd()),
    ),
  }));

  /** The <image> placements of the grid's cells, in row-major order. */
  function cells(svg: string): { x: number; y: number; w: number; h: number }[] {
    return [...svg.matchAll(/<image x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)" preserveAspectRatio="none" image-rendering="optimizeSpeed"/g)].map((m) => ({
      x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]),
    }));
  }

  it('renders the 4 x 9 grid at the size of its SVG with real text labels', () => {
    const svg = activationMapsSvg(rows, columns);
    expectStandaloneSvg(svg);
    const placed = cells(svg);
    expect(placed.length).toBe(36);
    for (const c of placed) expect([c.w, c.h]).toEqual([128, 128]);
    for (const l of [...rowLabels, 'l1 256x256', 'l5 13x13']) expect(svg).toContain(`>${l}<`);
    const { width, height } = svgSize(svg);
    expect(width).toBeGreaterThan(9 * 128);
    expect(height).toBeGreaterThan(4 * 128);
    const p = decode(activationMapsPng(rows, columns));
    expect([p.width, p.height]).toEqual([width, height]);
    expect(distinctColours(p)).toBeGreaterThan(200);
  });

  it('shows a known gradient as a gradient in the cell pixels (viridis and gray, both orientations)', () => {
    for (const colormap of ['viridis', 'gray'] as const) {
      const svg = activationMapsSvg(rows, columns, { colormap });
      const p = decode(activationMapsPng(rows, columns, { colormap }));
      const placed = cells(svg);
      // Horizontal gradient: row 0, column 4 (13 px wide map in a 128 px cell).
      const h = placed[4]!;
      const ym = h.y + Math.floor(h.h / 2);
      const green = Array.from({ length: h.w }, (_, k) => pixel(p, h.x + k, ym)[1]);
      for (let k = 1; k < green.length; k++) expect(green[k]!).toBeGreaterThanOrEqual(green[k - 1]!);
      expect(new Set(green).size).toBe(13); // nearest-neighbour: one level per source column
      const lo = colormapRgb(0, colormap);
      const hi = colormapRgb(1, colormap);
      const dist = (a: number[], b: number[]): number => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
      expect(dist(pixel(p, h.x + 1, ym), lo)).toBeLessThanOrEqual(2);
      expect(dist(pixel(p, h.x + h.w - 2, ym), hi)).toBeLessThanOrEqual(2);
      // Constant along the gradient's other axis.
      const xm = h.x + 60;
      const col = Array.from({ length: h.h }, (_, k) => pixel(p, xm, h.y + k)[1]);
      expect(new Set(col).size).toBe(1);
      // Vertical gradient decreasing downwards: row 1, column 3.
      const v = placed[9 + 3]!;
      const xv = v.x + Math.floor(v.w / 2);
      const down = Array.from({ length: v.h }, (_, k) => pixel(p, xv, v.y + k)[1]);
      for (let k = 1; k < down.length; k++) expect(down[k]!).toBeLessThanOrEqual(down[k - 1]!);
      expect(down[0]! - down[down.length - 1]!).toBeGreaterThan(150);
    }
  });
});

describe('imageGridPng', () => {
  it('draws fixed-range images, min-max maps and blank cells', () => {
    const img = mapOf(32, 48, (y, x) => (x + y) / 80);
    const mask = mapOf(32, 48, (_y, x) => (x > 24 ? 1 : 0));
    const p = decode(
      imageGridPng(
        [
          { label: 'good', cells: [{ ...img, range: [0, 1] }, null, { ...mask, range: [0, 1] }] },
          { label: 'crack & <b>', cells: [{ ...img, colormap: 'viridis' }, { ...img }, null] },
        ],
        ['image', 'residual', 'mask'],
        { title: 'examples', cell: 64 },
      ),
    );
    expect(p.width).toBeGreaterThan(3 * 64);
    expect(p.height).toBeGreaterThan(2 * 64);
    expect(distinctColours(p)).toBeGreaterThan(30);
  });
});

describe('renderReport', () => {
  function reportData(): ReportData {
    const ep = [1, 2, 3, 4, 5];
    const curves = lineChart(
      [
        { name: 'AE', x: ep, y: [0.05, 0.03, 0.02, 0.015, 0.012] },
        { name: 'AESc', x: ep, y: [0.03, 0.01, 0.006, 0.004, 0.003] },
      ],
      { title: 'loss', xLabel: 'epoch', yLabel: 'MSE', logY: true },
    );
    const small = [0, 1, 2, 3].map((r) => ({ label: `row ${r}`, maps: [mapOf(8, 8, (y, x) => x + y + r)] }));
    const fig2 = activationMapsPng(small, ['l1 8x8'], { cell: 32 });
    const cos = cosineData();
    return {
      title: "Don't skip the skips — reproduction",
      subtitle: 'preset esann',
      generatedAt: '2025-01-01T00:00:00Z',
      machine: 'test machine <16 cores>',
      backend: 'cpu',
      runTimeSeconds: 3725,
      config: { preset: 'esann', epochs: 5, lr: 0.01, augment: false },
      notes: ['A note & more.'],
      overall: {
        statement: 'The trend appears in 1 of 2 categories.',
        verdict: 'partly',
        table: { columns: ['category', 'verdict'], rows: [['carpet', 'yes'], ['<script>alert(1)</script>', 'no']] },
      },
      categories: [
        {
          name: 'carpet',
          kind: 'texture',
          trend: { statement: 'AESc similarity falls with depth; AE rises.', verdict: 'yes' },
          trainingCurves: [{ title: 'Training loss', svg: curves }],
          fig2: { title: 'Fig. 2 — carpet', png: fig2, caption: 'channel means' },
          cosine: cos,
          imageAuroc: {
            norms: ['l0', 'l1', 'l2', 'linf'],
            headlineNorm: 'l2',
            defectKinds: ['color', 'cut'],
            counts: { good: 28, defects: { color: 19, cut: 17 } },
            rows: [
              {
                mapKind: 'AE residual',
                all: { l0: 0.5, l1: 0.61, l2: 0.6234, linf: 0.7 },
                perDefect: { color: { l0: 0.5, l1: 0.6, l2: 0.65, linf: 1 }, cut: { l0: 0.5, l1: 0.6, l2: 0.55, linf: 0.7 } },
              },
              { mapKind: 'AESc residual', all: { l0: 0.5, l1: 0.8, l2: 0.8123, linf: NaN } },
            ],
          },
          pixelAuroc: { defectKinds: ['color'], rows: [{ mapKind: 'AESc residual', auroc: 0.9012, perDefect: { color: 0.93 } }] },
        },
        {
          name: '<script>alert(1)</script>',
          trend: { statement: 'No trend <here>.', verdict: 'no' },
          fig3: { title: 'Fig. 3', svg: '<?xml version="1.0"?>\n' + cosineFigure(cos, '<script>alert(1)</script>') },
          extraTables: [{ caption: 'training', columns: ['model', 'best epoch'], rows: [['AE', 4]] }],
        },
      ],
      credit: 'Paper: Collin & De Vleeschouwer, https://example.org/paper',
    };
  }

  it('contains the sections, inlines the figures, escapes text, and makes no external references', () => {
    const html = renderReport(reportData());
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    for (const s of [
      'Configuration', 'Overall', 'Training', 'Latent representations', 'Anomaly detection',
      'Image AUROC', 'Pixel AUROC', 'Cosine similarity', 'Fig. 2 — carpet', 'Fig. 3',
      'test machine &lt;16 cores&gt;', '1 h 02 min 05 s', 'A note &amp; more.', 'l2 ★ headline',
      'AESc similarity falls with depth', '0.812', '0.901', 'color (19)', 'best epoch',
    ]) {
      expect(html, s).toContain(s);
    }
    // Figures inline: the PNG as a data URI, the SVGs as inline <svg> (fig. 3 of carpet generated from the data).
    expect(html).toContain('src="data:image/png;base64,');
    const svgs = html.match(/<svg\b[\s\S]*?<\/svg>/g) ?? [];
    expect(svgs.length).toBe(3);
    for (const s of svgs) expect(xmlProblems(s)).toEqual([]);
    expect(html).not.toContain('<?xml');
    // AUROC always with 3 decimals (also when exactly 1); counts without decimals.
    expect(html).toContain('<td class="num">1.000</td>');
    expect(html).toContain('<td class="num">40</td>');
    // Escaping: no script anywhere, the category name shows as text.
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('No trend &lt;here&gt;.');
    // No external references: web addresses only inside the credit line.
    const credit = /<p class="credit">[\s\S]*?<\/p>/.exec(html);
    expect(credit).not.toBeNull();
    expect(credit![0]).toContain('https://example.org/paper');
    const rest = html.replace(credit![0], '');
    expect(rest).not.toMatch(/https?:\/\//i);
    expect(rest).not.toMatch(/<link\b|@import|url\(|<iframe|<object/i);
    expect(rest).not.toMatch(/\s(src|href)="(?!data:|#)/);
    // The whole page is balanced markup too (void elements closed by the checker's rules aside).
    const xhtml = html.replace('<!DOCTYPE html>', '').replace(/<meta [^>]*>/g, '').replace(/<img [^>]*>/g, '');
    expect(xmlProblems(xhtml)).toEqual([]);
  });

  it('works without a credit line and with empty categories', () => {
    const r = reportData();
    delete r.credit;
    r.categories = [{ name: 'bare', trend: { statement: 'n/a', verdict: 'n/a' } }];
    const html = renderReport(r);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).toContain('bare');
  });
});
