/**
 * Every op rejects wrong ranks, shapes, dtypes and arguments with a message that names the op and
 * the offending shapes (or values), so a user can find the bad call from the message alone.
 *
 * `msg(...parts)` builds a regex that requires every part to appear in the message, in any order,
 * matched literally (so '[8,3,16,16]' means that exact shape string).
 */
import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A regex matching a message that contains every part (literally, any order). */
function msg(...parts: string[]): RegExp {
  return new RegExp(`^${parts.map((p) => `(?=[\\s\\S]*${escape(p)})`).join('')}`);
}

const t = (shape: number[], dtype: sg.DType = 'float32', requiresGrad = false): sg.Tensor => sg.zeros(shape, { dtype, requiresGrad });
const r = (shape: number[]): sg.Tensor => sg.normal(shape, 0, 1, { rng: new sg.Rng(1) });

/** The live-tensor count does not change across fn (which is expected to throw). */
function expectNoLeak(fn: () => void, pattern: RegExp): void {
  const before = sg.memory().tensors;
  expect(fn).toThrow(pattern);
  expect(sg.memory().tensors, 'live tensors after the rejected call').toBe(before);
}

describe('binary elementwise ops', () => {
  const ops = { add: sg.add, sub: sg.sub, mul: sg.mul, div: sg.div };
  for (const [name, op] of Object.entries(ops)) {
    it(`${name} rejects shapes that do not broadcast`, () => {
      expect(() => op(t([2, 3]), t([4]))).toThrow(msg(name, '[2,3]', '[4]'));
      expect(() => op(t([2, 3, 4]), t([3, 5]))).toThrow(msg(name, '[2,3,4]', '[3,5]'));
      expect(() => op(t([5, 1, 3]), t([2, 4, 1]))).toThrow(msg(name, '[5,1,3]', '[2,4,1]'));
    });

    it(`${name} rejects mixed float32 and float64 inputs, naming both dtypes`, () => {
      expect(() => op(t([2, 3]), t([2, 3], 'float64'))).toThrow(msg(name, 'float32', 'float64'));
      expect(() => op(t([2, 3], 'float64'), t([3]))).toThrow(msg(name, 'float32', 'float64'));
    });
  }

  it('add of two numbers is rejected', () => {
    expect(() => sg.add(1 as unknown as sg.Tensor, 2)).toThrow(msg('add', 'two numbers'));
  });
});

describe('unary ops', () => {
  it('leakyRelu and pow reject non-finite parameters', () => {
    expect(() => sg.leakyRelu(t([2]), Number.NaN)).toThrow(msg('leakyRelu', 'slope', 'NaN'));
    expect(() => sg.pow(t([2]), Number.POSITIVE_INFINITY)).toThrow(msg('pow', 'exponent', 'Infinity'));
  });
});

describe('matmul', () => {
  it('rejects ranks other than two rank-2 or two rank-3 tensors', () => {
    expect(() => sg.matmul(t([2, 3]), t([3]))).toThrow(msg('matmul', '[2,3]', '[3]'));
    expect(() => sg.matmul(t([3]), t([3, 2]))).toThrow(msg('matmul', '[3]', '[3,2]'));
    expect(() => sg.matmul(t([2, 3, 4]), t([4, 5]))).toThrow(msg('matmul', '[2,3,4]', '[4,5]'));
    expect(() => sg.matmul(t([1, 2, 3, 4]), t([1, 2, 4, 5]))).toThrow(msg('matmul', '[1,2,3,4]', '[1,2,4,5]'));
  });

  it('rejects an inner-dimension mismatch', () => {
    expect(() => sg.matmul(t([2, 3]), t([4, 5]))).toThrow(msg('matmul', '[2,3]', '[4,5]', '3', '4'));
    expect(() => sg.matmul(t([2, 5, 3]), t([2, 4, 6]))).toThrow(msg('matmul', '[2,5,3]', '[2,4,6]'));
    expect(() => sg.matmulT(t([2, 3]), t([2, 5]), false, true)).toThrow(msg('matmul', '[2,3]', '[2,5]'));
  });

  it('rejects different batch sizes', () => {
    expect(() => sg.matmul(t([2, 3, 4]), t([3, 4, 5]))).toThrow(msg('matmul', '[2,3,4]', '[3,4,5]'));
  });

  it('rejects mixed dtypes', () => {
    expect(() => sg.matmul(t([2, 3]), t([3, 4], 'float64'))).toThrow('matmul: b [3,4] is float64 but a [2,3] is float32 (all inputs must share one dtype)');
  });
});

