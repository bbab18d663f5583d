/**
 * Elementwise ops. Binary ops broadcast numpy-style; a number on either side makes a scalar op.
 *
 *   op          forward                     backward (gy = gradient of the output)
 *   add         a + b                       gy, gy                       (each summed back to its input's shape)
 *   sub         a - b                       gy, -gy
 *   mul         a * b                       gy*b, gy*a
 *   div         a / b                       gy/b, -gy*a/b^2              (a number b: divScalar, gy/b)
 *   neg         -x                          -gy
 *   exp         e^x                         gy*y
 *   log         ln x                        gy/x
 *   sqrt        sqrt x                      gy/(2y)
 *   square      x^2                         gy*2x
 *   pow         x^p (p a number)            gy*p*x^(p-1)                 (gy*0 for p = 0, also at x = 0)
 *   relu        max(x, 0)                   reluGrad(gy, x)      = gy*(x>0)
 *   leakyRelu   x>0 ? x : s*x               leakyReluGrad(gy, x) = gy*(x>0 ? 1 : s)
 *   sigmoid     1/(1+e^-x)                  sigmoidGrad(gy, y)   = gy*y*(1-y)
 *   tanh        tanh x                      tanhGrad(gy, y)      = gy*(1-y^2)
 */
import type { BinaryOp, UnaryOp } from '../backend.js';
import { runOp1 } from '../dispatch.js';
import { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { broadcastShapes, broadcastStrides, describeValue, expectTensor } from './util.js';

type Backward = (gy: Tensor, y: Tensor) => Tensor;

/**
 * What an op's backward reads, for backward()'s check that nothing it reads was overwritten in place since the op
 * ran: readsOutput, y (exp, sqrt, sigmoid, tanh, div); readsInputs false, none of the inputs' values (add, neg...).
 */
interface Reads {
  readsOutput?: boolean;
  readsInputs?: boolean;
}

function unary(op: string, kind: UnaryOp, x: Tensor, param: number, backward: Backward, o: Reads & { flops?: number } = {}): Tensor {
  expectTensor(op, 'input', x);
  if (typeof param !== 'number') throw new Error(`${op}: its number argument must be a number, got ${describeValue(param)}`);
  return runOp1({
    op, inputs: [x], outputs: [x.shape], flops: (o.flops ?? 1) * x.size,
    ...(kind.endsWith('Scalar') || kind === 'leakyRelu' ? { attrs: { param } } : {}),
    kernel: (be, [out], [xs]) => be.unary(kind, xs, out, param),
    backward: (gy, [y]) => [backward(gy, y)],
    ...(o.readsOutput ? { readsOutput: true } : {}),
    ...(o.readsInputs === false ? { readsInputs: false } : {}),
  });
}

/** A binary kernel with broadcasting; `backward` gets gy at the broadcast shape and returns gradients that are summed back to each input's shape. */
function binary(op: string, kind: BinaryOp, a: Tensor, b: Tensor, param: number,
  backward?: (gy: Tensor, y: Tensor) => [Tensor | null, Tensor | null], reads: Reads = {}): Tensor {
  [a, b].forEach((v, i) => {
    if (!(v instanceof Tensor)) throw new Error(`${op}: operand ${i} must be a Tensor or a number, got ${describeValue(v)}`);
  });
  const outShape = broadcastShapes(op, a.shape, b.shape);
  return runOp1({
    op, inputs: [a, b], outputs: [outShape], flops: outShape.reduce((p, d) => p * d, 1),
    kernel: (be, [out], [as, bs]) => be.binary(kind, as, broadcastStrides(a.shape, outShape), bs, broadcastStrides(b.shape, outShape), out, outShape, param),
    ...(backward ? {
      backward: (gy: Tensor, [y]: Tensor[]) => {
        const [ga, gb] = backward(gy, y);
        return [reduceTo(ga, a), reduceTo(gb, b)];
      },
      ...(reads.readsOutput ? { readsOutput: true } : {}),
      ...(reads.readsInputs === false ? { readsInputs: false } : {}),
    } : {}),
  });
}

function reduceTo(g: Tensor | null, input: Tensor): Tensor | null {
  if (!g) return null;
  if (g.shape.length === input.shape.length && g.shape.every((d, i) => d === input.shape[i])) return g;
  const r = sumTo(g, input.shape);
  g.dispose();
  return r;
}

// ---- binary ops (tensor or number on either side) ----

export function add(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(asTensor('add', a), b);
  if (typeof a === 'number') return addScalar(b, a);
  return binary('add', 'add', a, b, 0, (gy) => [gy.viewAs(gy.shape), gy.viewAs(gy.shape)], { readsInputs: false });
}

export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(asTensor('sub', a), -b);
  if (typeof a === 'number') return rsubScalar(b, a);
  return binary('sub', 'sub', a, b, 0, (gy) => [gy.viewAs(gy.shape), neg(gy)], { readsInputs: false });
}

export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(asTensor('mul', a), b);
  if (typeof a === 'number') return mulScalar(b, a);
  return binary('mul', 'mul', a, b, 0, (gy) => [mul(gy, b), mul(gy, a)]);
}

