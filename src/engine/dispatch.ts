/**
 * The one dispatch point. Every op, forward and backward, is a call to runOp: it checks that the
 * inputs live on one backend with one dtype, allocates the outputs, runs the backend kernel, and
 * then does the three things no op can skip:
 *   - the audit trace entry, in every trace recording (op, phase, shapes, dtype, backend, wall time, FLOPs,
 *     optional value stats, and with { shadow: true } the op's distance from its own kernel run in float64 on the
 *     CPU from the same input values: audit/shadow.ts),
 *   - the NaN/Inf guard (throws at the first non-finite output, or input the op wrote in place, naming the op
 *     and its phase),
 *   - the autograd record (a Node on the output, with its inputs' storage versions) when grad is enabled and an
 *     input requires grad.
 */
import type { Backend, KernelNote, Storage, ValueStats } from './backend.js';
import { type DType, type Shape, shapeStr, sizeOf } from './dtype.js';
import { activeTraces, type Trace, type TraceEntry } from './audit/trace.js';
import { NonFiniteError, nanGuardEnabled } from './audit/guard.js';
import { shadowOp, snapshot, type ShadowResult } from './audit/shadow.js';
import { currentPhase, isGradEnabled } from './mode.js';
import { describeValue } from './ops/util.js';
import { installSettleAudits, Tensor } from './tensor.js';

export interface OpCall {
  /** The op's name, as it appears in traces and errors. */
  op: string;
  /** Every tensor the kernel reads. */
  inputs: Tensor[];
  /** What each input is (weight, bias...), for error messages; default "input i". */
  inputNames?: readonly string[];
  /** Shapes of the outputs (all of the inputs' dtype). */
  outputs: Shape[];
  /** Floating-point operations of the kernel, for the trace. */
  flops: number;
  /** Extra parameters to show in the trace (stride, padding, ...). */
  attrs?: Record<string, unknown>;
  /** Output 0 shares inputs[0]'s storage instead of being allocated (reshape); no kernel runs. */
  view?: boolean;
  /**
   * Inputs (by index) that the kernel also overwrites in place (Adam's parameter and moments, batch norm's running
   * statistics): their storages' version goes up, so a graph that used their old values cannot be backpropagated.
   */
  writes?: readonly number[];
  /** Inputs (by index) whose values `backward` never reads (batch norm's running statistics): they may change before it runs. */
  unread?: readonly number[];
  /** `backward` reads outputs[0]'s values (exp, sqrt, sigmoid, tanh, div): backward() refuses once they are overwritten in place. */
  readsOutput?: boolean;
  /** false: `backward` reads no input's values, only shapes (add, neg, reshape, sum...): none is version-checked. */
  readsInputs?: boolean;
  /** Runs the backend kernel: reads `ins`, writes every storage of `outs` (and of the inputs in `writes`); may say what it ran (KernelNote). */
  kernel?: (backend: Backend, outs: Storage[], ins: Storage[]) => KernelNote | void;
  /**
   * Gradients of outputs[0] with respect to each input, as new tensors made by other ops (or null where an
   * input gets none). Called by backward() with the gradient of outputs[0] and all outputs of this call.
   */
  backward?: (gy: Tensor, outs: Tensor[]) => Array<Tensor | null>;
}