describe('conv2d', () => {
  it('rejects inputs and weights that are not rank 4', () => {
    expect(() => sg.conv2d(t([3, 16, 16]), t([16, 3, 5, 5]))).toThrow(msg('conv2d', 'input', '[3,16,16]', 'rank 4'));
    expect(() => sg.conv2d(t([8, 3, 16, 16]), t([16, 3, 5]))).toThrow(msg('conv2d', 'weight', '[16,3,5]', 'rank 4'));
    expect(() => sg.conv2d(t([1, 8, 3, 16, 16]), t([16, 3, 5, 5]))).toThrow(msg('conv2d', '[1,8,3,16,16]'));
  });

  it('rejects a channel mismatch between input and weight', () => {
    expect(() => sg.conv2d(t([8, 3, 16, 16]), t([16, 1, 5, 5]))).toThrow(msg('conv2d', '3 channels', '[8,3,16,16]', '[16,1,5,5]'));
  });

  it('rejects a kernel larger than the padded input (empty output)', () => {
    expect(() => sg.conv2d(t([1, 3, 4, 4]), t([2, 3, 5, 5]))).toThrow(msg('conv2d', '[1,3,4,4]', '[2,3,5,5]', 'empty'));
    expect(() => sg.conv2d(t([1, 3, 4, 4]), t([2, 3, 7, 7]), { padding: 1 })).toThrow(msg('conv2d', '[1,3,4,4]', '[2,3,7,7]'));
    expect(() => sg.conv2d(t([1, 3, 4, 9]), t([2, 3, 5, 3]), { padding: [0, 2] })).toThrow(msg('conv2d', '[1,3,4,9]', '[2,3,5,3]'));
  });

  it('rejects a weight with an empty (zero-sized) kernel', () => {
    // A 0x0 kernel would give an output larger than the input, filled with the bias.
    expect(() => sg.conv2d(t([1, 3, 4, 4]), t([2, 3, 0, 0]))).toThrow(msg('conv2d', '[2,3,0,0]'));
  });

  it('rejects bad stride values', () => {
    const x = t([1, 3, 8, 8]);
    const w = t([2, 3, 3, 3]);
    expect(() => sg.conv2d(x, w, { stride: 0 })).toThrow(msg('conv2d', 'stride', '0'));
    expect(() => sg.conv2d(x, w, { stride: -1 })).toThrow(msg('conv2d', 'stride', '-1'));
    expect(() => sg.conv2d(x, w, { stride: 1.5 })).toThrow(msg('conv2d', 'stride', '1.5'));
    expect(() => sg.conv2d(x, w, { stride: [1, 2, 3] as unknown as [number, number] })).toThrow(msg('conv2d', 'stride', '[1,2,3]'));
  });

  it('rejects bad padding values', () => {
    const x = t([1, 3, 8, 8]);
    const w = t([2, 3, 3, 3]);
    expect(() => sg.conv2d(x, w, { padding: -1 })).toThrow(msg('conv2d', 'padding', '-1'));
    expect(() => sg.conv2d(x, w, { padding: 0.5 })).toThrow(msg('conv2d', 'padding', '0.5'));
    expect(() => sg.conv2d(x, w, { padding: [1, -1] })).toThrow(msg('conv2d', 'padding', '[1,-1]'));
    expect(() => sg.conv2d(x, w, { padding: [1, 2, 3] as unknown as [number, number] })).toThrow(msg('conv2d', 'padding', '[1,2,3]'));
    expect(() => sg.conv2d(x, w, { padding: [1, 1, 1, -2] })).toThrow(msg('conv2d', 'padding', '[1,1,1,-2]'));
    expect(() => sg.conv2d(x, w, { padding: 'causal' as unknown as 'same' })).toThrow(msg('conv2d', 'padding', 'causal'));
  });

  it("rejects unknown padding strings of length 2 or 4 such as TensorFlow's 'SAME' or 'full'", () => {
    // These reach code that treats the string as an array ('SAME'.every is not a function).
    const x = t([1, 3, 8, 8]);
    const w = t([2, 3, 3, 3]);
    expect(() => sg.conv2d(x, w, { padding: 'SAME' as unknown as 'same' })).toThrow(msg('conv2d', 'padding', 'SAME'));
    expect(() => sg.conv2d(x, w, { padding: 'full' as unknown as 'same' })).toThrow(msg('conv2d', 'padding', 'full'));
    expect(() => sg.conv2d(x, w, { padding: 'no' as unknown as 'same' })).toThrow(msg('conv2d', 'padding', 'no'));
  });

  it('rejects a bias of the wrong size', () => {
    const x = t([2, 3, 8, 8]);
    const w = t([4, 3, 3, 3]);
    expect(() => sg.conv2d(x, w, { bias: t([5]) })).toThrow(msg('conv2d', 'bias', '[5]', '[4]'));
    expect(() => sg.conv2d(x, w, { bias: t([1, 4]) })).toThrow(msg('conv2d', 'bias', '[1,4]', '[4]'));
  });

  it('rejects mixed dtypes among input, weight and bias', () => {
    // Each operand named, with its shape.
    expect(() => sg.conv2d(t([1, 3, 8, 8]), t([2, 3, 3, 3], 'float64'))).toThrow('conv2d: weight [2,3,3,3] is float64 but input [1,3,8,8] is float32');
    expect(() => sg.conv2d(t([1, 3, 8, 8]), t([2, 3, 3, 3]), { bias: t([2], 'float64') })).toThrow('conv2d: bias [2] is float64 but input [1,3,8,8] is float32');
    expect(() => sg.mseLoss(t([2, 2]), t([2, 2], 'float64'))).toThrow('mseLoss: target [2,2] is float64 but prediction [2,2] is float32');
    expect(() => sg.add(t([2]), t([2], 'float64'))).toThrow('add: input 1 [2] is float64 but input 0 [2] is float32');
  });
});

