/**
 * The self-contained HTML report of a "Don't skip the skips" reproduction run.
 *
 * `renderReport(data)` turns plain data (strings, numbers, SVG strings, PNG bytes) into ONE HTML file: CSS
 * inline, PNG figures as data:image/png;base64 URIs, SVG figures inline (with their XML namespace
 * declarations removed, which HTML does not need) or, if an SVG looks unsafe to inline, as a data:image/svg+xml
 * URI. The page makes no external requests and contains no script. All text from the data is HTML-escaped;
 * the only place a web address may appear is the optional credit line.
 *
 * Sections: title and run facts (machine, backend, run time, generation time), the configuration table,
 * free notes, the overall statement on the paper's trend (with an optional summary table), then per category:
 * the trend statement, training curves, Fig. 2 (PNG), Fig. 3 (SVG; generated from the raw cosine data with
 * `cosineFigure` when no SVG is given), the cosine statistics table (per layer and model: n, mean, median,
 * quartiles), image AUROC by map kind x norm (the headline norm declared in advance is marked) overall and per
 * defect kind, pixel AUROC by map kind, and any extra figures and tables.
 */
import { cosineFigure, escapeXml, summaryStats, type CosineData } from './figures.js';

/** Whether the paper's trend appears: yes, partly, no, or not applicable / not determinable. */
export type Verdict = 'yes' | 'partly' | 'no' | 'n/a';

/** A figure: an SVG string and/or PNG bytes (the SVG is shown when both are given). */
export interface ReportFigure {
  /** Heading above the figure. */
  title: string;
  /** A standalone SVG document (e.g. from `lineChart` or `cosineFigure`); inlined. */
  svg?: string;
  /** PNG bytes (e.g. from `activationMapsPng` or `svgToPng`); inlined as a data: URI. */
  png?: Uint8Array;
  /** Caption under the figure (plain text). */
  caption?: string;
}

/** A generic table. Numbers are formatted with `decimals` decimals; null / non-finite numbers show as a dash. */
export interface ReportTable {
  /** Caption above the table (plain text). */
  caption?: string;
  /** Header cells. */
  columns: string[];
  /** Body rows; each row has one cell per column. */
  rows: (string | number | boolean | null)[][];
  /** Indices of columns to highlight. */
  highlightColumns?: number[];
  /** Decimals for numeric cells (default 3). */
  decimals?: number;
  /**
   * Columns whose numbers are shown without decimals (counts). Default: the columns whose numeric cells are
   * all integers.
   */
  integerColumns?: number[];
  /** Footnote under the table (plain text). */
  note?: string;
}

/** Image-level AUROC (good vs defective test images) for one category. */
export interface ImageAurocData {
  /** The image-score norms in column order, e.g. ['l0', 'l1', 'l2', 'linf']. */
  norms: string[];
  /** The norm declared in advance as the headline score (e.g. 'l2'); its column is marked and highlighted. */
  headlineNorm: string;
  /** The defect kinds in display order (the test set's folders other than 'good'). */
  defectKinds: string[];
  /** Optional test-set counts: good images, and images per defect kind. */
  counts?: { good: number; defects: Record<string, number> };
  /** One row per anomaly-map kind. */
  rows: {
    /** The anomaly map, e.g. 'AE residual |x - x̂|', 'AESc residual', 'AESc μ_9'. */
    mapKind: string;
    /** AUROC of good vs all defect kinds together: norm -> AUROC. */
    all: Record<string, number>;
    /** AUROC of good vs one defect kind: defect kind -> norm -> AUROC. */
    perDefect?: Record<string, Record<string, number>>;
  }[];
  /** Footnote (plain text), e.g. how the map kinds are computed. */
  note?: string;
}

