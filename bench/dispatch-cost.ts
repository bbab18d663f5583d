/**
 * `node dist/bench/dispatch-cost.js`: the host cost of one WebGPU dispatch through Dawn, piece by piece.
 *
 * Records N tiny dispatches (a 256-float write, a submit every 64) in several ways and prints host microseconds
 * per dispatch for each:
 *   - "per-dispatch uniform and bind group": a queue.writeBuffer of the Params and a new bind group for every
 *     dispatch, a compute pass per op (how src/engine/webgpu/runtime.ts recorded until 2026-11-28);
 *   - the same with one piece left out at a time;
 *   - "arena + cached bind group": the Params of a submit's dispatches in one uniform buffer, written once per
 *     submit, bound at a dynamic offset through one reused bind group, a pass per op; the same with one compute
 *     pass per submit; and with one pass per submit and a debug group per op (how the runtime records untimed ops
 *     now; a timed op still gets a pass of its own, for its timestamps);
 *   - "GpuRuntime op": the runtime itself, beginOp / dispatch / endOp of the fill kernel (adds the Params packing,
 *     the bind-group lookup and the op bookkeeping);
 * plus the cost of a pair of error scopes (which the runtime no longer puts around each op). It says where the host
 * time of a step's ~135 ops goes (see `npm run bench:profile`).
 */
import { benchMain, parseBenchArgs } from './args.js';
import { requestGpuDevice } from '../src/engine/webgpu/device.js';
import { GpuRuntime, PARAMS_BYTES } from '../src/engine/webgpu/runtime.js';
import { loadShaders } from '../src/engine/webgpu/shaders.js';

const N = 4000;
const PER_SUBMIT = 64;

interface Variant { write: boolean; newBindGroup: boolean; passPerOp: boolean; arena?: boolean; debugGroup?: boolean }

await benchMain('dist/bench/dispatch-cost.js', 'the host cost of one WebGPU dispatch through Dawn, piece by piece (no options).', {},
  async (argv) => { parseBenchArgs(argv, {}); });
