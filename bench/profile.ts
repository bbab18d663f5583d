/**
 * `npm run bench:profile`: where the time of one training step goes, op by op.
 *
 * Builds the esann autoencoder (AESc or AE) as bench/model.ts does, runs warm-up steps (pipelines compiled,
 * buffer pools filled), then traces one more step (forward, MSE, backward, AdamW) and groups the trace by
 * op and phase: calls, host time, GPU time (timestamp queries, where the adapter has them), FLOPs and the
 * achieved GFLOP/s. It also reports the step's wall time next to the sum of GPU times: on a GPU, a wall time
 * well above the GPU sum means the step is bound by the host side (encoding, submits, readbacks), not by
 * the kernels. On webgpu it then times --untimed more steps without a trace (no per-op timestamp passes), half
 * with the runtime's early first submit (GpuRuntime.opsPerFirstSubmit: the GPU starts on the step's first
 * kernels while the host records the rest) and half without it, alternating: the median wall time of each.
 *
 * Options: PROFILE_OPTIONS below (`--help` prints them).
 *
 * Prints the table and writes the JSON.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as sg from '../src/engine/index.js';
import { formatTable } from '../src/engine/audit/trace.js';
import { writeFileAtomic } from '../src/engine/io/atomic.js';
import { benchMain, type BenchOptions, choiceArg, ESANN_STEP_OPTIONS, esannStepArgs, intArg, parseBenchArgs } from './args.js';
import { machineInfo, markdownTable } from './model.js';
import { esannStepper, median, type Stepper } from './model-step.js';
import { WebGPUBackend } from '../src/engine/webgpu/backend.js';
import type { GpuRuntime } from '../src/engine/webgpu/runtime.js';

export interface ProfileRow {
  op: string;
  phase: string;
  calls: number;
  hostMs: number;
  /** Sum of the calls' GPU times; null where the backend has no timestamps. */
  gpuMs: number | null;
  flops: number;
  /** flops / (gpuMs, else hostMs). */
  gflopsPerSecond: number | null;
  /** This row's share of the step's kernel time (GPU time where there is one, else host time). */
  share: number;
}

export interface ProfileOptions {
  backend: 'cpu' | 'webgpu';
  model: 'AESc' | 'AE';
  size: number;
  batch: number;
  channels: number;
  warmup: number;
  /** webgpu: untraced steps with and (as many) without the early first submit; 0: none. */
  untimed?: number;
  /** Where the JSON goes; null: nowhere (the report is returned). */
  out: string | null;
}

export const PROFILE_OPTIONS: BenchOptions = {
  backend: { type: 'string', help: 'cpu or webgpu (default webgpu)' },
  ...ESANN_STEP_OPTIONS,
  warmup: { type: 'string', help: 'untraced steps first (default 2)' },
  untimed: { type: 'string', help: 'webgpu: untraced steps after the trace, N with the early first submit and N without (default 5)' },
  out: { type: 'string', help: 'default bench/results/profile-<backend>.json' },
};

export function profileOptionsFromArgs(argv: string[]): ProfileOptions {
  const a = parseBenchArgs(argv, PROFILE_OPTIONS);
  const backend = choiceArg('backend', a.str('backend'), 'webgpu', ['cpu', 'webgpu'] as const);
  return {
    backend, ...esannStepArgs(a), warmup: intArg('warmup', a.str('warmup'), 2, 0),
    untimed: intArg('untimed', a.str('untimed'), 5, 0),
    out: a.str('out') ?? path.join('bench', 'results', `profile-${backend}.json`),
  };
}

/** Groups trace entries by (op, phase), largest kernel time first. */
export function groupTrace(entries: readonly sg.TraceEntry[]): ProfileRow[] {
  const groups = new Map<string, ProfileRow>();
  for (const e of entries) {
    const key = `${e.op}|${e.phase}`;
    let g = groups.get(key);
    if (!g) {
      g = { op: e.op, phase: e.phase, calls: 0, hostMs: 0, gpuMs: null, flops: 0, gflopsPerSecond: null, share: 0 };
      groups.set(key, g);
    }
    g.calls++;
    g.hostMs += e.wallMs;
    if (e.gpuMs !== undefined) g.gpuMs = (g.gpuMs ?? 0) + e.gpuMs;
    g.flops += e.flops;
  }
  const rows = [...groups.values()];
  const time = (r: ProfileRow): number => r.gpuMs ?? r.hostMs;
  const total = rows.reduce((s, r) => s + time(r), 0);
  for (const r of rows) {
    r.share = total > 0 ? time(r) / total : 0;
    r.gflopsPerSecond = r.flops > 0 && time(r) > 0 ? r.flops / (time(r) / 1000) / 1e9 : null;
  }
  return rows.sort((a, b) => time(b) - time(a));
}

export interface ProfileReport {
  kind: 'profile';
  backend: string;
  date: string;
  machine: ReturnType<typeof machineInfo>;
  settings: Record<string, unknown>;
  summary: { wallMs: number; hostMs: number; gpuMs: number | null; ops: number; flops: number; loss: number; imagesPerSecond: number };
  /**
   * webgpu: untraced steps, the median wall time with the runtime's early first submit (its default) and without
   * it (opsPerFirstSubmit = opsPerSubmit), measured alternately; null on cpu or with untimed 0.
   */
  untimed: { steps: number; earlyFirstSubmitMs: number; noEarlySubmitMs: number } | null;
  rows: ProfileRow[];
  table: string;
  markdown: string;
}