/** Pixel-level AUROC (all test pixels against the binarised ground-truth masks) for one category. */
export interface PixelAurocData {
  /** Defect kinds shown as extra columns (those present in `perDefect`), in order; optional. */
  defectKinds?: string[];
  rows: {
    /** The anomaly map kind, as in `ImageAurocData`. */
    mapKind: string;
    /** Pixel AUROC over all test images (good and defective). */
    auroc: number;
    /** Pixel AUROC restricted to the good images plus one defect kind: defect kind -> AUROC. */
    perDefect?: Record<string, number>;
  }[];
  /** Footnote (plain text). */
  note?: string;
}

/** Everything reported for one MVTec AD category (or a synthetic stand-in). */
export interface CategoryReport {
  /** Category name, e.g. 'carpet' (escaped; any text is safe). */
  name: string;
  /** 'texture' or 'object' (shown next to the name); optional. */
  kind?: string;
  /** The plain statement of whether the paper's trend appears in this category, and the verdict. */
  trend: { statement: string; verdict?: Verdict };
  /** Free notes for this category (plain text paragraphs). */
  notes?: string[];
  /** Training curves (AE and AESc loss per epoch, validation PSNR), usually from `lineChart`. */
  trainingCurves?: ReportFigure[];
  /** Fig. 2: the channel-mean maps grid (PNG from `activationMapsPng`). */
  fig2?: ReportFigure;
  /** Fig. 3: the cosine-similarity box plots (SVG from `cosineFigure`). Generated from `cosine` when absent. */
  fig3?: ReportFigure;
  /** The raw cosine similarities behind Fig. 3; the statistics table is computed from them. */
  cosine?: CosineData;
  /** Image AUROC tables. */
  imageAuroc?: ImageAurocData;
  /** Pixel AUROC table. */
  pixelAuroc?: PixelAurocData;
  /** Further figures (e.g. residual / anomaly map examples from `imageGridPng`). */
  extraFigures?: ReportFigure[];
  /** Further tables (e.g. training summary: best epoch, best validation PSNR, time). */
  extraTables?: ReportTable[];
}

/** The data of the whole report; the lead fills it, `renderReport` only formats it. */
export interface ReportData {
  /** Page title, e.g. "Don't skip the skips — reproduction". */
  title: string;
  /** Line under the title (e.g. the paper reference, preset name); optional. */
  subtitle?: string;
  /** When the report was generated (e.g. an ISO 8601 timestamp). */
  generatedAt: string;
  /** Machine description (CPU, cores, GPU / adapter). */
  machine: string;
  /** Backend used, e.g. 'cpu (8 threads)' or 'webgpu (NVIDIA H200)'. */
  backend: string;
  /** Total wall-clock run time in seconds. */
  runTimeSeconds: number;
  /** The run's configuration as key/value pairs (object in insertion order, or an array of pairs). */
  config: Record<string, string | number | boolean | null> | [string, string | number | boolean | null][];
  /** Free notes for the whole run (deviations from the paper, caveats), plain text paragraphs. */
  notes?: string[];
  /** The overall statement on the paper's trend, its verdict, and an optional summary table across categories. */
  overall: { statement: string; verdict?: Verdict; table?: ReportTable };
  /** The categories, in display order. */
  categories: CategoryReport[];
  /** Optional credit line (plain text; the only place where a web address may appear, shown as a link). */
  credit?: string;
}

// ---------------------------------------------------------------------------------------------------------

const esc = escapeXml;

