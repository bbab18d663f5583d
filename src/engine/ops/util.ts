/** Shape helpers shared by the op files: row-major strides, broadcasting, axis normalisation, shape checks. */
import type { Shape } from '../dtype.js';
import { shapeStr } from '../dtype.js';
import { Tensor } from '../tensor.js';

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** numpy broadcasting: align right; each pair of dims equal or one of them 1. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast (axis ${i - rank}: ${da} vs ${db}; expected equal sizes or 1)`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read `shape` as if broadcast to `outShape` (0 along broadcast axes). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const own = contiguousStrides(shape);
  const offset = outShape.length - shape.length;
  return outShape.map((d, i) => {
    const j = i - offset;
    if (j < 0) return 0;
    return shape[j] === 1 && d !== 1 ? 0 : own[j];
  });
}

/** Normalises axes (negative from the end) to a sorted unique list; undefined = all axes. */
export function normalizeAxes(op: string, shape: Shape, axes: number | readonly number[] | undefined): number[] {
  const rank = shape.length;
  if (axes === undefined) return shape.map((_, i) => i);
  if (typeof axes !== 'number' && !Array.isArray(axes)) throw new Error(`${op}: axes must be a number or a list of numbers, got ${describeValue(axes)}`);
  const list = typeof axes === 'number' ? [axes] : axes;
  const out: number[] = [];
  for (const a of list) {
    if (!Number.isInteger(a) || a < -rank || a >= rank) {
      throw new Error(`${op}: axis ${a} is out of range for shape ${shapeStr(shape)} (rank ${rank}; expected -${rank}..${rank - 1})`);
    }
    const n = a < 0 ? a + rank : a;
    if (out.includes(n)) throw new Error(`${op}: axis ${a} is repeated in ${JSON.stringify(list)} (shape ${shapeStr(shape)})`);
    out.push(n);
  }
  return out.sort((x, y) => x - y);
}

/** Throws `op: name must be a Tensor, got a string` unless v is a Tensor (JavaScript callers have no type checker). */
export function expectTensor(op: string, name: string, v: unknown): asserts v is Tensor {
  if (!(v instanceof Tensor)) throw new Error(`${op}: ${name} must be a Tensor, got ${describeValue(v)}`);
}

/** A short description of a value for error messages: 'null', 'an array', 'the string "2"', 'a number (3)', 'an object'. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}...` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `a ${typeof v} (${String(v)})`;
  return typeof v === 'object' ? `an object (${v.constructor?.name ?? 'no prototype'})` : `a ${typeof v}`;
}

/**
 * Throws `op: name must be a list of non-negative integers, one per axis of [2,4], got [-1,0]` unless v is such
 * a list (with one entry per axis of `shape`, when it is given).
 */
export function expectIndexList(op: string, name: string, v: unknown, shape?: Shape): asserts v is number[] {
  if (!Array.isArray(v) || v.some((d) => !Number.isInteger(d) || d < 0) || (shape !== undefined && v.length !== shape.length)) {
    throw new Error(`${op}: ${name} must be a list of non-negative integers${shape !== undefined ? `, one per axis of ${shapeStr(shape)}` : ''}, got ${Array.isArray(v) ? JSON.stringify(v) : describeValue(v)}`);
  }
}

/** Throws `op: name has shape S, expected rank R (what)` unless t has rank r. */
export function expectRank(op: string, name: string, t: Tensor, rank: number, what: string): void {
  expectTensor(op, name, t);
  if (t.rank !== rank) throw new Error(`${op}: ${name} has shape ${shapeStr(t.shape)}, expected rank ${rank} ${what}`);
}

export function expectPositiveInt(op: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${op}: ${name} must be a positive integer, got ${v}`);
}

/**
 * Throws `op: unknown option 'strides' (expected stride, padding, bias)` when opts has a key that `known` does not:
 * a misspelt option would otherwise be ignored without a word (JavaScript callers have no type checker to catch it).
 * `known` is a Record over every key of the options type, so the compiler keeps it in step with the interface.
 */
export function expectOptions<T extends object>(op: string, opts: T | undefined | null, known: Record<keyof T, true>): void {
  if (opts === undefined || opts === null) return;
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object, got ${JSON.stringify(opts)}`);
  for (const key of Object.keys(opts)) {
    if (!Object.hasOwn(known, key)) throw new Error(`${op}: unknown option '${key}' (expected ${Object.keys(known).join(', ')})`);
  }
}