describe('conv2dGradInput and conv2dGradWeight', () => {
  it('conv2dGradInput rejects a dy of the wrong shape', () => {
    const w = t([4, 3, 3, 3]);
    // conv2d of [2,3,8,8] with this weight ('valid') gives [2,4,6,6]
    expect(() => sg.conv2dGradInput(t([2, 4, 7, 7]), w, [2, 3, 8, 8])).toThrow(msg('conv2dGradInput', 'dy', '[2,4,7,7]', '[2,4,6,6]'));
    expect(() => sg.conv2dGradInput(t([2, 5, 6, 6]), w, [2, 3, 8, 8])).toThrow(msg('conv2dGradInput', 'dy', '[2,5,6,6]', '[2,4,6,6]'));
    expect(() => sg.conv2dGradInput(t([1, 4, 6, 6]), w, [2, 3, 8, 8])).toThrow(msg('conv2dGradInput', 'dy', '[1,4,6,6]', '[2,4,6,6]'));
    expect(() => sg.conv2dGradInput(t([2, 4, 6, 6]), w, [2, 3, 8, 8], { stride: 2 })).toThrow(msg('conv2dGradInput', 'dy', '[2,4,6,6]', '[2,4,3,3]'));
    expect(() => sg.conv2dGradInput(t([4, 6, 6]), w, [2, 3, 8, 8])).toThrow(msg('conv2dGradInput', 'dy', '[4,6,6]', 'rank 4'));
  });

  it('conv2dGradInput rejects an inputShape of the wrong rank or channels', () => {
    const w = t([4, 3, 3, 3]);
    expect(() => sg.conv2dGradInput(t([2, 4, 6, 6]), w, [3, 8, 8])).toThrow(msg('conv2dGradInput', 'inputShape', '[3,8,8]'));
    expect(() => sg.conv2dGradInput(t([2, 4, 6, 6]), w, [2, 5, 8, 8])).toThrow(msg('conv2dGradInput', '5 channels', '[2,5,8,8]', '[4,3,3,3]'));
  });

  it('conv2dGradInput rejects an inputShape that is not four non-negative integers', () => {
    const w = t([4, 3, 3, 3]);
    // 8.5 rows: the geometry still gives a 6x6 dy, and 2*3*8.5*8 is a whole number of elements
    expect(() => sg.conv2dGradInput(t([2, 4, 6, 6]), w, [2, 3, 8.5, 8])).toThrow(msg('conv2dGradInput', '[2,3,8.5,8]'));
  });

  it('conv2dGradWeight rejects a dy of the wrong shape', () => {
    const x = t([2, 3, 8, 8]);
    expect(() => sg.conv2dGradWeight(x, t([2, 4, 5, 5]), [3, 3])).toThrow(msg('conv2dGradWeight', 'dy', '[2,4,5,5]', '[2,4,6,6]'));
    expect(() => sg.conv2dGradWeight(x, t([1, 4, 6, 6]), [3, 3])).toThrow(msg('conv2dGradWeight', 'dy', '[1,4,6,6]', '[2,4,6,6]'));
    expect(() => sg.conv2dGradWeight(x, t([2, 4, 6, 6]), [3, 3], { stride: 2, padding: 'same' })).toThrow(msg('conv2dGradWeight', 'dy', '[2,4,6,6]', '[2,4,4,4]'));
    expect(() => sg.conv2dGradWeight(x, t([4, 6, 6]), [3, 3])).toThrow(msg('conv2dGradWeight', 'dy', '[4,6,6]', 'rank 4'));
    expect(() => sg.conv2dGradWeight(t([3, 8, 8]), t([2, 4, 6, 6]), [3, 3])).toThrow(msg('conv2dGradWeight', 'input', '[3,8,8]', 'rank 4'));
  });

  it('conv2dGradWeight rejects a kernel size that is not a pair of positive integers', () => {
    const x = t([2, 3, 8, 8]);
    // with kernel [-1,3] the geometry asks for dy [2,4,10,6]; the weight shape [4,3,-1,3] must not reach the allocator
    const dy = t([2, 4, 10, 6]);
    const before = sg.getBackend().memory().storages;
    expect(() => sg.conv2dGradWeight(x, dy, [-1, 3])).toThrow(msg('conv2dGradWeight', 'kernel', '-1'));
    expect(sg.getBackend().memory().storages, 'storage count after the rejected call').toBe(before);
    expect(() => sg.conv2dGradWeight(x, t([2, 4, 9, 6]), [0, 3])).toThrow(msg('conv2dGradWeight', 'kernel', '0'));
  });
});