export async function runProfile(o: ProfileOptions): Promise<ProfileReport> {
  const be = await sg.useBackend(o.backend);
  const stepper = esannStepper(be, o);
  for (let i = 0; i < o.warmup; i++) await stepper.step();
  await be.sync?.();
  const t0 = performance.now();
  const { result: loss, trace } = sg.traced(() => stepper.record());
  const lossValue = await loss.item();
  await be.sync?.();
  const wallMs = performance.now() - t0;
  loss.dispose();
  await trace.settle();

  const untimedSteps = o.untimed ?? 0;
  const untimed = be instanceof WebGPUBackend && untimedSteps > 0 ? await timeUntraced(be.rt, stepper, untimedSteps) : null;

  const rows = groupTrace(trace.entries);
  const gpuTotal = rows.some((r) => r.gpuMs !== null) ? rows.reduce((s, r) => s + (r.gpuMs ?? 0), 0) : null;
  const hostTotal = rows.reduce((s, r) => s + r.hostMs, 0);
  const head = ['op', 'phase', 'calls', 'host ms', 'gpu ms', 'GFLOP', 'GFLOP/s', 'share'];
  const cells = rows.map((r) => [
    r.op, r.phase, String(r.calls), r.hostMs.toFixed(2), r.gpuMs === null ? '' : r.gpuMs.toFixed(3), (r.flops / 1e9).toFixed(2),
    r.gflopsPerSecond === null ? '' : r.gflopsPerSecond.toFixed(1), `${(100 * r.share).toFixed(1)}%`,
  ]);
  const summary = {
    wallMs, hostMs: hostTotal, gpuMs: gpuTotal, ops: trace.entries.length, flops: trace.totalFlops, loss: lossValue,
    imagesPerSecond: o.batch / (wallMs / 1000),
  };
  const report: ProfileReport = {
    kind: 'profile', backend: o.backend, date: new Date().toISOString(), machine: machineInfo(be.describe()),
    settings: { model: o.model, size: o.size, batch: o.batch, channels: o.channels, warmup: o.warmup, preset: 'esann', optimizer: 'AdamW lr 1e-3, weight decay 1e-2' },
    summary, untimed, rows,
    table: formatTable(head, cells), markdown: markdownTable(head, cells),
  };
  stepper.dispose();
  if (o.out !== null) writeFileAtomic(o.out, JSON.stringify(report, null, 2) + '\n');
  return report;
}

/** n steps with the runtime's early first submit and n without, alternating (see ProfileReport.untimed). */
async function timeUntraced(rt: GpuRuntime, stepper: Stepper, n: number): Promise<ProfileReport['untimed']> {
  const early = rt.opsPerFirstSubmit;
  const times: { early: number[]; late: number[] } = { early: [], late: [] };
  try {
    for (let i = 0; i < 2 * n; i++) {
      const withEarly = i % 2 === 0;
      rt.opsPerFirstSubmit = withEarly ? early : rt.opsPerSubmit;
      const t0 = performance.now();
      await stepper.step();
      (withEarly ? times.early : times.late).push(performance.now() - t0);
    }
  } finally {
    rt.opsPerFirstSubmit = early;
  }
  return { steps: n, earlyFirstSubmitMs: median(times.early), noEarlySubmitMs: median(times.late) };
}

/** The table and a summary line, as the command line prints them. */
export function describeProfile(r: ProfileReport): string {
  const s = r.summary, o = r.settings;
  const gpuLine = s.gpuMs === null ? 'no GPU timestamps' : `GPU time (sum over ops) ${s.gpuMs.toFixed(2)} ms`;
  return `${r.machine.device}\nesann ${String(o.model)} ${String(o.size)}x${String(o.size)}, batch ${String(o.batch)}, base width ${String(o.channels)}, `
    + `after ${String(o.warmup)} warm-up step(s)\n${r.table}\n\none step: wall ${s.wallMs.toFixed(2)} ms (${s.imagesPerSecond.toFixed(1)} images/s), `
    + `host time in ops ${s.hostMs.toFixed(2)} ms, ${gpuLine}, ${s.ops} ops, ${(s.flops / 1e9).toFixed(2)} GFLOP`
    + (r.untimed ? `\nuntraced steps (median of ${r.untimed.steps} each, alternating): ${r.untimed.earlyFirstSubmitMs.toFixed(2)} ms with the `
      + `early first submit, ${r.untimed.noEarlySubmitMs.toFixed(2)} ms without` : '');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchMain('dist/bench/profile.js', 'where the time of one esann training step goes, op by op (GPU time per op on webgpu).', PROFILE_OPTIONS, async (argv) => {
    const o = profileOptionsFromArgs(argv);
    const r = await runProfile(o);
    process.stdout.write(`\n${describeProfile(r)}\n${o.out !== null ? `wrote ${o.out}\n` : ''}`);
  });
  process.exit(0);
}