/** Formats seconds as e.g. '2 h 03 min 04 s', '3 min 05 s', '12.3 s'. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (v: number): string => String(v).padStart(2, '0');
  return h > 0 ? `${h} h ${pad(m)} min ${pad(sec)} s` : `${m} min ${pad(sec)} s`;
}

function fmtNum(v: number | null | undefined, decimals = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return v.toFixed(decimals);
}

function fmtCell(v: string | number | boolean | null | undefined, decimals = 3): string {
  if (typeof v === 'number') return fmtNum(v, decimals);
  if (v === null || v === undefined) return '—';
  return String(v);
}

function dataUri(mime: string, bytes: Uint8Array | string): string {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return `data:${mime};base64,${b.toString('base64')}`;
}

/** Prepares an SVG document for inlining into HTML, or returns null when it should go in an <img> instead. */
function inlineSvg(svg: string): string | null {
  const s = svg
    .replace(/^\uFEFF/, '')
    .replace(/<\?xml[\s\S]*?\?>/g, '')
    .replace(/<!DOCTYPE[\s\S]*?>/gi, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .trim();
  if (!s.startsWith('<svg') || !s.endsWith('</svg>')) return null;
  // Anything active, or ids that could clash between inlined figures: use an isolated <img> instead.
  if (/<script|<foreignObject|\son[a-z]+\s*=|javascript:|\sid\s*=/i.test(s)) return null;
  // Namespace declarations are implied in HTML; removing them keeps web addresses out of the page text.
  const noNs = s.replace(/\sxmlns(:[a-zA-Z]+)?\s*=\s*("[^"]*"|'[^']*')/g, '');
  if (/https?:\/\//i.test(noNs)) return null;
  return noNs;
}

function renderFigure(f: ReportFigure, cls = ''): string {
  const parts: string[] = [`<figure class="fig ${cls}">`, `<figcaption class="fig-title">${esc(f.title)}</figcaption>`];
  if (f.svg) {
    const inl = inlineSvg(f.svg);
    parts.push(
      inl !== null
        ? `<div class="svgwrap" role="img" aria-label="${esc(f.title)}">${inl}</div>`
        : `<img alt="${esc(f.title)}" src="${dataUri('image/svg+xml', f.svg)}">`,
    );
  } else if (f.png) {
    parts.push(`<img alt="${esc(f.title)}" src="${dataUri('image/png', f.png)}">`);
  } else {
    parts.push('<p class="missing">(figure not available)</p>');
  }
  if (f.caption) parts.push(`<p class="caption">${esc(f.caption)}</p>`);
  parts.push('</figure>');
  return parts.join('\n');
}

function renderTable(t: ReportTable): string {
  const hl = new Set(t.highlightColumns ?? []);
  const dec = t.decimals ?? 3;
  const nCols = Math.max(t.columns.length, ...t.rows.map((r) => r.length));
  const intCols = new Set(
    t.integerColumns ??
      Array.from({ length: nCols }, (_, i) => i).filter((i) => {
        const nums = t.rows.map((r) => r[i]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
        return nums.length > 0 && nums.every((v) => Number.isInteger(v));
      }),
  );
  const out: string[] = ['<div class="tablewrap"><table>'];
  if (t.caption) out.push(`<caption>${esc(t.caption)}</caption>`);
  out.push('<thead><tr>' + t.columns.map((c, i) => `<th${hl.has(i) ? ' class="hl"' : ''}>${esc(c)}</th>`).join('') + '</tr></thead>');
  out.push('<tbody>');
  for (const row of t.rows) {
    out.push(
      '<tr>' +
        row
          .map((v, i) => {
            const cls = [typeof v === 'number' ? 'num' : '', hl.has(i) ? 'hl' : ''].filter(Boolean).join(' ');
            return `<td${cls ? ` class="${cls}"` : ''}>${esc(fmtCell(v, intCols.has(i) ? 0 : dec))}</td>`;
          })
          .join('') +
        '</tr>',
    );
  }
  out.push('</tbody></table></div>');
  if (t.note) out.push(`<p class="note">${esc(t.note)}</p>`);
  return out.join('\n');
}

function verdictBadge(v: Verdict | undefined): string {
  if (!v) return '';
  const label = { yes: 'trend appears', partly: 'trend partly appears', no: 'trend does not appear', 'n/a': 'not determinable' }[v];
  const cls = { yes: 'v-yes', partly: 'v-partly', no: 'v-no', 'n/a': 'v-na' }[v];
  return `<span class="badge ${cls}">${esc(label)}</span>`;
}

function configPairs(c: ReportData['config']): [string, string | number | boolean | null][] {
  return Array.isArray(c) ? c : Object.entries(c);
}

/** The cosine statistics table (per layer and model: n, mean, median, q1, q3) from the raw similarities. */
export function cosineStatsTable(c: CosineData): ReportTable {
  const hasSizes = !!c.sizes && c.sizes.some((s) => s);
  const columns = ['layer', ...(hasSizes ? ['size'] : [])];
  for (const m of ['AE', 'AESc']) columns.push(`${m} n`, `${m} mean`, `${m} median`, `${m} q1`, `${m} q3`);
  columns.push('median AESc − AE');
  let skipped = 0;
  const rows = c.layers.map((l, i) => {
    const a = summaryStats(c.ae[l] ?? []);
    const b = summaryStats(c.aesc[l] ?? []);
    skipped += a.skipped + b.skipped;
    return [
      l,
      ...(hasSizes ? [c.sizes?.[i] ?? ''] : []),
      a.n, a.mean, a.median, a.q1, a.q3,
      b.n, b.mean, b.median, b.q1, b.q3,
      b.median - a.median,
    ];
  });
  const off = hasSizes ? 2 : 1;
  return {
    caption: 'Cosine similarity cos(μ_i(x_clean), μ_i(x_stained)) per layer and model',
    columns,
    rows,
    decimals: 4,
    integerColumns: [off, off + 5],
    note:
      'n = number of image pairs with a finite similarity; quartiles by linear interpolation.' +
      (skipped > 0 ? ` ${skipped} non-finite value${skipped === 1 ? '' : 's'} skipped.` : ''),
  };
}

function renderImageAuroc(a: ImageAurocData): string {
  const out: string[] = [];
  const headIdx = a.norms.indexOf(a.headlineNorm);
  const normHeader = (n: string): string => (n === a.headlineNorm ? `${n} ★ headline` : n);
  const counts = a.counts
    ? ` (${a.counts.good} good vs ${Object.values(a.counts.defects).reduce((s, v) => s + v, 0)} defective test images)`
    : '';
  out.push(
    renderTable({
      caption: `Image AUROC, good vs all defect kinds, by anomaly map and image-score norm${counts}`,
      columns: ['anomaly map', ...a.norms.map(normHeader)],
      rows: a.rows.map((r) => [r.mapKind, ...a.norms.map((n) => r.all[n] ?? null)]),
      integerColumns: [],
      highlightColumns: headIdx >= 0 ? [headIdx + 1] : [],
      note:
        `★ The headline score is the ${a.headlineNorm} norm of the anomaly map, declared before the results were seen; ` +
        'the other norms are shown for completeness (the authors’ code reports the best of the four).' +
        (a.note ? ` ${a.note}` : ''),
    }),
  );
  const anyPerDefect = a.rows.some((r) => r.perDefect && Object.keys(r.perDefect).length > 0);
  if (anyPerDefect && a.defectKinds.length > 0) {
    const rows: (string | number | null)[][] = [];
    for (const d of a.defectKinds) {
      const n = a.counts?.defects[d];
      for (const r of a.rows) {
        rows.push([n !== undefined ? `${d} (${n})` : d, r.mapKind, ...a.norms.map((nm) => r.perDefect?.[d]?.[nm] ?? null)]);
      }
    }
    out.push('<details open=""><summary>Image AUROC per defect kind (good vs that kind)</summary>');
    out.push(
      renderTable({
        caption: 'Image AUROC per defect kind, by anomaly map and norm',
        columns: ['defect kind', 'anomaly map', ...a.norms.map(normHeader)],
        rows,
        integerColumns: [],
        highlightColumns: headIdx >= 0 ? [headIdx + 2] : [],
      }),
    );
    out.push('</details>');
  }
  return out.join('\n');
}

function renderPixelAuroc(p: PixelAurocData): string {
  const kinds = p.defectKinds ?? [];
  return renderTable({
    caption: 'Pixel AUROC by anomaly map (all test pixels vs the ground-truth masks)',
    columns: ['anomaly map', 'all test images', ...kinds.map((k) => `good + ${k}`)],
    rows: p.rows.map((r) => [r.mapKind, r.auroc, ...kinds.map((k) => r.perDefect?.[k] ?? null)]),
    integerColumns: [],
    highlightColumns: [1],
    note: p.note,
  });
}

function renderCategory(c: CategoryReport, idx: number): string {
  const out: string[] = [];
  out.push(`<section class="category" id="cat-${idx}">`);
  out.push(`<h2>${esc(c.name)}${c.kind ? ` <span class="kind">${esc(c.kind)}</span>` : ''}</h2>`);
  out.push(`<div class="trend">${verdictBadge(c.trend.verdict)}<p>${esc(c.trend.statement)}</p></div>`);
  for (const n of c.notes ?? []) out.push(`<p class="note">${esc(n)}</p>`);

  if (c.trainingCurves && c.trainingCurves.length) {
    out.push('<h3>Training</h3>');
    out.push('<div class="figrow">' + c.trainingCurves.map((f) => renderFigure(f, 'half')).join('\n') + '</div>');
  }
  const fig3 =
    c.fig3 ??
    (c.cosine
      ? { title: `Fig. 3 — ${c.name}: cosine similarity per layer, AE vs AESc`, svg: cosineFigure(c.cosine, `${c.name}: cos(μ_i(x_clean), μ_i(x_stained))`) }
      : undefined);
  if (c.fig2 || fig3 || c.cosine) out.push('<h3>Latent representations</h3>');
  if (c.fig2) out.push(renderFigure(c.fig2, 'wide'));
  if (fig3) out.push(renderFigure(fig3, 'wide'));
  if (c.cosine) out.push(renderTable(cosineStatsTable(c.cosine)));

  if (c.imageAuroc || c.pixelAuroc) out.push('<h3>Anomaly detection</h3>');
  if (c.imageAuroc) out.push(renderImageAuroc(c.imageAuroc));
  if (c.pixelAuroc) out.push(renderPixelAuroc(c.pixelAuroc));

  if ((c.extraFigures && c.extraFigures.length) || (c.extraTables && c.extraTables.length)) {
    out.push('<h3>More</h3>');
    for (const f of c.extraFigures ?? []) out.push(renderFigure(f, 'wide'));
    for (const t of c.extraTables ?? []) out.push(renderTable(t));
  }
  out.push('</section>');
  return out.join('\n');
}

/** Escapes the credit line and turns its http(s) addresses into links. */
function renderCredit(credit: string): string {
  const parts = credit.split(/(https?:\/\/[^\s<>"']+)/g);
  return parts
    .map((p, i) => (i % 2 === 1 ? `<a href="${esc(p)}">${esc(p)}</a>` : esc(p)))
    .join('');
}

const CSS = `
:root { --fg:#1b1b1b; --muted:#5b5b5b; --line:#d9d9d9; --hl:#fff4d6; --bg:#ffffff; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f6f4; color: var(--fg);
  font: 15px/1.5 'DejaVu Sans', Verdana, 'Segoe UI', Roboto, Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; background: var(--bg); }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.35em; margin: 1.6em 0 0.4em; padding-top: 0.6em; border-top: 2px solid #333; }
h3 { font-size: 1.1em; margin: 1.4em 0 0.5em; color: #333; }
.subtitle { color: var(--muted); margin: 0 0 1em; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0.8em 0 1.2em; }
.facts dt { font-weight: bold; } .facts dd { margin: 0; }
nav ul { columns: 3; padding-left: 1.2em; }
.kind { font-size: 0.7em; font-weight: normal; color: var(--muted); border: 1px solid var(--line);
  border-radius: 4px; padding: 0 6px; vertical-align: middle; }
.badge { display: inline-block; font-size: 0.85em; font-weight: bold; border-radius: 4px; padding: 1px 8px; margin-right: 8px; }
.v-yes { background: #d9f2d9; color: #17561b; } .v-partly { background: #fff0c2; color: #6b4e00; }
.v-no { background: #fbd9d7; color: #8a1c14; } .v-na { background: #e6e6e6; color: #444; }
.trend { background: #fafafa; border-left: 4px solid #999; padding: 6px 12px; margin: 0.6em 0; }
.trend p { display: inline; margin: 0; }
.overall { border-left-color: #333; font-size: 1.05em; }
.note, .caption { color: var(--muted); font-size: 0.9em; margin: 0.3em 0 0.8em; }
.missing { color: #a00; }
figure.fig { margin: 0.6em 0 1.2em; }
.fig-title { font-weight: bold; margin-bottom: 4px; }
figure img, .svgwrap svg { max-width: 100%; height: auto; display: block; }
.figrow { display: flex; flex-wrap: wrap; gap: 16px; }
.figrow figure.half { flex: 1 1 460px; min-width: 0; }
.tablewrap { overflow-x: auto; margin: 0.4em 0; }
table { border-collapse: collapse; font-size: 0.88em; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.hl { background: var(--hl); } th.hl { background: #ffe8a8; }
table.config td:first-child { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; }
details summary { cursor: pointer; color: #333; margin: 0.6em 0 0.2em; }
footer { margin-top: 2.5em; color: var(--muted); font-size: 0.85em; border-top: 1px solid var(--line); padding-top: 0.6em; }
@media print { body { background: #fff; } main { max-width: none; } h2 { page-break-before: always; } }
`;

/**
 * Renders the whole report as one self-contained HTML document (no external requests, no script).
 */
export function renderReport(r: ReportData): string {
  const out: string[] = [];
  out.push('<!DOCTYPE html>');
  out.push('<html lang="en">');
  out.push('<head>');
  out.push('<meta charset="utf-8">');
  out.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  out.push(`<title>${esc(r.title)}</title>`);
  out.push(`<style>${CSS}</style>`);
  out.push('</head>');
  out.push('<body><main>');
  out.push(`<h1>${esc(r.title)}</h1>`);
  if (r.subtitle) out.push(`<p class="subtitle">${esc(r.subtitle)}</p>`);
  out.push('<dl class="facts">');
  out.push(`<dt>Machine</dt><dd>${esc(r.machine)}</dd>`);
  out.push(`<dt>Backend</dt><dd>${esc(r.backend)}</dd>`);
  out.push(`<dt>Run time</dt><dd>${esc(formatDuration(r.runTimeSeconds))}</dd>`);
  out.push(`<dt>Generated</dt><dd>${esc(r.generatedAt)}</dd>`);
  out.push(`<dt>Categories</dt><dd>${r.categories.length}</dd>`);
  out.push('</dl>');

  out.push('<section id="overall"><h2>Overall</h2>');
  out.push(`<div class="trend overall">${verdictBadge(r.overall.verdict)}<p>${esc(r.overall.statement)}</p></div>`);
  if (r.overall.table) out.push(renderTable(r.overall.table));
  if (r.categories.length) {
    out.push('<nav><ul>');
    r.categories.forEach((c, i) => {
      const v = c.trend.verdict ? ` — ${c.trend.verdict}` : '';
      out.push(`<li><a href="#cat-${i}">${esc(c.name)}</a>${esc(v)}</li>`);
    });
    out.push('</ul></nav>');
  }
  for (const n of r.notes ?? []) out.push(`<p class="note">${esc(n)}</p>`);
  out.push('</section>');

  out.push('<section id="config"><h2>Configuration</h2>');
  out.push('<div class="tablewrap"><table class="config"><thead><tr><th>key</th><th>value</th></tr></thead><tbody>');
  for (const [k, v] of configPairs(r.config)) {
    out.push(`<tr><td>${esc(k)}</td><td>${esc(v === null ? '—' : String(v))}</td></tr>`);
  }
  out.push('</tbody></table></div></section>');

  r.categories.forEach((c, i) => out.push(renderCategory(c, i)));

  out.push('<footer>');
  out.push('<p>Self-contained report: all figures and styles are embedded in this file.</p>');
  if (r.credit) out.push(`<p class="credit">${renderCredit(r.credit)}</p>`);
  out.push('</footer>');
  out.push('</main></body></html>');
  return out.join('\n') + '\n';
}