describe('convTranspose2d', () => {
  it('rejects outputPadding >= stride', () => {
    const x = t([1, 3, 4, 4]);
    const w = t([3, 2, 3, 3]);
    expect(() => sg.convTranspose2d(x, w, { stride: 2, outputPadding: 2 })).toThrow(msg('convTranspose2d', 'outputPadding', 'stride', '[2,2]'));
    expect(() => sg.convTranspose2d(x, w, { outputPadding: 1 })).toThrow(msg('convTranspose2d', 'outputPadding', '[1,1]', 'stride'));
    expect(() => sg.convTranspose2d(x, w, { stride: [2, 1], outputPadding: [1, 1] })).toThrow(msg('convTranspose2d', 'outputPadding', '[1,1]', '[2,1]'));
  });

  it('rejects a channel mismatch (weight is [inChannels, outChannels, kH, kW])', () => {
    expect(() => sg.convTranspose2d(t([1, 3, 4, 4]), t([4, 3, 3, 3]))).toThrow(msg('convTranspose2d', '3 channels', '[1,3,4,4]', '[4,3,3,3]'));
  });

  it('rejects wrong ranks', () => {
    expect(() => sg.convTranspose2d(t([3, 4, 4]), t([3, 2, 3, 3]))).toThrow(msg('convTranspose2d', 'input', '[3,4,4]', 'rank 4'));
    expect(() => sg.convTranspose2d(t([1, 3, 4, 4]), t([3, 2, 3]))).toThrow(msg('convTranspose2d', 'weight', '[3,2,3]', 'rank 4'));
  });

  it('rejects bad stride and padding values and an empty output', () => {
    const x = t([1, 3, 4, 4]);
    const w = t([3, 2, 3, 3]);
    expect(() => sg.convTranspose2d(x, w, { stride: 0 })).toThrow(msg('convTranspose2d', 'stride', '0'));
    expect(() => sg.convTranspose2d(x, w, { padding: -1 })).toThrow(msg('convTranspose2d', 'padding', '-1'));
    expect(() => sg.convTranspose2d(t([1, 3, 1, 1]), t([3, 2, 1, 1]), { padding: 1 })).toThrow(msg('convTranspose2d', 'empty', '[1,3,1,1]', '[3,2,1,1]'));
  });

  it('rejects a bias of the wrong size without computing (or leaking) an output', () => {
    const x = t([1, 3, 4, 4]);
    const w = t([3, 2, 3, 3]);
    const b = t([3]);
    expectNoLeak(() => sg.convTranspose2d(x, w, { bias: b }), msg('convTranspose2d', 'bias', '[3]', '[2]'));
  });

  it('rejects a float64 bias with a float32 input, naming convTranspose2d (not the internal add) and leaking nothing', () => {
    const x = t([1, 3, 4, 4]);
    const w = t([3, 2, 3, 3]);
    const b = t([2], 'float64');
    expectNoLeak(() => sg.convTranspose2d(x, w, { bias: b }), msg('convTranspose2d', 'float32', 'float64'));
  });

  it('rejects mixed dtypes of input and weight', () => {
    expect(() => sg.convTranspose2d(t([1, 3, 4, 4]), t([3, 2, 3, 3], 'float64'))).toThrow(msg('convTranspose2d', 'float32', 'float64'));
  });
});

describe('upsampleNearest2d', () => {
  it('rejects non-integer and non-positive scales', () => {
    const x = t([1, 2, 4, 4]);
    expect(() => sg.upsampleNearest2d(x, 1.5)).toThrow(msg('upsampleNearest2d', 'scale', '1.5'));
    expect(() => sg.upsampleNearest2d(x, 0)).toThrow(msg('upsampleNearest2d', 'scale', '0'));
    expect(() => sg.upsampleNearest2d(x, [2, 2.5])).toThrow(msg('upsampleNearest2d', 'scale', '[2,2.5]'));
    expect(() => sg.upsampleNearest2d(x, [2, 2, 2] as unknown as [number, number])).toThrow(msg('upsampleNearest2d', 'scale', '[2,2,2]'));
  });

  it('rejects inputs that are not rank 4', () => {
    expect(() => sg.upsampleNearest2d(t([2, 4, 4]), 2)).toThrow(msg('upsampleNearest2d', '[2,4,4]', 'rank 4'));
    expect(() => sg.upsampleNearest2d(t([1, 1, 2, 4, 4]), 2)).toThrow(msg('upsampleNearest2d', '[1,1,2,4,4]', 'rank 4'));
  });

  it('upsampleNearest2dGrad rejects a dy not divisible by the scale', () => {
    expect(() => sg.upsampleNearest2dGrad(t([1, 1, 5, 4]), 2)).toThrow(msg('upsampleNearest2dGrad', '[1,1,5,4]', '[2,2]'));
  });
});

describe('batchNorm2d', () => {
  const x = (): sg.Tensor => t([2, 3, 4, 4]);

  it('rejects gamma, beta or running stats of the wrong size', () => {
    expect(() => sg.batchNorm2d(x(), t([4]), t([3]), null, null, { training: true })).toThrow(msg('batchNorm2d', 'gamma', '[4]', '[3]', '[2,3,4,4]'));
    expect(() => sg.batchNorm2d(x(), t([3]), t([3, 1]), null, null, { training: true })).toThrow(msg('batchNorm2d', 'beta', '[3,1]', '[3]'));
    expect(() => sg.batchNorm2d(x(), t([3]), t([3]), t([2]), t([3]), { training: true })).toThrow(msg('batchNorm2d', 'runningMean', '[2]', '[3]'));
    expect(() => sg.batchNorm2d(x(), t([3]), t([3]), t([3]), t([6]), { training: false })).toThrow(msg('batchNorm2d', 'runningVar', '[6]', '[3]'));
  });

  it('rejects eval mode without running stats', () => {
    expect(() => sg.batchNorm2d(x(), t([3]), t([3]), null, null, { training: false })).toThrow(msg('batchNorm2d', 'eval', 'runningMean', 'runningVar'));
  });

  it('rejects only one of runningMean and runningVar', () => {
    expect(() => sg.batchNorm2d(x(), t([3]), t([3]), t([3]), null, { training: true })).toThrow(msg('batchNorm2d', 'runningMean', 'runningVar'));
  });

  it('rejects inputs that are not rank 4', () => {
    expect(() => sg.batchNorm2d(t([2, 3, 4]), t([3]), t([3]), null, null, { training: true })).toThrow(msg('batchNorm2d', '[2,3,4]', 'rank 4'));
  });

  it('rejects training with a single value per channel', () => {
    expect(() => sg.batchNorm2d(t([1, 3, 1, 1]), t([3]), t([3]), null, null, { training: true })).toThrow(msg('batchNorm2d', '[1,3,1,1]'));
  });

  it('rejects mixed dtypes', () => {
    expect(() => sg.batchNorm2d(x(), t([3], 'float64'), t([3]), null, null, { training: true })).toThrow(msg('batchNorm2d', 'float32', 'float64'));
  });
});