export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return divScalar(asTensor('div', a), b);
  if (typeof a === 'number') return rdivScalar(b, a);
  return binary('div', 'div', a, b, 0, (gy, y) => {
    // d(a/b)/db = -a/b^2 = -y/b
    const t = div(y, b);
    const gb = mul(gy, t);
    t.dispose();
    const ngb = neg(gb);
    gb.dispose();
    return [div(gy, b), ngb];
  }, { readsOutput: true });
}

function asTensor(op: string, v: Tensor | number): Tensor {
  if (typeof v === 'number') throw new Error(`${op}: expected a Tensor on at least one side, got two numbers`);
  if (!(v instanceof Tensor)) throw new Error(`${op}: operand 0 must be a Tensor or a number, got ${describeValue(v)}`);
  return v;
}

// ---- ops with a scalar ----

export function addScalar(x: Tensor, s: number): Tensor {
  return unary('addScalar', 'addScalar', x, s, (gy) => gy.viewAs(gy.shape), { readsInputs: false });
}

export function mulScalar(x: Tensor, s: number): Tensor {
  return unary('mulScalar', 'mulScalar', x, s, (gy) => mulScalar(gy, s), { readsInputs: false });
}

/** x / s (a true division: x * (1/s) would round twice, e.g. 49 * (1/49) = 0.9999999999999999 in float64) */
export function divScalar(x: Tensor, s: number): Tensor {
  return unary('divScalar', 'divScalar', x, s, (gy) => divScalar(gy, s), { readsInputs: false });
}

/** s - x */
export function rsubScalar(x: Tensor, s: number): Tensor {
  return unary('rsubScalar', 'rsubScalar', x, s, (gy) => neg(gy), { readsInputs: false });
}

/** s / x */
export function rdivScalar(x: Tensor, s: number): Tensor {
  return unary('rdivScalar', 'rdivScalar', x, s, (gy) => {
    const x2 = square(x);
    const num = mulScalar(gy, -s);
    const g = div(num, x2);
    x2.dispose();
    num.dispose();
    return g;
  });
}

/** x ** p for a number p. */
export function pow(x: Tensor, p: number): Tensor {
  if (typeof p !== 'number' || !Number.isFinite(p)) throw new Error(`pow: exponent must be a finite number, got ${String(p)}`);
  return unary('pow', 'powScalar', x, p, (gy) => {
    if (p === 0) return mulScalar(gy, 0); // x^0 = 1 everywhere; p * x^-1 would be 0 * Inf = NaN at x = 0
    const d = pow(x, p - 1);
    const g = mul(gy, d);
    d.dispose();
    const r = mulScalar(g, p);
    g.dispose();
    return r;
  }, { flops: 10 });
}

// ---- unary ops ----

export function neg(x: Tensor): Tensor {
  return unary('neg', 'neg', x, 0, (gy) => neg(gy), { readsInputs: false });
}

export function exp(x: Tensor): Tensor {
  return unary('exp', 'exp', x, 0, (gy, y) => mul(gy, y), { flops: 10, readsOutput: true });
}

export function log(x: Tensor): Tensor {
  return unary('log', 'log', x, 0, (gy) => div(gy, x), { flops: 10 });
}

export function sqrt(x: Tensor): Tensor {
  return unary('sqrt', 'sqrt', x, 0, (gy, y) => {
    const g = div(gy, y);
    const r = mulScalar(g, 0.5);
    g.dispose();
    return r;
  }, { flops: 4, readsOutput: true });
}

export function square(x: Tensor): Tensor {
  return unary('square', 'square', x, 0, (gy) => {
    const g = mul(gy, x);
    const r = mulScalar(g, 2);
    g.dispose();
    return r;
  });
}

export function relu(x: Tensor): Tensor {
  return unary('relu', 'relu', x, 0, (gy) => gradOp('reluGrad', gy, x, 0));
}

export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  if (typeof slope !== 'number' || !Number.isFinite(slope)) throw new Error(`leakyRelu: slope must be a finite number, got ${String(slope)}`);
  return unary('leakyRelu', 'leakyRelu', x, slope, (gy) => gradOp('leakyReluGrad', gy, x, slope));
}

export function sigmoid(x: Tensor): Tensor {
  return unary('sigmoid', 'sigmoid', x, 0, (gy, y) => gradOp('sigmoidGrad', gy, y, 0), { flops: 4, readsOutput: true });
}

export function tanh(x: Tensor): Tensor {
  return unary('tanh', 'tanh', x, 0, (gy, y) => gradOp('tanhGrad', gy, y, 0), { flops: 4, readsOutput: true });
}

/** The fused activation-gradient kernels (same shapes, no broadcasting); backward helpers without a gradient of their own. */
function gradOp(kind: 'reluGrad' | 'leakyReluGrad' | 'sigmoidGrad' | 'tanhGrad', gy: Tensor, saved: Tensor, param: number): Tensor {
  return binary(kind, kind, gy, saved, param);
}
