/** How the bench tables mark a measurement (bench/tfjs-run.ts fmtTime / fmtRatio, shared by the op and model benches), a model row's cells, and the tfjs side's wait for its outputs. */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { fmtRatio, fmtTime } from '../bench/tfjs-run.js';
import { modelRowCells, MODEL_HEAD, type ModelRow } from '../bench/model.js';
import { waitFor } from '../bench/model-tfjs.js';

describe('bench formatting', () => {
  it('marks lower bounds with >, warm-up-only times with * and short medians with ~, on times and on ratios alike', () => {
    expect(fmtTime(12.345, 'median')).toBe('12 ms');
    expect(fmtTime(12.345, 'partial-median', 1)).toBe('~12.3 ms');
    expect(fmtRatio(2.5, 'partial-median', 1)).toBe('~2.5x');
    expect(fmtTime(4000, 'lower-bound')).toBe('>4.00 s');
    expect(fmtTime(2830, 'warm-up')).toBe('2.83 s*');
    expect(fmtTime(null, 'failed')).toBe('n/a');
    expect(fmtRatio(9.24, 'lower-bound', 1)).toBe('>9.2x');
    expect(fmtRatio(4.0, 'warm-up', 1)).toBe('4.0x*');
    expect(fmtRatio(1.5)).toBe('1.50x');
    expect(fmtRatio(null)).toBe('');
    expect(fmtRatio(Infinity)).toBe('');
  });

  it("a model row: images/s marked as its step time is, skipgrad's GPU buffers beside its tensor bytes, a first loss that differs", () => {
    const row = (over: Partial<ModelRow>): Record<string, string> => {
      const r: ModelRow = { model: 'AESc', impl: 'tfjs-webgpu', stepMs: 2000, stepBasis: 'median', stepTimes: [], forwardMs: 500,
        forwardBasis: 'median', imagesPerSecond: 4, peakBytes: 2 ** 20 * 158, firstLoss: 0.0891, stepRatio: 2, memoryRatio: 3.4, ...over };
      return Object.fromEntries(modelRowCells(r).map((c, i) => [MODEL_HEAD[i], c]));
    };
    expect(row({ stepBasis: 'warm-up' })['images/s']).toBe('4.00*');
    expect(row({ stepBasis: 'partial-median' })['images/s']).toBe('~4.00');
    expect(row({})['images/s']).toBe('4.00');
    expect(row({ impl: 'skipgrad-webgpu', peakBytes: 2 ** 20 * 46, peakBufferBytes: 2 ** 20 * 58 })['peak memory']).toBe('46 MiB (58 MiB in GPU buffers)');
    expect(row({})['peak memory']).toBe('158 MiB');
    expect(row({ firstLossRelDiff: 2e-3 })['first loss']).toBe('0.089100 (differs!)');
    expect(row({ firstLossRelDiff: 1e-7 })['first loss']).toBe('0.089100');
  });

  it('waitFor (the tfjs side waits for its outputs) takes any outputs, a scalar and an empty one too, and leaks no tensor', async () => {
    await tf.setBackend('cpu');
    const outs = [tf.ones([3, 4]), tf.scalar(2), tf.zeros([0, 3])];
    const before = tf.memory().numTensors;
    await waitFor(tf, outs);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(outs);
  });
});