describe('reductions', () => {
  for (const [name, op] of Object.entries({ sum: sg.sum, mean: sg.mean })) {
    it(`${name} rejects an axis out of range`, () => {
      expect(() => op(t([2, 3, 4]), 3)).toThrow(msg(name, 'axis 3', '[2,3,4]'));
      expect(() => op(t([2, 3, 4]), -4)).toThrow(msg(name, 'axis -4', '[2,3,4]'));
      expect(() => op(t([2, 3, 4]), [0, 5])).toThrow(msg(name, 'axis 5', '[2,3,4]'));
      expect(() => op(t([2, 3, 4]), 1.5)).toThrow(msg(name, '1.5', '[2,3,4]'));
    });

    it(`${name} rejects a repeated axis`, () => {
      expect(() => op(t([2, 3, 4]), [1, 1])).toThrow(msg(name, 'repeated', '[1,1]'));
      expect(() => op(t([2, 3, 4]), [2, -1])).toThrow(msg(name, 'repeated', '[2,-1]'));
    });
  }
});

describe('shape ops', () => {
  it('reshape rejects an incompatible size', () => {
    expect(() => sg.reshape(t([2, 3]), [4, 2])).toThrow(msg('reshape', '[2,3]', '[4,2]'));
    expect(() => sg.reshape(t([2, 3]), [-1, 4])).toThrow(msg('reshape', '[2,3]', '[-1,4]'));
    expect(() => sg.reshape(t([2, 3]), [-1, -1])).toThrow(msg('reshape', '[-1,-1]'));
    expect(() => sg.reshape(t([2, 3]), [2, 1.5, 2])).toThrow(msg('reshape', '[2,1.5,2]'));
  });

  it('permute rejects a non-permutation', () => {
    expect(() => sg.permute(t([2, 3, 4]), [0, 0, 1])).toThrow(msg('permute', '[0,0,1]', '[2,3,4]'));
    expect(() => sg.permute(t([2, 3, 4]), [1, 0])).toThrow(msg('permute', '[1,0]', '[2,3,4]'));
    expect(() => sg.permute(t([2, 3, 4]), [0, 1, 3])).toThrow(msg('permute', '[0,1,3]', '[2,3,4]'));
  });

  it('transpose rejects rank < 2 and axes out of range', () => {
    expect(() => sg.transpose(t([3]))).toThrow(msg('transpose', '[3]'));
    expect(() => sg.transpose(t([2, 3]), 0, 2)).toThrow(msg('transpose', 'axis 2', '[2,3]'));
  });

  it('broadcastTo rejects a target the shape does not broadcast to', () => {
    expect(() => sg.broadcastTo(t([3]), [2, 4])).toThrow(msg('broadcastTo', '[3]', '[2,4]'));
    expect(() => sg.broadcastTo(t([2, 3]), [3])).toThrow(msg('broadcastTo', '[2,3]', '[3]'));
  });

  it('concat rejects mismatched shapes, ranks, axes and an empty list', () => {
    expect(() => sg.concat([t([2, 3]), t([3, 3])], 1)).toThrow(msg('concat', '[3,3]', '[2,3]'));
    expect(() => sg.concat([t([2, 3]), t([2, 3, 1])], 0)).toThrow(msg('concat', '[2,3,1]', '[2,3]'));
    expect(() => sg.concat([t([2, 3]), t([2, 3])], 2)).toThrow(msg('concat', 'axis 2', '[2,3]'));
    expect(() => sg.concat([])).toThrow(msg('concat'));
    expect(() => sg.concat([t([2, 3]), t([2, 3], 'float64')])).toThrow(msg('concat', 'float32', 'float64'));
  });

  it('slice rejects a box out of range', () => {
    expect(() => sg.slice(t([2, 4]), [0, 2], [2, 3])).toThrow(msg('slice', '[0,2]', '[2,3]', '[2,4]'));
    expect(() => sg.slice(t([2, 4]), [-1, 0], [1, 1])).toThrow(msg('slice', '[-1,0]', '[2,4]'));
    expect(() => sg.slice(t([2, 4]), [0], [1])).toThrow(msg('slice', '[0]', '[2,4]'));
    expect(() => sg.slice(t([2, 4]), [0, 0], [3, 1])).toThrow(msg('slice', '[3,1]', '[2,4]'));
  });
});

describe('mseLoss', () => {
  it('rejects a shape mismatch', () => {
    expect(() => sg.mseLoss(t([2, 3]), t([3, 2]))).toThrow(msg('mseLoss', '[2,3]', '[3,2]'));
    expect(() => sg.mseLoss(t([2, 3]), t([3]))).toThrow(msg('mseLoss', '[2,3]', '[3]'));
    expect(() => sg.mseLoss(t([6]), t([1, 6]))).toThrow(msg('mseLoss', '[6]', '[1,6]'));
  });

  it('rejects mixed dtypes and empty inputs', () => {
    expect(() => sg.mseLoss(t([2, 3]), t([2, 3], 'float64'))).toThrow(msg('mseLoss', 'float32', 'float64'));
    expect(() => sg.mseLoss(t([0, 3]), t([0, 3]))).toThrow(msg('mseLoss', 'empty'));
  });
});

