/**
 * The WebGPU runtime under the webgpu backend: everything between "run this WGSL kernel on these
 * buffers" and the GPU. It follows the habits of TensorFlow.js's WebGPU backend:
 *   - a pipeline cache keyed by shader and override constants (compiled once per process);
 *   - a buffer pool by size class (powers of two) and usage; a freed buffer goes back to the pool only
 *     after the submit that used it, so queued work never sees its storage reused under it;
 *   - many dispatches per command buffer: ops are recorded into one encoder, submitted every
 *     `opsPerSubmit` ops or when something must be read back;
 *   - readback through a MAP_READ staging buffer (pooled);
 *   - per-op GPU time from timestamp queries where the adapter has them;
 *   - validation / out-of-memory errors caught in error scopes around each op and device loss,
 *     reported as JS errors that name the op (at the next readback, as WebGPU reports them asynchronously).
 *
 * Kernel convention (every shaders/*.wgsl): entry point `main`; @group(0) @binding(0) is the uniform
 * `Params` struct; bindings 1..n are the storage buffers in the order given to dispatch(). Params are
 * packed by packParams(): 4-byte fields in order (u32 / i32 / f32), padded to 16 bytes. Put any
 * array<vec4<u32>, N> fields first in the struct so the sequential packing matches WGSL's layout.
 */
import { shaderSource } from './shaders.js';

export type ParamType = 'u32' | 'i32' | 'f32';
export type Param = readonly [ParamType, number];

export interface DispatchSpec {
  /** shaders/<shader>.wgsl */
  shader: string;
  /** WGSL `override` constants (workgroup and tile sizes, op selectors). */
  constants?: Record<string, number>;
  params: readonly Param[];
  /** Storage buffers, bound at 1..n in order. */
  buffers: readonly GPUBuffer[];
  workgroups: readonly [number, number?, number?];
}

export interface OpDeviceResult {
  /** GPU time of the op's passes in ms, when timestamps were recorded. */
  gpuMs?: number;
}

/** Packs Params fields into a uniform buffer image (4 bytes each, padded to a multiple of 16). */
export function packParams(fields: readonly Param[]): ArrayBuffer {
  const bytes = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const buf = new ArrayBuffer(bytes);
  const view = new DataView(buf);
  fields.forEach(([type, v], i) => {
    if (type === 'f32') view.setFloat32(i * 4, v, true);
    else if (type === 'i32') view.setInt32(i * 4, v, true);
    else view.setUint32(i * 4, v, true);
  });
  return buf;
}

/** Workgroup counts for n invocations of `size` threads, folded into 2-D when over the 65535 limit. The kernel computes
 *  its linear index as gid.x + gid.y * num_workgroups.x * size. */
export function grid1d(n: number, size: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / size));
  if (groups <= 65535) return [groups, 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}

/** Usage of every storage buffer (a function: GPUBufferUsage exists only once the webgpu globals are installed). */
const storageUsage = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

interface PendingOp {
  name: string;
  queryIndex: number | null;
  resolve: (r: OpDeviceResult) => void;
}

