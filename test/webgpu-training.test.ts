/**
 * Training on the webgpu backend: the same small conv net, same initial weights and data, gives the same
 * losses as the CPU backend; 200 steps keep the live GPU buffer count constant; the trace records GPU ops
 * with device time; the NaN guard works on GPU tensors (reported at the next readback).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import * as sg from '../src/engine/index.js';
import type { WebGPUBackend } from '../src/engine/webgpu/backend.js';
import { buildAutoencoder } from '../src/models/autoencoder.js';
import { trainAutoencoder } from '../src/experiments/train.js';
import { float32OnlyNeg } from './helpers/shadow-ops.js';
import { webgpuBackendOrSkip } from './webgpu/gpu.js';

const gpu = await webgpuBackendOrSkip('webgpu training tests');

interface Net { params: sg.Tensor[]; stats: sg.Tensor[]; x: sg.Tensor; target: sg.Tensor; opt: sg.Adam }

function makeNet(backend: string): Net {
  const rng = new sg.Rng(21);
  const o = { backend };
  const params = [
    sg.normal([8, 1, 3, 3], 0, 0.4, { rng, ...o }), sg.zeros([8], o), // conv1 + bias
    sg.ones([8], o), sg.zeros([8], o), // batch norm gamma, beta
    sg.normal([8, 4, 3, 3], 0, 0.2, { rng, ...o }), // transposed conv 8 -> 4
    sg.normal([1, 4, 3, 3], 0, 0.2, { rng, ...o }), // output conv
  ].map((p) => p.keep());
  for (const p of params) p.requiresGrad = true;
  const stats = [sg.zeros([8], o).keep(), sg.ones([8], o).keep()];
  const x = sg.uniform([2, 1, 12, 12], 0, 1, { rng, ...o }).keep();
  const target = sg.uniform([2, 1, 12, 12], 0, 1, { rng, ...o }).keep();
  return { params, stats, x, target, opt: new sg.Adam(params, { lr: 0.01, decoupled: true, weightDecay: 1e-4 }) };
}

function step(net: Net): sg.Tensor {
  return sg.scope(() => {
    const [w1, b1, g, b, wt, w2] = net.params;
    let h = sg.conv2d(net.x, w1, { stride: 2, padding: 'same', bias: b1 });
    h = sg.leakyRelu(sg.batchNorm2d(h, g, b, net.stats[0], net.stats[1], { training: true }), 0.01);
    h = sg.leakyRelu(sg.convTranspose2d(h, wt, { stride: 2, padding: 1, outputPadding: 1 }), 0.01);
    const y = sg.sigmoid(sg.conv2d(h, w2, { padding: 'same' }));
    const loss = sg.mseLoss(y, net.target);
    loss.backward();
    net.opt.step();
    sg.zeroGrad(net.params);
    return loss;
  });
}

async function losses(backend: string, steps: number): Promise<number[]> {
  const net = makeNet(backend);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const l = step(net);
    out.push(await l.item());
    l.dispose();
  }
  for (const t of [...net.params, ...net.stats, net.x, net.target]) t.dispose();
  net.opt.dispose();
  return out;
}

describe.skipIf(!gpu)('training on webgpu', () => {
  it('a few training steps give the same losses as on the CPU', async () => {
    const cpu = await losses('cpu', 6);
    const webgpu = await losses('webgpu', 6);
    expect(cpu[5]).toBeLessThan(cpu[0]);
    for (let i = 0; i < cpu.length; i++) expect(Math.abs(webgpu[i] - cpu[i])).toBeLessThan(1e-4 * (1 + Math.abs(cpu[i])));
  });

  it('the training loop overfits one small batch on webgpu: the loss falls 10x', async () => {
    const rng = new sg.Rng(5);
    const data = Array.from({ length: 4 }, () => {
      const fx = rng.uniform(1, 3), ph = rng.uniform(0, 6);
      return Float32Array.from({ length: 32 * 32 }, (_, i) => 0.5 + 0.35 * Math.sin((fx * (i % 32)) / 32 * 6.28 + ph) * Math.cos(Math.floor(i / 32) / 32 * 6.28));
    });
    const model = buildAutoencoder('esann', { skips: true, inputSize: 32, depth: 3, baseChannels: 4, seed: 1, backend: 'webgpu' });
    const r = await trainAutoencoder({ model, train: data, validation: data.slice(0, 2), epochs: 60, batchSize: 4, lr: 0.01, seed: 1, progress: false });
    expect(r.stepLosses[r.stepLosses.length - 1]).toBeLessThan(r.stepLosses[0] / 10);
    model.dispose();
  });

  it('200 training steps keep the live GPU buffer count constant, and reuse their bind groups', async () => {
    const be = gpu as WebGPUBackend;
    const net = makeNet('webgpu');
    const counts: Array<{ tensors: number; buffers: number; bytes: number; bindGroups: number }> = [];
    for (let i = 0; i < 200; i++) {
      const l = step(net);
      if (i % 20 === 0) await l.item();
      l.dispose();
      const m = sg.memory('webgpu');
      counts.push({ tensors: m.tensors, buffers: be.rt.counters.liveBuffers, bytes: m.bytes, bindGroups: be.rt.counters.bindGroups });
    }
    // From the third step or so on, no new bind groups: the pool hands out the same buffers in the same order.
    expect(counts[199].bindGroups - counts[4].bindGroups).toBe(0);
    await be.sync();
    const after = counts.slice(2);
    expect(new Set(after.map((c) => c.buffers)).size).toBe(1);
    expect(new Set(after.map((c) => c.tensors)).size).toBe(1);
    expect(new Set(after.map((c) => c.bytes)).size).toBe(1);
    // The pool reuses buffers: it does not grow with the number of steps.
    expect(be.rt.counters.pooledBuffers).toBeLessThan(200);
    for (const t of [...net.params, ...net.stats, net.x, net.target]) t.dispose();
    net.opt.dispose();
  });

  it('the trace records GPU ops, with device time when the adapter has timestamps (a trace turns timing on)', async () => {
    const be = gpu as WebGPUBackend;
    expect(be.rt.timing).toBe(false);
    const x = sg.uniform([1, 2, 8, 8], 0, 1, { backend: 'webgpu' });
    const w = sg.uniform([3, 2, 3, 3], 0, 1, { backend: 'webgpu' });
    const { result, trace } = sg.traced(() => sg.relu(sg.conv2d(x, w, { padding: 'same' })), { stats: true });
    await result.data();
    await trace.settle();
    expect(trace.entries.map((e) => e.op)).toEqual(['conv2d', 'relu']);
    expect(trace.entries.every((e) => e.backend === 'webgpu')).toBe(true);
    expect(trace.entries[0].stats![0].nan).toBe(0);
    if (be.gpu.hasTimestamps) for (const e of trace.entries) expect(e.gpuMs).toBeGreaterThanOrEqual(0);
    // Which launch computed the conv (chooseTiles' pick for 3 x 64 outputs: 4-row tiles, as narrow as a warp allows), and
    // no note for relu.
    expect(trace.entries[0].kernel).toBe('conv2d.wgsl, 4x128 tiles 4 deep, 4x4 per thread (32 threads)');
    expect(trace.entries[1].kernel).toBeUndefined();
    for (const t of [x, w, result]) t.dispose();
  });

  it('the shadow audit on webgpu: each op of a training step against float64 from its own inputs, in order with the GPU work', async () => {
    const net = makeNet('webgpu');
    const { result, trace } = sg.traced(() => step(net), { shadow: true });
    // The comparisons wait for the readbacks: the rows are refused until they are in.
    expect(trace.shadowsPending).toBeGreaterThan(0);
    expect(() => trace.shadowRows()).toThrow(/op calls' results are still being read back; await trace.settle\(\) first/);
    await trace.settle();
    expect(trace.shadowsPending).toBe(0);
    const ran = trace.entries.filter((e) => e.shadow !== undefined);
    expect(ran.length).toBeGreaterThan(20);
    for (const e of trace.entries) {
      expect(e.backend).toBe('webgpu');
      if (e.op !== 'reshape') expect(e.shadow, `#${e.index} ${e.op}`).toHaveLength(e.outputs.length + (e.written?.length ?? 0));
    }
    // The reads are recorded in order with the GPU work: AdamW's in-place results are compared from the values before
    // its update (read after it, the reference would apply the update twice: millions of roundings).
    const rows = trace.shadowRows();
    expect(rows.filter((r) => r.op === 'adam')).toHaveLength(6 * 3);
    expect(rows.filter((r) => r.op === 'batchNorm2d' && r.result.endsWith('(in place)'))).toHaveLength(2);
    // The GPU's kernels accumulate in float32: within tens of roundings (at most 42 in the esann step at 256x256 on
    // lavapipe), far from the thousands of a kernel 1e-4 off.
    expect(rows[0].rounding, trace.shadowTable(3)).toBeLessThan(100);
    expect(rows[0].rounding).toBeGreaterThan(0);
    result.dispose();
    for (const t of [...net.params, ...net.stats, net.x, net.target]) t.dispose();
    net.opt.dispose();
  });

  it('a shadow reference that fails on webgpu comes out of trace.settle(), and the rows are refused after it', async () => {
    const x = sg.uniform([4], 0, 1, { backend: 'webgpu' });
    const { result, trace } = sg.traced(() => float32OnlyNeg(x), { shadow: true });
    expect(trace.shadowsPending).toBe(1);
    await expect(trace.settle()).rejects.toThrow('float32Only: no float64 kernel');
    expect(trace.shadowsPending).toBe(0);
    expect(() => trace.shadowRows()).toThrow('shadow: #0 float32Only was not compared with float64: float32Only: no float64 kernel');
    expect(await result.data()).toEqual(Float32Array.from(await x.data(), (v) => -v)); // the op itself is fine
    result.dispose();
    x.dispose();
  });

  it('trace.settle() submits what the GPU still holds (no readback needed), and an op that dispatches nothing gets no GPU time', async () => {
    const be = gpu as WebGPUBackend;
    const { result, trace } = sg.traced(() => {
      let y = sg.ones([3], { backend: 'webgpu' });
      for (let i = 0; i < 20; i++) y = sg.addScalar(y, 1);
      sg.exp(sg.ones([0], { backend: 'webgpu' })); // nothing to dispatch
      return y;
    });
    // Before, settle() waited for a submit that only a later readback would make (forever, here).
    const settled = await Promise.race([trace.settle().then(() => 'settled'), new Promise((r) => setTimeout(() => r('timed out'), 20_000))]);
    expect(settled).toBe('settled');
    const zero = trace.entries.find((e) => e.op === 'exp')!;
    expect(zero.gpuMs).toBeUndefined(); // not the previous op's timestamp
    if (be.gpu.hasTimestamps) for (const e of trace.entries.filter((e) => e.op === 'addScalar')) expect(e.gpuMs).toBeGreaterThanOrEqual(0);
    expect(Array.from(await result.data())).toEqual([21, 21, 21]);
  });

  it('a mean over an empty axis is NaN on webgpu as on the cpu', async () => {
    const m = sg.mean(sg.zeros([0, 3], { backend: 'webgpu' }), 0);
    expect(Array.from(await m.data())).toEqual([NaN, NaN, NaN]);
    expect(Array.from(sg.mean(sg.zeros([0, 3], { backend: 'cpu' }), 0).dataSync())).toEqual([NaN, NaN, NaN]);
  });

  it('shader sources: a failed first load can be retried; after a load, setShaderLoader says it is too late', async () => {
    // In a process of its own: the backend (and its shaders) is made once per process.
    const script = path.join(os.tmpdir(), `skipgrad-shaders-${process.pid}.mts`);
    fs.writeFileSync(script, `
      import fs from 'node:fs';
      import * as sg from ${JSON.stringify(path.resolve('src/engine/index.ts'))};
      let calls = 0;
      sg.setShaderLoader((name) => { if (calls++ === 0) throw new Error('server down'); return fs.readFileSync(${JSON.stringify(path.resolve('shaders'))} + '/' + name + '.wgsl', 'utf8'); });
      const first = await sg.webgpuBackend().then(() => 'made', (e) => e.message);
      const second = await sg.webgpuBackend().then((b) => b ? 'made' : 'no adapter', (e) => e.message);
      let late = '';
      try { sg.setShaderLoader(() => ''); } catch (e) { late = e.message; }
      console.log(JSON.stringify({ first, second, late }));
      process.exit(0);
    `);
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], { env: process.env });
      const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { first: string; second: string; late: string };
      expect(r.first).toBe('server down');
      expect(r.second).toBe('made');
      expect(r.late).toMatch(/^setShaderLoader: the WebGPU backend has already loaded its shaders; call it before the first useBackend\('webgpu'\)/);
    } finally {
      fs.rmSync(script, { force: true });
    }
  });

  it('the NaN guard names the GPU op that made a NaN, at the next readback', async () => {
    const x = sg.fromArray([1, -1, 4], [3], { backend: 'webgpu' });
    const y = sg.withNanGuard(() => sg.sqrt(x));
    await expect(y.data()).rejects.toThrow(/sqrt \(forward\) produced 1 NaN and 0 Inf values/);
    x.dispose();
    y.dispose();
  });

  it('the NaN guard keeps its error for the next readback however late it comes (no unhandled rejection meanwhile)', async () => {
    const x = sg.fromArray([1, -1, 4], [3], { backend: 'webgpu' });
    const y = sg.withNanGuard(() => sg.log(x));
    await (gpu as WebGPUBackend).sync(); // the check's own readback finishes (and fails) while nothing waits for it
    await new Promise((r) => setTimeout(r, 50));
    await expect(y.data()).rejects.toThrow(/log \(forward\) produced 1 NaN and 0 Inf values/);
    await expect(y.data()).resolves.toHaveLength(3); // thrown once
    x.dispose();
    y.dispose();
  });

  it('a tensor larger than the device can bind is refused when it is made, naming the op, the shape and the limit', async () => {
    const be = gpu as WebGPUBackend;
    const limit = Math.min(be.gpu.device.limits.maxStorageBufferBindingSize, be.gpu.device.limits.maxBufferSize);
    const n = Math.floor(limit / 4) + 1;
    const before = sg.memory('webgpu');
    expect(() => sg.full([n], 1, { backend: 'webgpu' })).toThrow(new RegExp(`^full: shape \\[${n}\\]: webgpu: a buffer of ${4 * n} bytes .*maxStorageBufferBindingSize`));
    const a = sg.fromArray([1, 2, 3], [3], { backend: 'webgpu' });
    // An op's output: the op and which output are named, and nothing is left allocated.
    const small = sg.full([2, 2, 1], 1, { backend: 'webgpu' });
    const m = Math.ceil(n / 4);
    expect(() => sg.broadcastTo(small, [2, 2, m])).toThrow(new RegExp(`^broadcastTo: output 0 \\[2,2,${m}\\]: webgpu: a buffer of ${16 * m} bytes`));
    expect(Array.from(await sg.add(a, a).data())).toEqual([2, 4, 6]);
    const after = sg.memory('webgpu');
    expect(after.storages - before.storages).toBe(3); // a, small and a + a (not disposed): nothing of the refused ones
    a.dispose();
    small.dispose();
  });

  it("an op's output the device could not make (out of memory) is named by the op at the next readback, and later ops run", async () => {
    const be = gpu as WebGPUBackend;
    const x = sg.uniform([3000], -1, 1, { backend: 'webgpu' });
    await sg.exp(x).data(); // its pipeline and buffers exist
    be.rt.trim(); // no pooled buffer: the next ones are made
    const device = be.rt.device;
    const create = device.createBuffer.bind(device);
    // An invalid buffer comes back, as for an out-of-memory.
    device.createBuffer = (d) => create({ ...d, usage: d.usage | GPUBufferUsage.MAP_READ });
    const y = sg.mulScalar(sg.full([16384], 1, { backend: 'webgpu' }), 2);
    device.createBuffer = create;
    await expect(y.data()).rejects.toThrow(/^webgpu: (full|mulScalar): validation error in createBuffer\(65536 bytes\)/);
    y.dispose();
    // The invalid buffers went, not back to the pool: the next ops of that size run.
    for (let k = 0; k < 2; k++) expect([...new Set(await sg.addScalar(sg.full([16384], k, { backend: 'webgpu' }), 1).data())]).toEqual([k + 1]);
    x.dispose();
  });

  it('after a failed command buffer, the NaN guard and trace stats of a spoiled tensor refuse it and leak nothing', async () => {
    const be = gpu as WebGPUBackend;
    const s = be.alloc('float32', 256);
    be.rt.beginOp('badop');
    be.rt.dispatch({ shader: 'fill', params: [['u32', 256], ['f32', 1]], buffers: [be.buf(s)], workgroups: [70000] });
    void be.rt.endOp();
    await expect(be.sync()).rejects.toThrow(/badop/);
    const live = be.rt.counters.liveBuffers;
    for (let i = 0; i < 3; i++) await expect(be.valueStats(s)).rejects.toThrow(/these values were not computed/);
    expect(be.rt.counters.liveBuffers).toBe(live);
    be.free(s);
  });
});