const gpu = await requestGpuDevice();
if (!gpu) {
  process.stderr.write('dispatch-cost: no WebGPU adapter (bash scripts/provision-vulkan.sh && source .vk/env.sh for a software one)\n');
  process.exit(1);
}
const d = gpu.device;
const uniform = d.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const arenaBuffer = d.createBuffer({ size: PER_SUBMIT * PARAMS_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const storage = d.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
const module = d.createShaderModule({
  code: `@group(0) @binding(0) var<uniform> u: vec4f;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { if (g.x < 256u) { s[g.x] = u.x; } }`,
});
const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
const entries = [{ binding: 0, resource: { buffer: uniform } }, { binding: 1, resource: { buffer: storage } }];
const fixedBindGroup = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
const dynLayout = d.createBindGroupLayout({
  entries: [
    { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
    { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
  ],
});
const dynPipeline = d.createComputePipeline({ layout: d.createPipelineLayout({ bindGroupLayouts: [dynLayout] }), compute: { module, entryPoint: 'main' } });
const dynBindGroup = d.createBindGroup({
  layout: dynLayout,
  entries: [{ binding: 0, resource: { buffer: arenaBuffer, size: PARAMS_BYTES } }, { binding: 1, resource: { buffer: storage } }],
});
const params = new Float32Array(64);
const arena = new Float32Array((PER_SUBMIT * PARAMS_BYTES) / 4);

async function hostUsPerDispatch(v: Variant): Promise<number> {
  await d.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  let enc = d.createCommandEncoder();
  let pass: GPUComputePassEncoder | null = v.passPerOp ? null : enc.beginComputePass();
  for (let i = 0; i < N; i++) {
    const slot = i % PER_SUBMIT;
    if (v.arena) arena.set(params.subarray(0, 16), (slot * PARAMS_BYTES) / 4);
    else if (v.write) d.queue.writeBuffer(uniform, 0, params);
    if (v.passPerOp) pass = enc.beginComputePass();
    if (v.debugGroup) pass!.pushDebugGroup('op');
    if (v.arena) {
      pass!.setPipeline(dynPipeline);
      pass!.setBindGroup(0, dynBindGroup, [slot * PARAMS_BYTES]);
    } else {
      pass!.setPipeline(pipeline);
      pass!.setBindGroup(0, v.newBindGroup ? d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }) : fixedBindGroup);
    }
    pass!.dispatchWorkgroups(4);
    if (v.debugGroup) pass!.popDebugGroup();
    if (v.passPerOp) pass!.end();
    if (slot === PER_SUBMIT - 1 || i === N - 1) {
      if (!v.passPerOp) pass!.end();
      if (v.arena) d.queue.writeBuffer(arenaBuffer, 0, arena, 0, (slot + 1) * (PARAMS_BYTES / 4));
      d.queue.submit([enc.finish()]);
      enc = d.createCommandEncoder();
      if (!v.passPerOp) pass = enc.beginComputePass();
    }
  }
  if (!v.passPerOp) pass!.end();
  d.queue.submit([enc.finish()]);
  const t1 = performance.now();
  await d.queue.onSubmittedWorkDone();
  return ((t1 - t0) / N) * 1000;
}

await loadShaders();
const rt = new GpuRuntime(d, gpu.hasTimestamps, gpu.software);
rt.opsPerSubmit = PER_SUBMIT;
const out = rt.acquire(1024);

async function runtimeUsPerOp(): Promise<number> {
  await rt.sync();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    rt.beginOp('fill');
    rt.dispatch({ shader: 'fill', params: [['u32', 256], ['f32', i]], buffers: [out], workgroups: [4] });
    void rt.endOp();
  }
  rt.flush();
  const t1 = performance.now();
  await rt.sync();
  return ((t1 - t0) / N) * 1000;
}

const old: Variant = { write: true, newBindGroup: true, passPerOp: true };
const variants: Array<[string, () => Promise<number>]> = [
  ['per-dispatch uniform and bind group', () => hostUsPerDispatch(old)],
  ['  without the uniform writeBuffer', () => hostUsPerDispatch({ ...old, write: false })],
  ['  with one bind group reused', () => hostUsPerDispatch({ ...old, newBindGroup: false })],
  ['  with one compute pass per submit', () => hostUsPerDispatch({ ...old, passPerOp: false })],
  ['  with none of the three', () => hostUsPerDispatch({ write: false, newBindGroup: false, passPerOp: false })],
  ['arena + cached bind group', () => hostUsPerDispatch({ write: false, newBindGroup: false, passPerOp: true, arena: true })],
  ['  with one compute pass per submit', () => hostUsPerDispatch({ write: false, newBindGroup: false, passPerOp: false, arena: true })],
  ['  one pass per submit, a debug group per op', () => hostUsPerDispatch({ write: false, newBindGroup: false, passPerOp: false, arena: true, debugGroup: true })],
  ['GpuRuntime op (beginOp, fill, endOp)', runtimeUsPerOp],
];
await hostUsPerDispatch(old); // warm-up
await runtimeUsPerOp();
process.stdout.write(`webgpu: ${gpu.info.description || gpu.info.device} (${gpu.info.vendor}${gpu.software ? ', software' : ''})\nhost time per dispatch (median of 3 runs of ${N}):\n`);
for (const [label, run] of variants) {
  const t = [await run(), await run(), await run()].sort((a, b) => a - b)[1];
  process.stdout.write(`  ${label.padEnd(38)} ${t.toFixed(1)} us\n`);
}
const t0 = performance.now();
const pending: Array<Promise<GPUError | null>> = [];
for (let i = 0; i < N; i++) {
  d.pushErrorScope('out-of-memory');
  d.pushErrorScope('validation');
  pending.push(d.popErrorScope(), d.popErrorScope());
}
const t1 = performance.now();
await Promise.all(pending);
const t2 = performance.now();
process.stdout.write(`  a pair of error scopes                  ${(((t1 - t0) / N) * 1000).toFixed(1)} us to record, ${(((t2 - t1) / N) * 1000).toFixed(1)} us to resolve\n`);
process.exit(0);