export class GpuRuntime {
  /** Ops recorded into one command buffer before it is submitted. */
  opsPerSubmit = 64;
  /** Record GPU time for every op (when the adapter has timestamp-query); ops run under a trace are timed anyway. */
  timing = false;

  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly freeStorage = new Map<number, GPUBuffer[]>();
  private readonly freeUniform: GPUBuffer[] = [];
  private readonly freeStaging = new Map<number, GPUBuffer[]>();
  private releaseAfterSubmit: GPUBuffer[] = [];
  private uniformsAfterSubmit: GPUBuffer[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private currentOp: string | null = null;
  private currentTimed = false;
  private opsInBatch: PendingOp[] = [];
  private querySet: GPUQuerySet | null = null;
  private readonly errors: Promise<string | null>[] = [];
  private lost: string | null = null;

  readonly counters = { liveBuffers: 0, liveBytes: 0, pooledBuffers: 0, pooledBytes: 0, submits: 0, dispatches: 0, pipelines: 0 };

  /** hasTimestamps: the device has 'timestamp-query'; software: the adapter is CPU-emulated (lavapipe), where kernels
   *  keep their loops rolled because unrolled pipelines take seconds to compile. */
  constructor(readonly device: GPUDevice, readonly hasTimestamps: boolean, readonly software = false) {
    void device.lost.then((info) => {
      this.lost = `${info.reason}: ${info.message}`;
    });
  }

  private dummyBuffer: GPUBuffer | null = null;

  /** A small buffer to bind where a kernel's optional input (a bias, running stats) is absent. */
  dummy(): GPUBuffer {
    this.dummyBuffer ??= this.device.createBuffer({ size: 256, usage: storageUsage() });
    return this.dummyBuffer;
  }

  // ---- memory ----

  /** A storage buffer of at least `bytes` (pooled by power-of-two size class). */
  acquire(bytes: number): GPUBuffer {
    this.checkAlive('alloc');
    const size = sizeClass(bytes);
    const free = this.freeStorage.get(size);
    let buf = free?.pop();
    if (buf) {
      this.counters.pooledBuffers--;
      this.counters.pooledBytes -= size;
    } else {
      buf = this.device.createBuffer({ size, usage: storageUsage() });
    }
    this.counters.liveBuffers++;
    this.counters.liveBytes += size;
    return buf;
  }

  /** Returns a buffer to the pool once the work recorded so far has been submitted. */
  release(buf: GPUBuffer): void {
    this.counters.liveBuffers--;
    this.counters.liveBytes -= buf.size;
    if (this.encoder) this.releaseAfterSubmit.push(buf);
    else this.toPool(buf);
  }

  private toPool(buf: GPUBuffer): void {
    const list = this.freeStorage.get(buf.size) ?? [];
    list.push(buf);
    this.freeStorage.set(buf.size, list);
    this.counters.pooledBuffers++;
    this.counters.pooledBytes += buf.size;
  }

  /** Destroys every pooled (free) buffer. */
  trim(): void {
    for (const list of this.freeStorage.values()) for (const b of list) b.destroy();
    this.freeStorage.clear();
    this.counters.pooledBuffers = 0;
    this.counters.pooledBytes = 0;
  }

  /** Uploads data into buffer (after submitting recorded work, so the write lands after it). */
  write(buf: GPUBuffer, data: Float32Array): void {
    this.checkAlive('write');
    if (this.encoder) this.flush();
    this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copies `bytes` bytes of buf back to the CPU. */
  async read(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.checkAlive('read');
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const free = this.freeStaging.get(size);
    const staging = free?.pop() ?? this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    const enc = this.takeEncoder();
    enc.copyBufferToBuffer(buf, 0, staging, 0, Math.min(size, buf.size));
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    const list = this.freeStaging.get(size) ?? [];
    list.push(staging);
    this.freeStaging.set(size, list);
    await this.throwPendingErrors();
    return out;
  }

  // ---- ops and dispatches ----

  /** Starts an op: its dispatches go into one compute pass (timed if `timed` or `timing`), inside error scopes. */
  beginOp(name: string, timed = false): void {
    this.checkAlive(name);
    if (this.currentOp !== null) throw new Error(`webgpu: op '${name}' started inside op '${this.currentOp}'`);
    this.endPass();
    this.currentOp = name;
    this.currentTimed = timed || this.timing;
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
  }

  /** Ends the op; the promise resolves with its GPU time once the GPU has run it. */
  endOp(): Promise<OpDeviceResult> {
    const name = this.currentOp ?? '?';
    this.endPass();
    this.currentOp = null;
    const validation = this.device.popErrorScope();
    const oom = this.device.popErrorScope();
    this.errors.push(Promise.all([validation, oom]).then(([v, o]) => {
      const e = v ?? o;
      return e ? `webgpu: ${name}: ${e instanceof GPUOutOfMemoryError ? 'out of GPU memory' : 'validation error'}: ${e.message}` : null;
    }));
    const op = this.opsInBatch[this.opsInBatch.length - 1];
    let result: Promise<OpDeviceResult>;
    if (op && op.name === name && op.queryIndex !== null) {
      result = new Promise((resolve) => (op.resolve = resolve));
    } else {
      result = Promise.resolve({});
    }
    if (this.opsInBatch.length >= this.opsPerSubmit) this.flush();
    return result;
  }

  /** Records one dispatch of a kernel. */
  dispatch(spec: DispatchSpec): void {
    this.checkAlive(this.currentOp ?? spec.shader);
    const pipeline = this.pipeline(spec.shader, spec.constants);
    const uniform = this.freeUniform.pop() ?? this.device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    const packed = packParams(spec.params);
    if (packed.byteLength > 256) throw new Error(`webgpu: ${spec.shader}: Params of ${packed.byteLength} bytes exceed 256`);
    this.device.queue.writeBuffer(uniform, 0, packed);
    this.uniformsAfterSubmit.push(uniform);
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: uniform } }, ...spec.buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))],
    });
    const pass = this.ensurePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = spec.workgroups;
    pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
    // Outside an op (internal work such as poisoning new buffers), each dispatch gets a pass of its own.
    if (this.currentOp === null) this.endPass();
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    const enc = this.encoder;
    const ops = this.opsInBatch;
    const querySet = this.querySet;
    let readback: GPUBuffer | null = null;
    const timed = ops.filter((o) => o.queryIndex !== null);
    if (querySet && timed.length > 0) {
      const count = 2 * ops.length;
      const resolve = this.device.createBuffer({ size: count * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      readback = this.device.createBuffer({ size: count * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      enc.resolveQuerySet(querySet, 0, count, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, readback, 0, count * 8);
      void this.device.queue.onSubmittedWorkDone().then(() => resolve.destroy());
    }
    this.device.queue.submit([enc.finish()]);
    this.counters.submits++;
    this.encoder = null;
    this.querySet = null;
    this.opsInBatch = [];
    for (const b of this.releaseAfterSubmit) this.toPool(b);
    this.releaseAfterSubmit = [];
    this.freeUniform.push(...this.uniformsAfterSubmit);
    this.uniformsAfterSubmit = [];
    if (readback && querySet) {
      const rb = readback;
      void rb.mapAsync(GPUMapMode.READ).then(() => {
        const t = new BigInt64Array(rb.getMappedRange());
        for (const o of timed) o.resolve({ gpuMs: Number(t[o.queryIndex! + 1] - t[o.queryIndex!]) / 1e6 });
        rb.unmap();
        rb.destroy();
        querySet.destroy();
      });
    } else {
      for (const o of ops) o.resolve({});
    }
  }

  /** Waits for the GPU to finish everything submitted, then throws the first error an op caused, if any. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.throwPendingErrors();
  }

  private async throwPendingErrors(): Promise<void> {
    const pending = this.errors.splice(0);
    const messages = (await Promise.all(pending)).filter((m): m is string => m !== null);
    if (messages.length > 0) throw new Error(messages.length > 1 ? `${messages[0]} (and ${messages.length - 1} more)` : messages[0]);
    if (this.lost) throw new Error(`webgpu: device lost (${this.lost})`);
  }

  private checkAlive(what: string): void {
    if (this.lost) throw new Error(`webgpu: device lost (${this.lost}); cannot run ${what}`);
  }

  private pipeline(shader: string, constants?: Record<string, number>): GPUComputePipeline {
    const key = constants ? `${shader}|${JSON.stringify(constants)}` : shader;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: shader, code: shaderSource(shader) });
      p = this.device.createComputePipeline({ label: shader, layout: 'auto', compute: { module, entryPoint: 'main', ...(constants ? { constants } : {}) } });
      this.pipelines.set(key, p);
      this.counters.pipelines++;
    }
    return p;
  }

  private takeEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private ensurePass(): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    if (this.opsInBatch.length >= this.opsPerSubmit) this.flush();
    const enc = this.takeEncoder();
    const name = this.currentOp ?? 'internal';
    let queryIndex: number | null = null;
    if (this.currentTimed && this.hasTimestamps && this.currentOp !== null) {
      this.querySet ??= this.device.createQuerySet({ type: 'timestamp', count: 2 * this.opsPerSubmit + 2 });
      queryIndex = 2 * this.opsInBatch.length;
    }
    this.pass = enc.beginComputePass(queryIndex !== null
      ? { label: name, timestampWrites: { querySet: this.querySet!, beginningOfPassWriteIndex: queryIndex, endOfPassWriteIndex: queryIndex + 1 } }
      : { label: name });
    this.opsInBatch.push({ name, queryIndex, resolve: () => {} });
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }
}

function sizeClass(bytes: number): number {
  let s = 256;
  while (s < bytes) s *= 2;
  return s;
}