/** Checks inputs, runs the kernel, traces, guards and records autograd. Returns the outputs. */
export function runOp(call: OpCall): Tensor[] {
  const { op, inputs } = call;
  if (inputs.length === 0) throw new Error(`${op}: no inputs`);
  for (let i = 0; i < inputs.length; i++) {
    if (!(inputs[i] instanceof Tensor)) throw new Error(`${op}: input ${i} is not a Tensor (got ${describeValue(inputs[i])})`);
    if (inputs[i].disposed) throw new Error(`${op}: input ${i} (tensor #${inputs[i].id} ${shapeStr(inputs[i].shape)}) was disposed`);
  }
  const backend = inputs[0].backend;
  const dtype: DType = inputs[0].dtype;
  const name = (j: number): string => `${call.inputNames?.[j] ?? `input ${j}`} ${shapeStr(inputs[j].shape)}`;
  for (let i = 1; i < inputs.length; i++) {
    if (inputs[i].backend !== backend) throw new Error(`${op}: ${name(i)} is on backend '${inputs[i].backend.name}' but ${name(0)} is on '${backend.name}'`);
    if (inputs[i].dtype !== dtype) throw new Error(`${op}: ${name(i)} is ${inputs[i].dtype} but ${name(0)} is ${dtype} (all inputs must share one dtype)`);
  }

  if (!call.backward && isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    throw new Error(`${op}: has no gradient of its own (it is a backward helper); call it under noGrad()`);
  }

  const traces = activeTraces();
  // The shadow audit (a trace with { shadow: true }): the inputs' values before the kernel can overwrite any of them.
  const before = !call.view && traces.some((t) => t.options.shadow) ? snapshot(backend, inputs.map((t) => t.handle)) : null;
  if (before instanceof Promise) before.catch(() => undefined);  // a failed op throws its own error; its snapshot's failure is not news
  const start = performance.now();
  let outs: Tensor[];
  let device: Promise<{ gpuMs?: number }> | undefined;
  let kernelNote: KernelNote;
  // The inputs' storage versions before the kernel wrote any of them: an op that overwrites an input its backward
  // reads (one not in `unread`) can then never be backpropagated, rather than silently with the new values.
  const versions = inputs.map((t, i) => (call.readsInputs === false || call.unread?.includes(i) ? -1 : t.handle.version));
  if (call.view) {
    outs = [inputs[0].viewAs(call.outputs[0])];
  } else {
    // Outputs one by one, so that a refused one (more than the device can hold) frees those made before it.
    const storages: Storage[] = [];
    try {
      for (const s of call.outputs) storages.push(backend.alloc(dtype, sizeOf(s), op));
    } catch (e) {
      for (const s of storages) backend.free(s);
      throw new Error(`${op}: output ${storages.length} ${shapeStr(call.outputs[storages.length])}: ${(e as Error).message}`, { cause: e });
    }
    backend.beginOp?.(op, traces.length > 0);
    try {
      kernelNote = call.kernel!(backend, storages, inputs.map((t) => t.handle)) ?? undefined;
    } catch (e) {
      void backend.endOp?.();
      for (const s of storages) backend.free(s);
      throw e;
    }
    device = backend.endOp?.();
    for (const i of call.writes ?? []) inputs[i].handle.version++;
    outs = storages.map((s, i) => new Tensor(s, call.outputs[i]));
  }
  const wallMs = performance.now() - start;
  let shadow: ShadowResult[] | Promise<ShadowResult[]> | undefined;
  let shadowError: unknown = null;
  if (before) {
    // The results' values now, in order with the work recorded so far; compared once both snapshots are in.
    const writes = call.writes ?? [];
    const after = snapshot(backend, [...outs.map((t) => t.handle), ...writes.map((i) => inputs[i].handle)]);
    try {
      shadow = shadowOp(call.kernel!, before, after, call.outputs.map(sizeOf), writes);
    } catch (e) {
      shadowError = e;  // the reference failed (at once, on the CPU): recorded on the trace, not thrown by the op
    }
  }
  const phase = currentPhase();
  const describeInputs = (): string => inputs.map((t) => `${shapeStr(t.shape)}${t.name ? ` '${t.name}'` : ''}`).join(', ');

  // One entry in every trace recording (traced() calls may nest inside each other and inside startTrace()).
  const entries: Array<[Trace, TraceEntry]> = traces.map((trace) => [trace, {
    index: trace.entries.length, op, phase, dtype, backend: backend.name,
    inputs: inputs.map((t) => t.shape.slice()), outputs: outs.map((t) => t.shape.slice()),
    startMs: start - trace.t0, wallMs, flops: call.flops,
    ...(call.attrs ? { attrs: call.attrs } : {}),
    ...(call.writes?.length ? { written: call.writes.slice() } : {}),
    ...(kernelNote !== undefined ? { kernel: kernelNote } : {}),
  }]);
  for (const [trace, entry] of entries) {
    trace.entries.push(entry);
    if (device) {
      trace.pending.push(device.then((d) => { if (d.gpuMs !== undefined) entry.gpuMs = d.gpuMs; }));
      trace.backends.add(backend);
    }
    if (before && trace.options.shadow) {
      const failed = (error: unknown): never => {
        trace.shadowFailures.push({ index: entry.index, op, error });
        throw error;
      };
      if (shadow instanceof Promise) {
        trace.shadowsPending++;
        const filled = shadow.then((r) => { entry.shadow = r; }, failed).finally(() => { trace.shadowsPending--; });
        filled.catch(() => undefined);  // thrown by trace.settle(), not as an unhandled rejection before it
        trace.pending.push(filled);
        trace.backends.add(backend);
      } else if (shadow) {
        entry.shadow = shadow;
      } else {
        trace.shadowFailures.push({ index: entry.index, op, error: shadowError });
        const thrown = Promise.reject(shadowError);  // settle() throws it too
        thrown.catch(() => undefined);
        trace.pending.push(thrown);
      }
    }
  }

  const wantStats = entries.some(([trace]) => trace.options.stats);
  if (nanGuardEnabled() || wantStats) {
    const guard = nanGuardEnabled();
    // The outputs, then the inputs the kernel overwrote in place (Adam's parameter and moments).
    const checked = [...outs.map((t) => t.handle), ...(call.writes ?? []).map((i) => inputs[i].handle)];
    const what = (k: number): string => {
      if (k < outs.length) return `output ${k} ${shapeStr(outs[k].shape)}`;
      const i = call.writes![k - outs.length];
      return `input ${i} ${shapeStr(inputs[i].shape)}${inputs[i].name ? ` '${inputs[i].name}'` : ''} (written in place)`;
    };
    const check = (stats: ValueStats[]): string | null => {
      for (const [trace, entry] of entries) if (trace.options.stats) entry.stats = stats;
      const bad = guard ? stats.findIndex((st) => st.nan > 0 || st.inf > 0) : -1;
      if (bad < 0) return null;
      const st = stats[bad];
      return `NaN guard: ${op} (${phase}) produced ${st.nan} NaN and ${st.inf} Inf values in ${what(bad)}; inputs ${describeInputs()}`;
    };
    const raw = checked.map((h) => backend.valueStats(h));
    if (raw.some((r) => r instanceof Promise)) {
      // The backend reads back asynchronously (webgpu): the check completes later and is thrown at the next readback.
      const done = Promise.all(raw).then((stats) => {
        const msg = check(stats);
        if (msg) throw new NonFiniteError(msg, op, phase);
      });
      deferredChecks.push(done);
      // Thrown by settleAudits() at the next readback; until then a failed check must not count as an unhandled
      // rejection (it can fail before that readback starts waiting for it).
      const handled = done.catch(() => undefined);
      for (const [trace] of entries) {
        trace.pending.push(handled);
        trace.backends.add(backend);
      }
    } else {
      const msg = check(raw as ValueStats[]);
      if (msg) {
        for (const t of outs) t.dispose();
        throw new NonFiniteError(msg, op, phase);
      }
    }
  }

  if (call.backward && outs.length > 0 && isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    outs[0].requiresGrad = true;
    const backward = call.backward;
    const outputVersion = call.readsOutput ? outs[0].handle.version : -1;
    outs[0].node = { op, inputs, versions, outputVersion, outputs: outs, backward: (gy) => backward(gy, outs) };
  }
  return outs;
}

const deferredChecks: Promise<void>[] = [];

/**
 * Waits for the audit checks still running on the device (the NaN guard on webgpu) and throws the
 * first failure, in op order. Tensor.data() calls it, so a NaN on the GPU surfaces at the next readback.
 */
export async function settleAudits(): Promise<void> {
  const pending = deferredChecks.splice(0);
  const results = await Promise.allSettled(pending);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/** runOp for the usual single-output op. */
export function runOp1(call: OpCall): Tensor {
  return runOp(call)[0];
}

installSettleAudits(settleAudits);