describe('tensor creation', () => {
  it('fromArray rejects the wrong number of values', () => {
    expect(() => sg.fromArray([1, 2, 3, 4, 5], [2, 3])).toThrow(msg('fromArray', '5 values', '[2,3]', '6'));
    expect(() => sg.fromArray(new Float32Array(7), [2, 3])).toThrow(msg('fromArray', '7 values', '[2,3]'));
  });

  it('fromArray and zeros reject bad shapes and dtypes', () => {
    expect(() => sg.fromArray([1, 2], [2, -1])).toThrow(msg('fromArray', '[2,-1]'));
    expect(() => sg.zeros([2, 1.5])).toThrow(msg('full', '[2,1.5]'));
    expect(() => sg.fromArray([1, 2], [2], { dtype: 'int32' as unknown as sg.DType })).toThrow(msg('fromArray', 'int32'));
  });
});

describe('use after dispose()', () => {
  it('ops reject a disposed input, naming the op and its shape', () => {
    const a = r([2, 3]);
    const b = r([2, 3]);
    a.dispose();
    expect(() => sg.add(a, b)).toThrow(msg('add', 'disposed', '[2,3]'));
    expect(() => sg.add(b, a)).toThrow(msg('add', 'disposed', '[2,3]'));
    expect(() => sg.relu(a)).toThrow(msg('relu', 'disposed', '[2,3]'));
    expect(() => sg.mulScalar(a, 2)).toThrow(msg('mulScalar', 'disposed', '[2,3]'));
    expect(() => sg.reshape(a, [3, 2])).toThrow(msg('reshape', 'disposed', '[2,3]'));
    expect(() => sg.matmul(a, r([3, 2]))).toThrow(msg('matmul', 'disposed', '[2,3]'));
    expect(() => sg.sum(a)).toThrow(msg('sum', 'disposed', '[2,3]'));
  });

  it('conv2d and batchNorm2d reject a disposed input', () => {
    const x = r([1, 2, 5, 5]);
    const w = r([3, 2, 3, 3]);
    w.dispose();
    expect(() => sg.conv2d(x, w)).toThrow(msg('conv2d', 'disposed', '[3,2,3,3]'));
    const g = r([2]);
    g.dispose();
    expect(() => sg.batchNorm2d(x, g, r([2]), null, null, { training: true })).toThrow(msg('batchNorm2d', 'disposed', '[2]'));
  });

  it('reading a disposed tensor names it and its shape', () => {
    const a = r([2, 3]);
    a.dispose();
    expect(() => a.dataSync()).toThrow(msg('[2,3]', 'dispose'));
    expect(() => a.dtype).toThrow(msg('[2,3]', 'dispose'));
  });

  it('backward through a graph whose saved input was disposed fails with a message naming the tensor', () => {
    const x = r([2, 3]);
    x.requiresGrad = true;
    const y = sg.mul(x, x);
    const loss = sg.sum(y);
    x.dispose();
    expect(() => loss.backward()).toThrow(/disposed|dispose\(\)/);
  });
});

describe('backward()', () => {
  it('rejects a non-scalar output without a gradient', () => {
    const x = t([2, 3], 'float32', true);
    const y = sg.mulScalar(x, 2);
    expect(() => y.backward()).toThrow(msg('backward', '[2,3]'));
    expect(() => sg.backward(y)).toThrow(msg('backward', '[2,3]'));
  });

  it('rejects a gradient of the wrong shape', () => {
    const x = t([2, 3], 'float32', true);
    const y = sg.mulScalar(x, 2);
    expect(() => y.backward(t([3, 2]))).toThrow(msg('backward', '[3,2]', '[2,3]'));
    expect(() => y.backward(t([6]))).toThrow(msg('backward', '[6]', '[2,3]'));
    expect(() => y.backward(t([1, 2, 3]))).toThrow(msg('backward', '[1,2,3]', '[2,3]'));
  });

  it('rejects a gradient of another dtype', () => {
    const x = t([2, 3], 'float32', true);
    const y = sg.mulScalar(x, 2);
    expect(() => y.backward(t([2, 3], 'float64'))).toThrow(msg('backward', 'float32', 'float64'));
  });

  it('rejects an output that does not require grad', () => {
    const y = sg.mulScalar(t([1]), 2);
    expect(() => y.backward()).toThrow(msg('backward', '[1]', 'require'));
  });
});

