/**
 * `node dist/bench/dispatch-cost.js`: the host cost of one WebGPU dispatch through Dawn, piece by piece.
 *
 * Records N tiny dispatches (a 256-float write) the way src/engine/webgpu/runtime.ts does (a uniform writeBuffer,
 * a new bind group, a compute pass per op, a submit every 64 ops), then with one piece left out at a time, and
 * prints host microseconds per dispatch for each variant, plus the cost of the two error scopes the runtime puts
 * around each op. It says where the host time of a step's ~135 dispatches goes (see `npm run bench:profile`).
 */
import { requestGpuDevice } from '../src/engine/webgpu/device.js';

const N = 4000;

interface Variant { write: boolean; newBindGroup: boolean; passPerOp: boolean }

const gpu = await requestGpuDevice();
if (!gpu) {
  process.stderr.write('dispatch-cost: no WebGPU adapter (bash scripts/provision-vulkan.sh && source .vk/env.sh for a software one)\n');
  process.exit(1);
}
const d = gpu.device;
const uniform = d.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const storage = d.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
const module = d.createShaderModule({
  code: `@group(0) @binding(0) var<uniform> u: vec4f;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { if (g.x < 256u) { s[g.x] = u.x; } }`,
});
const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
const entries = [{ binding: 0, resource: { buffer: uniform } }, { binding: 1, resource: { buffer: storage } }];
const fixedBindGroup = d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
const params = new Float32Array(64);

async function hostUsPerDispatch(v: Variant): Promise<number> {
  await d.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  let enc = d.createCommandEncoder();
  let pass: GPUComputePassEncoder | null = v.passPerOp ? null : enc.beginComputePass();
  for (let i = 0; i < N; i++) {
    if (v.write) d.queue.writeBuffer(uniform, 0, params);
    const bg = v.newBindGroup ? d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }) : fixedBindGroup;
    if (v.passPerOp) pass = enc.beginComputePass();
    pass!.setPipeline(pipeline);
    pass!.setBindGroup(0, bg);
    pass!.dispatchWorkgroups(4);
    if (v.passPerOp) pass!.end();
    if (i % 64 === 63) {
      if (!v.passPerOp) pass!.end();
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

const runtime: Variant = { write: true, newBindGroup: true, passPerOp: true };
const variants: Array<[string, Variant]> = [
  ['as the runtime records it', runtime],
  ['without the uniform writeBuffer', { ...runtime, write: false }],
  ['with one bind group reused', { ...runtime, newBindGroup: false }],
  ['with one compute pass per submit', { ...runtime, passPerOp: false }],
  ['with none of the three', { write: false, newBindGroup: false, passPerOp: false }],
];
await hostUsPerDispatch(runtime); // warm-up
process.stdout.write(`webgpu: ${gpu.info.description || gpu.info.device} (${gpu.info.vendor}${gpu.software ? ', software' : ''})\nhost time per dispatch (median of 3 runs of ${N}):\n`);
for (const [label, v] of variants) {
  const t = [await hostUsPerDispatch(v), await hostUsPerDispatch(v), await hostUsPerDispatch(v)].sort((a, b) => a - b)[1];
  process.stdout.write(`  ${label.padEnd(36)} ${t.toFixed(1)} us\n`);
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
process.stdout.write(`  two error scopes per op               ${(((t1 - t0) / N) * 1000).toFixed(1)} us to record, ${(((t2 - t1) / N) * 1000).toFixed(1)} us to resolve\n`);
process.exit(0);