describe('arguments of the wrong kind (JavaScript callers have no type checker)', () => {
  const X = r([2, 3]), BX = r([2, 2, 2, 2]), G = sg.ones([2]), B = sg.zeros([2]);
  const cases: Array<[string, () => unknown, string]> = [
    ['add with a string', () => sg.add(X, '2' as never), 'add: operand 1 must be a Tensor or a number, got the string "2"'],
    ['sub with an array', () => sg.sub([1, 2] as never, X), 'sub: operand 0 must be a Tensor or a number, got an array'],
    ['mul with null', () => sg.mul(X, null as never), 'mul: operand 1 must be a Tensor or a number, got null'],
    ['div of a string by a number', () => sg.div('x' as never, 2), 'div: operand 0 must be a Tensor or a number, got the string "x"'],
    ['exp of an array', () => sg.exp([1] as never), 'exp: input must be a Tensor, got an array'],
    ['pow of undefined', () => sg.pow(undefined as never, 2), 'pow: input must be a Tensor, got undefined'],
    ['mulScalar by a string', () => sg.mulScalar(X, '2' as never), 'mulScalar: its number argument must be a number, got the string "2"'],
    ['sum with keepdims as an options object', () => sg.sum(X, 1, { keepdims: false } as never), 'sum: keepdims must be true or false, got an object (Object)'],
    ['mean of a number', () => sg.mean(3 as never), 'mean: input must be a Tensor, got a number (3)'],
    ['reshape of null', () => sg.reshape(null as never, [6]), 'reshape: input must be a Tensor, got null'],
    ['concat of a tensor, not a list', () => sg.concat(X as never), 'concat: needs a non-empty array of tensors'],
    ['concat with a number in the list', () => sg.concat([X, 1] as never, 0), 'concat: tensor 1 must be a Tensor, got a number (1)'],
    ['matmul with an array', () => sg.matmul(X, [[1]] as never), 'matmul: operand 1 must be a Tensor, got an array'],
    ['mseLoss with an array target', () => sg.mseLoss(X, [1, 2] as never), 'mseLoss: target must be a Tensor, got an array'],
    ['conv2d of an array', () => sg.conv2d([1] as never, X), 'conv2d: input must be a Tensor, got an array'],
    ['batchNorm2d without options', () => sg.batchNorm2d(BX, G, B, null, null, undefined as never), 'batchNorm2d: options must say training: true (batch statistics) or false (running statistics), got training undefined'],
    ['batchNorm2d with a number for gamma', () => sg.batchNorm2d(BX, 1 as never, B, null, null, { training: true }), 'batchNorm2d: gamma must be a Tensor, got a number (1)'],
    ['fromArray with strings', () => sg.fromArray(['1', 'x'] as never, [2]), 'fromArray: value 0 is the string "1", expected a number'],
    ['fromArray of a number', () => sg.fromArray(3 as never, [1]), 'fromArray: values must be an array or a typed array of numbers, got a number (3)'],
    ['uniform with options where lo goes', () => sg.uniform([3], { rng: new sg.Rng(1) } as never), 'uniform: lo must be a finite number, got an object (Object) (options go last)'],
    ['uniform with hi below lo', () => sg.uniform([3], 2, 1), 'uniform: hi (1) is below lo (2)'],
    ['uniform over a range with no float32 in it', () => sg.uniform([2], 0.1, 0.1 + 1e-10), `uniform: no float32 value lies in [0.1, ${0.1 + 1e-10})`],
    ['normal with a negative sd', () => sg.normal([3], 0, -1), 'normal: sd must be >= 0, got -1'],
    ['Adam of one tensor, not a list', () => new sg.Adam(X as never), 'Adam: params must be an array of tensors (e.g. model.parameters()), got an object (Tensor)'],
    ['Adam of a tensor without requiresGrad', () => new sg.Adam([X]), `Adam: params[0] (tensor #${X.id}) does not require grad`],
    ['sum with axes as an options object', () => sg.sum(X, { axes: 0 } as never), 'sum: axes must be a number or a list of numbers, got an object (Object)'],
    ['reshape to a number', () => sg.reshape(X, 6 as never), 'reshape: the shape must be a list of integers (one may be -1), got a number (6)'],
    ['broadcastTo a number', () => sg.broadcastTo(X, 2 as never), 'broadcastTo: shape must be a list of non-negative integers, got a number (2)'],
    ['pad at a fractional offset', () => sg.pad(X, [3, 3], [0.5, 0]), 'pad: begin must be a list of non-negative integers, one per axis of [2,3], got [0.5,0]'],
    ['pad to a fractional shape', () => sg.pad(X, [2.5, 3], [0, 0]), 'pad: shape must be a list of non-negative integers, one per axis of [2,3], got [2.5,3]'],
    ['full with a string', () => sg.full([2], '3' as never), 'full: the value must be a number, got the string "3"'],
    ['batchNorm2d with a string momentum', () => sg.batchNorm2d(BX, G, B, null, null, { training: true, momentum: '0.1' as never }), 'batchNorm2d: momentum must be a number from 0 to 1, got the string "0.1"'],
    ['batchNorm2d with a negative eps', () => sg.batchNorm2d(BX, G, B, null, null, { training: true, eps: -1 }), 'batchNorm2d: eps must be a number > 0, got a number (-1)'],
  ];
  for (const [name, call, message] of cases) {
    it(`${name}: a message that names the op and what was wrong`, () => {
      expectNoLeak(() => call(), msg(message));
    });
  }

  it('an optimizer learning rate set later is checked too', () => {
    const p = sg.zeros([2], { requiresGrad: true });
    const opt = new sg.Adam([p]);
    expect(() => { opt.lr = NaN; }).toThrow('Adam: lr must be a finite number >= 0, got NaN');
    expect(opt.lr).toBe(1e-3);
    opt.lr = 0.5;
    expect(opt.lr).toBe(0.5);
    opt.dispose();
    p.dispose();
  });

  it('a null options object is no options (trace), and loadStateDict refuses values that are not numbers', async () => {
    const w = sg.ones([2]);
    expect(sg.traced(() => sg.exp(w), null as never).trace.entries.map((e) => e.op)).toEqual(['exp']);
    const conv = new sg.Conv2d(1, 2, 1);
    const before = Array.from(conv.weight.dataSync());
    await expect(conv.loadStateDict(new Map([['weight', { shape: [2, 1, 1, 1], data: [1, 2] }], ['bias', { shape: [2], data: ['abc', 1] as never }]])))
      .rejects.toThrow("loadStateDict: 'bias' value 0 is string, expected a number");
    expect(Array.from(conv.weight.dataSync())).toEqual(before);
    conv.dispose();
    w.dispose();
  });

  it('backward rejects a gradient on another backend', () => {
    const other = { ...sg.getBackend('cpu') } as sg.Backend;
    const y = sg.mulScalar(t([2], 'float32', true), 2);
    const seed = sg.ones([2], { backend: Object.assign(Object.create(Object.getPrototypeOf(sg.getBackend('cpu')) as object), other) as sg.Backend });
    expect(() => y.backward(seed)).toThrow(msg('backward: gradient is on backend', 'output is on'));
    seed.dispose();
    y.dispose();
  });
});

describe('options objects', () => {
  // JavaScript callers have no type checker: a misspelt option must be an error, not silently the default.
  // The inputs exist before the calls, so expectNoLeak sees only what a rejected call would leave behind.
  const X = r([1, 2, 6, 6]), W = r([3, 2, 3, 3]), DY = r([1, 3, 4, 4]), GAMMA = sg.ones([2]), BETA = sg.zeros([2]);
  const x = (): sg.Tensor => X;
  const w = (): sg.Tensor => W;
  const bn = (): [sg.Tensor, sg.Tensor] => [GAMMA, BETA];
  const cases: Array<[string, () => unknown, string]> = [
    ['conv2d', () => sg.conv2d(x(), w(), { strides: 2 } as never), "conv2d: unknown option 'strides' (expected stride, padding, bias)"],
    ['conv2dGradInput', () => sg.conv2dGradInput(DY, w(), [1, 2, 6, 6], { pad: 1 } as never), "conv2dGradInput: unknown option 'pad' (expected stride, padding)"],
    ['conv2dGradWeight', () => sg.conv2dGradWeight(x(), DY, [3, 3], { bias: null } as never), "conv2dGradWeight: unknown option 'bias' (expected stride, padding)"],
    ['convTranspose2d', () => sg.convTranspose2d(DY, w(), { output_padding: 1 } as never), "convTranspose2d: unknown option 'output_padding' (expected stride, padding, outputPadding, bias)"],
    ['batchNorm2d', () => sg.batchNorm2d(x(), ...bn(), null, null, { training: true, epsilon: 1e-3 } as never), "batchNorm2d: unknown option 'epsilon' (expected training, momentum, eps)"],
    ['zeros', () => sg.zeros([2], { requiresgrad: true } as never), "full: unknown option 'requiresgrad' (expected dtype, backend, requiresGrad)"],
    ['fromArray', () => sg.fromArray([1, 2], [2], { type: 'float64' } as never), "fromArray: unknown option 'type' (expected dtype, backend, requiresGrad)"],
    ['uniform', () => sg.uniform([2], 0, 1, { seed: 3 } as never), "uniform: unknown option 'seed' (expected dtype, backend, requiresGrad, rng)"],
    ['normal', () => sg.normal([2], 0, 1, { random: new sg.Rng(0) } as never), "normal: unknown option 'random'"],
    ['Adam', () => new sg.Adam([], { learningRate: 0.1 } as never), "Adam: unknown option 'learningRate' (expected lr, betas, eps, weightDecay, decoupled)"],
    ['Conv2d', () => new sg.Conv2d(1, 2, 3, { strides: 2 } as never), "Conv2d: unknown option 'strides' (expected stride, padding, bias, rng, backend, dtype)"],
    ['ConvTranspose2d', () => new sg.ConvTranspose2d(1, 2, 3, { output_padding: 1 } as never), "ConvTranspose2d: unknown option 'output_padding'"],
    ['BatchNorm2d', () => new sg.BatchNorm2d(2, { affine: false } as never), "BatchNorm2d: unknown option 'affine' (expected momentum, eps, backend, dtype)"],
    ['traced', () => sg.traced(() => 0, { values: true } as never), "trace: unknown option 'values' (expected stats, shadow)"],
    ['startTrace', () => sg.startTrace({ stat: true } as never), "trace: unknown option 'stat' (expected stats, shadow)"],
  ];
  for (const [name, call, message] of cases) {
    it(`${name} rejects an unknown option, naming it and the options expected`, () => {
      expectNoLeak(() => call(), msg(message));
    });
  }

  it('options must be an object', () => {
    expect(() => sg.conv2d(x(), w(), 2 as never)).toThrow("conv2d: options must be an object, got 2");
  });

  it('every known option is accepted (the lists are in step with the types)', () => {
    const y = sg.conv2d(x(), w(), { stride: 1, padding: 'same', bias: null });
    expect(y.shape).toEqual([1, 3, 6, 6]);
    expect(sg.uniform([2], 0, 1, { dtype: 'float64', backend: 'cpu', requiresGrad: true, rng: new sg.Rng(0) }).dtype).toBe('float64');
    expect(new sg.Adam([], { lr: 1, betas: [0.5, 0.5], eps: 1, weightDecay: 0, decoupled: true }).lr).toBe(1);
    expect(new sg.BatchNorm2d(2, { momentum: 0.1, eps: 1e-5, backend: 'cpu' }).channels).toBe(2);
  });
});
