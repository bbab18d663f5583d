/**
 * The WebGPU runtime under the webgpu backend: everything between "run this WGSL kernel on these
 * buffers" and the GPU. It follows the habits of TensorFlow.js's WebGPU backend:
 *   - a pipeline cache keyed by shader and override constants (compiled once per process);
 *   - a buffer pool by size class (powers of two) and usage. A freed buffer goes back to the pool at once, even
 *     while recorded work still reads it: work recorded later runs after it (WebGPU orders a queue's commands and
 *     Dawn puts barriers between dispatches), and uploads (queue.writeBuffer) are made only with no command
 *     encoder open. So the pool hands out the same buffers in the same order every training step, which keeps
 *     the bind-group cache below warm (unlike tfjs, which returns buffers only after the submit);
 *   - many dispatches per command buffer: ops are recorded into one encoder, submitted after `opsPerSubmit` (64)
 *     ops, or after `opsPerFirstSubmit` (8) when the GPU has no submitted work left to run (so it starts on a
 *     step's first kernels while the host records the rest); also when the uniform arena below is full (an op
 *     starts a new submit when fewer than OP_SLOTS slots are left), before an upload (queue.writeBuffer), and at
 *     a readback or sync;
 *   - little host work per dispatch (Dawn's createBindGroup and writeBuffer cost tens of microseconds each, more
 *     than a small kernel runs): every dispatch's Params go into one uniform arena, written once per submit and
 *     bound at a dynamic offset, so a bind group depends only on the storage buffers and is cached by them
 *     (explicit bind group layouts, read from each shader's bindings, make the dynamic offset possible);
 *   - readback through a MAP_READ staging buffer (pooled);
 *   - per-op GPU time from timestamp queries where the adapter has them;
 *   - validation / out-of-memory errors reported as JS errors at the next readback or sync (WebGPU reports them
 *     asynchronously): error scopes around each call that creates a GPU object (rare: buffers are pooled,
 *     pipelines and bind groups cached; the error names the op being recorded) and around each submit, whose
 *     encoding errors name the op by the debug group (untimed ops share a compute pass, each in a debug group named
 *     after it) or the label of its own pass (timed ops), else list the ops of that command buffer. Anything else
 *     the device reports (uncapturederror) is thrown with its message alone, and device loss with its reason: they
 *     name no op (after a loss, the next call says what it could not run).
 *     No scopes per op: a pair costs about as much host time as a dispatch.
 *
 * Kernel convention (every shaders/*.wgsl): entry point `main`; @group(0) @binding(0) is the uniform
 * `Params` struct (at most 256 bytes); bindings 1..n are the storage buffers in the order given to dispatch(),
 * each declared on one line as `@group(0) @binding(i) var<storage, read>` or `read_write` (shaderBindings()
 * reads these). Params are written by writeParams(): 4-byte fields in order (u32 / i32 / f32), no padding.
 * Put any array<vec4<u32>, N> fields first in the struct so the sequential packing matches WGSL's layout.
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

/** Bytes of uniform space per dispatch: the largest Params, and WebGPU's largest minUniformBufferOffsetAlignment. */
export const PARAMS_BYTES = 256;

/** Writes Params fields at `offset` of view (4 bytes each, little-endian, in order). */
export function writeParams(view: DataView, offset: number, fields: readonly Param[]): void {
  for (let i = 0; i < fields.length; i++) {
    const [type, v] = fields[i];
    if (type === 'f32') view.setFloat32(offset + i * 4, v, true);
    else if (type === 'i32') view.setInt32(offset + i * 4, v, true);
    else view.setUint32(offset + i * 4, v, true);
  }
}

/** How a kernel uses binding i: 0 is the uniform Params; the rest are storage buffers. */
export type BindingKind = 'uniform' | 'read-only-storage' | 'storage';

/** The bindings a WGSL kernel declares, in order (binding i at index i); throws unless they follow the convention. */
export function shaderBindings(name: string, source: string): BindingKind[] {
  const kinds: BindingKind[] = [];
  for (const m of source.matchAll(/^[ \t]*@group\((\d+)\)\s*@binding\((\d+)\)\s*var<([^>]*)>/gm)) {
    const [group, binding, decl] = [Number(m[1]), Number(m[2]), m[3].replace(/\s+/g, '')];
    const kind: BindingKind | undefined = decl === 'uniform' ? 'uniform' : decl === 'storage,read' ? 'read-only-storage'
      : decl === 'storage,read_write' ? 'storage' : undefined;
    if (group !== 0 || kind === undefined || kinds[binding] !== undefined) {
      throw new Error(`webgpu: shader '${name}': binding '${m[0].trim()}' is not one this runtime binds (expected @group(0), a distinct @binding, var<uniform> or var<storage, read|read_write>)`);
    }
    kinds[binding] = kind;
  }
  if (kinds[0] !== 'uniform') throw new Error(`webgpu: shader '${name}': @binding(0) must be the uniform Params`);
  for (let i = 1; i < kinds.length; i++) {
    if (kinds[i] === undefined || kinds[i] === 'uniform') throw new Error(`webgpu: shader '${name}': @binding(${i}) must be a storage buffer (bindings 1..n in order)`);
  }
  return kinds;
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

/** Cached bind groups, at most (the cache is emptied when full; a training step needs a few hundred). */
const MAX_BIND_GROUPS = 4096;
/** An op starts a new submit when fewer Params slots than this are left, so that its dispatches share one pass. */
const OP_SLOTS = 8;

interface ShaderLayout {
  bindGroupLayout: GPUBindGroupLayout;
  pipelineLayout: GPUPipelineLayout;
  /** Storage buffers bound at 1..storage. */
  storage: number;
  /** writes[i]: storage buffer i (binding i + 1) is bound read_write (the kernel may write it). */
  writes: boolean[];
}

export interface GpuRuntimeOptions {
  /** Dispatches whose Params fit in the uniform arena; a submit is made when it is full (default 256, 64 KiB). */
  dispatchesPerSubmit?: number;
}

export class GpuRuntime {
  /** Ops recorded into one command buffer before it is submitted. */
  opsPerSubmit = 64;
  /**
   * Ops in the first command buffer recorded while the GPU has nothing to run (all submitted work seen done): it
   * is submitted early, so the GPU starts on a step's first kernels while the host records the rest. With 64 ops
   * per submit, the GPU would wait for the host to record the whole forward pass of a training step first.
   */
  opsPerFirstSubmit = 8;
  /** Dispatches recorded into one command buffer at most (the uniform arena's slots). */
  readonly dispatchesPerSubmit: number;
  /** Record GPU time for every op (when the adapter has timestamp-query); ops run under a trace are timed anyway. */
  timing = false;

  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly freeStorage = new Map<number, GPUBuffer[]>();
  private readonly freeStaging = new Map<number, GPUBuffer[]>();
  private readonly layouts = new Map<string, ShaderLayout>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;
  /** The uniform arena: slot i holds the Params of the i-th dispatch of the current submit (host copy, GPU copy). */
  private readonly arena: DataView;
  private arenaBuffer: GPUBuffer | null = null;
  private arenaUsed = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The open pass is shared by untimed ops, each inside a debug group named after it (else it is one timed op's). */
  private passShared = false;
  private groupOpen = false;
  private currentOp: string | null = null;
  private currentTimed = false;
  /** The current op has its entry in opsInBatch (made at its first dispatch of the current submit). */
  private opInBatch = false;
  private opsInBatch: PendingOp[] = [];
  /** Submits whose work the GPU has not been seen to finish (counted down as onSubmittedWorkDone resolves). */
  private inFlight = 0;
  private querySet: GPUQuerySet | null = null;
  /** Errors the device will report, each with the first submit whose results it spoils (see spoil()). */
  private readonly errors: { message: Promise<string | null>; submit: number }[] = [];
  private lost: string | null = null;
  /** The submit (its index, counters.submits when it was recorded) that last wrote each storage buffer. */
  private readonly lastWrite = new Map<GPUBuffer, number>();
  /** Buffers whose contents were not computed (their command buffer failed) or came from such a buffer: the error. */
  private readonly failed = new Map<GPUBuffer, string>();
  /** The reads in progress: the submit each one's copy is in, and the mark of what it copied (spoil() marks these
   *  too: a copy in or after a failed submit copied values that were not computed, or did not run). */
  private readonly pendingReads = new Set<{ copiedIn: number; mark: string | undefined }>();
  /** Buffers whose creation failed (out of memory): destroyed when freed, never pooled or handed out again. */
  private readonly invalid = new WeakSet<GPUBuffer>();
  /** Submits [0, verified) need no mark for an error tied to no submit: a sync or read saw them finish, and any error
   *  they reported was found then and marked what it spoiled. */
  private verified = 0;
  /** The error check in progress: each check waits for the one before, so that a read never looks at the failure
   *  marks while another read is still finding out which buffers to mark. */
  private errorCheck: Promise<void> = Promise.resolve();

  readonly counters = {
    liveBuffers: 0, liveBytes: 0, pooledBuffers: 0, pooledBytes: 0, submits: 0, dispatches: 0, pipelines: 0, bindGroups: 0,
    /** Readback (MAP_READ) buffers kept for reuse. */
    stagingBuffers: 0, stagingBytes: 0,
    /** The high-water of liveBytes (tensors, kernel scratch, size classes' rounding); set it to liveBytes to restart. */
    peakLiveBytes: 0,
  };

  /** hasTimestamps: the device has 'timestamp-query'; software: the adapter is CPU-emulated (lavapipe), where kernels
   *  keep their loops rolled because unrolled pipelines take seconds to compile. */
  constructor(readonly device: GPUDevice, readonly hasTimestamps: boolean, readonly software = false, options: GpuRuntimeOptions = {}) {
    const slots = options.dispatchesPerSubmit ?? 256;
    if (!Number.isInteger(slots) || slots < 1) throw new Error(`webgpu: dispatchesPerSubmit must be a positive integer, got ${slots}`);
    this.dispatchesPerSubmit = slots;
    this.arena = new DataView(new ArrayBuffer(slots * PARAMS_BYTES));
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      // Not tied to a submit: every result computed since the last clean sync or read is suspect.
      this.errors.push({ message: Promise.resolve(`webgpu: ${e instanceof GPUOutOfMemoryError ? 'out of GPU memory' : 'error'}: ${e.message}`), submit: this.verified });
    });
    void device.lost.then((info) => {
      this.lost = `${info.reason}: ${info.message}`;
    });
  }

  private dummyBuffer: GPUBuffer | null = null;

  /** A small buffer to bind where a kernel's optional input (a bias, running stats) is absent. */
  dummy(): GPUBuffer {
    this.dummyBuffer ??= this.guarded('createBuffer', () => this.device.createBuffer({ size: 256, usage: storageUsage() }));
    return this.dummyBuffer;
  }

  // ---- memory ----

  /**
   * A storage buffer of at least `bytes` (pooled by power-of-two size class, or of the exact size where the class
   * would exceed the device's limits). More than the device can bind is refused here, at once, naming the size and
   * the limit (WebGPU itself would report it later, as an invalid buffer that fails the whole command buffer).
   * `forOp`: the op the buffer is for, named in an error creating it reports later (default: the op being recorded).
   */
  acquire(bytes: number, forOp: string | null = this.currentOp): GPUBuffer {
    this.checkAlive('alloc');
    const limit = Math.min(this.device.limits.maxStorageBufferBindingSize, this.device.limits.maxBufferSize);
    if (bytes > limit) {
      // (runOp names the op and the output around this message.)
      throw new Error(`webgpu: ${this.currentOp !== null ? `${this.currentOp}: ` : ''}a buffer of ${bytes} bytes (${mib(bytes)}) is larger than this device can bind `
        + `(maxStorageBufferBindingSize ${this.device.limits.maxStorageBufferBindingSize} bytes, maxBufferSize ${this.device.limits.maxBufferSize}); `
        + 'use a smaller batch or image, or the cpu backend');
    }
    const size = sizeClass(bytes, limit);
    const free = this.freeStorage.get(size);
    let buf: GPUBuffer | undefined;
    if (free && free.length > 0) {
      // The oldest free buffer of the class, not the last one released: the choice then depends only on which
      // buffers are free, so training steps, which allocate and free in the same order each time, get the same
      // buffers each time and find their bind groups in the cache.
      let best = 0;
      for (let i = 1; i < free.length; i++) if (this.idOf(free[i]) < this.idOf(free[best])) best = i;
      buf = free[best];
      free[best] = free[free.length - 1];
      free.pop();
      this.counters.pooledBuffers--;
      this.counters.pooledBytes -= size;
    } else {
      const made = this.guarded(`createBuffer(${size} bytes)`, () => this.device.createBuffer({ size, usage: storageUsage() }), forOp, () => {
        // An invalid buffer (out of memory): never pool it; if it is in the pool already, take it out.
        this.invalid.add(made);
        const list = this.freeStorage.get(made.size);
        const at = list?.indexOf(made) ?? -1;
        if (list && at >= 0) {
          list.splice(at, 1);
          this.counters.pooledBuffers--;
          this.counters.pooledBytes -= made.size;
          made.destroy();
        }
      });
      buf = made;
    }
    this.counters.liveBuffers++;
    this.counters.liveBytes += size;
    if (this.counters.liveBytes > this.counters.peakLiveBytes) this.counters.peakLiveBytes = this.counters.liveBytes;
    return buf;
  }

  /** Returns a buffer to the pool (work recorded after this that reuses it runs after the work recorded before). */
  release(buf: GPUBuffer): void {
    // Whatever it held is gone: its next owner writes it before reading it.
    this.forget(buf);
    this.counters.liveBuffers--;
    this.counters.liveBytes -= buf.size;
    if (this.invalid.has(buf)) buf.destroy();
    else this.toPool(buf);
  }

  private toPool(buf: GPUBuffer): void {
    const list = this.freeStorage.get(buf.size) ?? [];
    list.push(buf);
    this.freeStorage.set(buf.size, list);
    this.counters.pooledBuffers++;
    this.counters.pooledBytes += buf.size;
  }

  /** Bind groups held in the cache now. */
  get cachedBindGroups(): number {
    return this.bindGroups.size;
  }

  /** Destroys every pooled (free) buffer, storage and readback (and forgets the cached bind groups, some of which
   *  hold them). Recorded work is submitted first: it may still use a freed buffer (WebGPU keeps a destroyed buffer
   *  alive for work already submitted, not for work still being recorded). */
  trim(): void {
    this.flush();
    this.bindGroups.clear();
    for (const list of this.freeStorage.values()) {
      for (const b of list) {
        this.forget(b);
        b.destroy();
      }
    }
    this.freeStorage.clear();
    this.counters.pooledBuffers = 0;
    this.counters.pooledBytes = 0;
    for (const list of this.freeStaging.values()) for (const b of list) b.destroy();
    this.freeStaging.clear();
    this.counters.stagingBuffers = 0;
    this.counters.stagingBytes = 0;
  }

  /** Uploads data into buffer (after submitting recorded work, so the write lands after it). */
  write(buf: GPUBuffer, data: Float32Array): void {
    this.checkAlive('write');
    if (this.encoder) this.flush();
    this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    // New contents from the host: whatever failed before does not concern them.
    this.forget(buf);
  }

  /** Drops what the failure tracking knows of buf (its last writing submit, its mark): it holds other contents now. */
  private forget(buf: GPUBuffer): void {
    this.failed.delete(buf);
    this.lastWrite.delete(buf);
  }

  /**
   * Copies `bytes` bytes of buf back to the CPU. Throws the device's errors so far, and (on a later read) for a buffer
   * whose contents were not computed because a command buffer failed, or were computed from such a buffer.
   */
  async read(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.checkAlive('read');
    const copy = Math.min(Math.max(4, Math.ceil(bytes / 4) * 4), buf.size);
    const size = sizeClass(copy, this.device.limits.maxBufferSize);
    const staging = this.freeStaging.get(size)?.pop();
    if (staging) {
      this.counters.stagingBuffers--;
      this.counters.stagingBytes -= size;
    }
    const target = staging
      ?? this.guarded('createBuffer (readback)', () => this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));
    this.endPass();
    const enc = this.takeEncoder();
    enc.copyBufferToBuffer(buf, 0, target, 0, copy);
    // What the copied values are, kept with the read: freeing buf before the read ends forgets its marks (its next
    // owner writes it anew), and spoil() marks this record as it marks buffers.
    const copied = { copiedIn: this.counters.submits, mark: this.failed.get(buf) };
    try {
      this.flush();
    } catch (e) {
      target.destroy();
      throw e;
    }
    this.pendingReads.add(copied);
    const submitted = this.counters.submits;
    let out: ArrayBuffer;
    try {
      await target.mapAsync(GPUMapMode.READ, 0, copy);
      out = target.getMappedRange(0, copy).slice(0, bytes);
      target.unmap();
    } catch (e) {
      this.pendingReads.delete(copied);
      target.destroy();
      await this.throwPendingErrors();
      throw e;
    }
    // Kept for the next read of this size class: a few per class, so reading many sizes holds no more than that.
    const list = this.freeStaging.get(size) ?? [];
    if (list.length < STAGING_PER_CLASS) {
      list.push(target);
      this.freeStaging.set(size, list);
      this.counters.stagingBuffers++;
      this.counters.stagingBytes += size;
    } else {
      target.destroy();
    }
    try {
      await this.throwPendingErrors(submitted);
    } finally {
      this.pendingReads.delete(copied);
    }
    const failed = copied.mark;
    if (failed !== undefined) {
      throw new Error(`webgpu: these values were not computed: the work that makes them failed, or used results of work that failed (${failed})`);
    }
    return out;
  }

  // ---- ops and dispatches ----

  /**
   * Starts an op. A timed op (`timed`, or `timing` set, on an adapter with timestamps) gets a compute pass of its
   * own, labelled with its name, with timestamp writes at its start and end; untimed ops share one pass, each
   * inside a debug group named after it (cheaper than a pass per op; Dawn names the group in encoding errors).
   */
  beginOp(name: string, timed = false): void {
    this.checkAlive(name);
    if (this.currentOp !== null) throw new Error(`webgpu: op '${name}' started inside op '${this.currentOp}'`);
    if (this.arenaUsed > this.dispatchesPerSubmit - OP_SLOTS) this.flush();
    this.currentOp = name;
    this.currentTimed = (timed || this.timing) && this.hasTimestamps;
    this.opInBatch = false;
  }

  /** Ends the op; the promise resolves with its GPU time once the GPU has run it. */
  endOp(): Promise<OpDeviceResult> {
    const name = this.currentOp ?? '?';
    if (this.passShared) this.closeGroup();
    else this.endPass();
    this.currentOp = null;
    // This op's own entry, if it dispatched anything since beginOp (an op that dispatched nothing, e.g. on an empty
    // tensor, must not take over the previous op's entry of the same name).
    const op = this.opInBatch ? this.opsInBatch[this.opsInBatch.length - 1] : undefined;
    let result: Promise<OpDeviceResult>;
    if (op && op.name === name && op.queryIndex !== null) {
      result = new Promise((resolve) => (op.resolve = resolve));
    } else {
      result = Promise.resolve({});
    }
    if (this.opsInBatch.length >= this.submitAfter()) this.flush();
    return result;
  }

  /** Records one dispatch of a kernel: its Params go into the next arena slot, bound at that slot's offset. */
  dispatch(spec: DispatchSpec): void {
    this.checkAlive(this.currentOp ?? spec.shader);
    const layout = this.layout(spec.shader);
    if (spec.buffers.length !== layout.storage) {
      throw new Error(`webgpu: ${spec.shader}: ${spec.buffers.length} storage buffers given, the shader binds ${layout.storage}`);
    }
    if (spec.params.length * 4 > PARAMS_BYTES) throw new Error(`webgpu: ${spec.shader}: Params of ${spec.params.length * 4} bytes exceed ${PARAMS_BYTES}`);
    const pipeline = this.pipeline(spec.shader, spec.constants);
    const bindGroup = this.bindGroup(spec.shader, layout, spec.buffers);
    // A full arena ends the submit (an op with more than OP_SLOTS dispatches may be split; its GPU time is then
    // that of its last part).
    if (this.arenaUsed === this.dispatchesPerSubmit) this.flush();
    const pass = this.ensurePass(); // may submit, too: take the slot after it
    const offset = this.arenaUsed++ * PARAMS_BYTES;
    writeParams(this.arena, offset, spec.params);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup, [offset]);
    const [x, y = 1, z = 1] = spec.workgroups;
    pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
    this.noteWrites(spec.buffers, layout.writes);
    // Outside an op (internal work such as poisoning new buffers), each dispatch gets a pass of its own.
    if (this.currentOp === null) this.endPass();
  }

  /**
   * Records which buffers a dispatch may write, in which submit (spoil() needs it), and passes on failure: what is
   * computed from a buffer that holds no computed values holds none either.
   */
  private noteWrites(buffers: readonly GPUBuffer[], writes: readonly boolean[]): void {
    let failed: string | undefined;
    if (this.failed.size > 0) {
      for (const b of buffers) {
        failed = this.failed.get(b);
        if (failed !== undefined) break;
      }
    }
    const submit = this.counters.submits;
    for (let i = 0; i < buffers.length; i++) {
      // (The dummy stands in for absent inputs and outputs: what it holds is never used.)
      if (!writes[i] || buffers[i] === this.dummyBuffer) continue;
      this.lastWrite.set(buffers[i], submit);
      if (failed !== undefined) this.failed.set(buffers[i], failed);
    }
  }

  /** Ops a command buffer takes before it is submitted: few when the GPU is idle (opsPerFirstSubmit), else opsPerSubmit. */
  private submitAfter(): number {
    return this.inFlight === 0 ? Math.min(this.opsPerFirstSubmit, this.opsPerSubmit) : this.opsPerSubmit;
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
      const resolve = this.guarded('createBuffer (timestamps)', () => this.device.createBuffer({ size: count * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }));
      readback = this.guarded('createBuffer (timestamps)', () => this.device.createBuffer({ size: count * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));
      enc.resolveQuerySet(querySet, 0, count, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, readback, 0, count * 8);
      void this.device.queue.onSubmittedWorkDone().then(() => resolve.destroy());
    }
    // (No arena where making it failed: the bind groups made with it fail this submit, which reports it. The slots
    // are free again either way.)
    if (this.arenaUsed > 0 && this.arenaBuffer) this.device.queue.writeBuffer(this.arenaBuffer, 0, this.arena.buffer, 0, this.arenaUsed * PARAMS_BYTES);
    this.arenaUsed = 0;
    // Encoding errors (a dispatch over the limits, a buffer bound twice as writable) are reported by finish(), not
    // by the call that made them: catch them here and name the op from its debug group or its pass label. Such a
    // command buffer runs none of its ops.
    const names = ops.map((o) => o.name);
    this.scoped(() => this.device.queue.submit([enc.finish()]), (e) => submitError(e.message, names), this.counters.submits);
    this.counters.submits++;
    this.inFlight++;
    const done = (): void => {
      this.inFlight--;
    };
    void this.device.queue.onSubmittedWorkDone().then(done, done);
    this.encoder = null;
    this.querySet = null;
    this.opsInBatch = [];
    this.opInBatch = false;
    if (readback && querySet) {
      const rb = readback;
      void rb.mapAsync(GPUMapMode.READ).then(() => {
        const t = new BigInt64Array(rb.getMappedRange());
        for (const o of timed) o.resolve({ gpuMs: Number(t[o.queryIndex! + 1] - t[o.queryIndex!]) / 1e6 });
        rb.unmap();
        rb.destroy();
        querySet.destroy();
      }, () => {
        // No timestamps to read (the device was lost): the ops ran, or their error is reported elsewhere.
        for (const o of timed) o.resolve({});
      });
    } else {
      for (const o of ops) o.resolve({});
    }
  }

  /** Waits for the GPU to finish everything submitted, then throws the first error an op caused, if any. */
  async sync(): Promise<void> {
    this.flush();
    const submitted = this.counters.submits;
    await this.device.queue.onSubmittedWorkDone();
    await this.throwPendingErrors(submitted);
  }

  /**
   * Throws the errors the device has reported (marking what they spoiled, see spoil()), and device loss. `ran`: the
   * submits before it are known to have finished, so without an error they are verified.
   */
  private throwPendingErrors(ran = 0): Promise<void> {
    const check = this.errorCheck.catch(() => undefined).then(() => this.checkErrors(ran));
    this.errorCheck = check;
    return check;
  }

  private async checkErrors(ran: number): Promise<void> {
    const pending = this.errors.splice(0);
    const found = (await Promise.all(pending.map(async (e) => ({ message: await e.message, submit: e.submit }))))
      .filter((e): e is { message: string; submit: number } => e.message !== null);
    if (found.length > 0) {
      const first = found.reduce((a, b) => (b.submit < a.submit ? b : a));
      this.spoil(first.submit, first.message);
      const messages = [...new Set(found.map((e) => e.message))];
      const shown = messages.slice(0, MAX_ERRORS_SHOWN).join('\n');
      throw new Error(messages.length > MAX_ERRORS_SHOWN ? `${shown}\n(and ${messages.length - MAX_ERRORS_SHOWN} more)` : shown);
    }
    if (this.lost) throw new Error(`webgpu: device lost (${this.lost})`);
    if (this.errors.length === 0) this.verified = Math.max(this.verified, ran);
  }

  /**
   * A command buffer from submit `first` on failed (none of its ops ran), or an object it used could not be made.
   * Everything written from that submit on is marked failed: the failed ops' outputs hold old values, and ops
   * submitted after them may have read those. A later read of such a buffer throws, naming `message`, until the
   * buffer is written anew (by an upload, or after it was freed); ops recorded from now on pass the mark on.
   */
  private spoil(first: number, message: string): void {
    for (const r of this.pendingReads) if (r.mark === undefined && r.copiedIn >= first) r.mark = message;
    for (const [buf, submit] of this.lastWrite) if (submit >= first && !this.failed.has(buf)) this.failed.set(buf, message);
  }

  /** Runs fn inside validation and out-of-memory error scopes; an error it raised is thrown, worded by `message`,
   *  at the next read or sync. `submit`: the first submit whose results the error spoils (default: the one being
   *  recorded, which uses what fn creates). */
  private scoped<T>(fn: () => T, message: (e: GPUError) => string, submit = this.counters.submits): T {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const out = fn();
    const scopes = [this.device.popErrorScope(), this.device.popErrorScope()];
    this.errors.push({
      message: Promise.all(scopes).then(([v, o]) => {
        const e = v ?? o;
        return e ? message(e) : null;
      }),
      submit,
    });
    return out;
  }

  /** Runs a call that creates a GPU object in error scopes; an error it raises names the op (or `what` outside ops). */
  private guarded<T>(what: string, create: () => T, op: string | null = this.currentOp, onError?: () => void): T {
    return this.scoped(create, (e) => {
      onError?.();
      return `webgpu: ${op ?? what}: ${e instanceof GPUOutOfMemoryError ? 'out of GPU memory' : 'validation error'}${op ? ` in ${what}` : ''}: ${e.message}`;
    });
  }

  private checkAlive(what: string): void {
    if (this.lost) throw new Error(`webgpu: device lost (${this.lost}); cannot run ${what}`);
  }

  /** A number for each buffer, in the order they were first seen (for the pool's choice and the bind-group keys). */
  private idOf(buf: GPUBuffer): number {
    let id = this.bufferIds.get(buf);
    if (id === undefined) this.bufferIds.set(buf, (id = this.nextBufferId++));
    return id;
  }

  /** A shader's explicit bind group layout (from its declared bindings), with the Params at a dynamic offset. */
  private layout(shader: string): ShaderLayout {
    let l = this.layouts.get(shader);
    if (!l) {
      const kinds = shaderBindings(shader, shaderSource(shader));
      const bindGroupLayout = this.guarded(`layout of ${shader}`, () => this.device.createBindGroupLayout({
        label: shader,
        entries: kinds.map((kind, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: kind === 'uniform' ? { type: 'uniform' as const, hasDynamicOffset: true } : { type: kind },
        })),
      }));
      const pipelineLayout = this.guarded(`layout of ${shader}`, () => this.device.createPipelineLayout({ label: shader, bindGroupLayouts: [bindGroupLayout] }));
      l = { bindGroupLayout, pipelineLayout, storage: kinds.length - 1, writes: kinds.slice(1).map((k) => k === 'storage') };
      this.layouts.set(shader, l);
    }
    return l;
  }

  /** The bind group of these storage buffers (and the arena at binding 0), made once and then reused. */
  private bindGroup(shader: string, layout: ShaderLayout, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let key = shader;
    for (const b of buffers) key += `,${this.idOf(b)}`;
    let bg = this.bindGroups.get(key);
    if (!bg) {
      const arena = this.arenaBuffer ??= this.guarded('createBuffer (params arena)', () => this.device.createBuffer({
        label: 'params arena', size: this.dispatchesPerSubmit * PARAMS_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      }), this.currentOp, () => {
        // Not made (out of memory): the next bind group makes it again, and none of those made with it is reused.
        if (this.arenaBuffer === arena) this.arenaBuffer = null;
        this.bindGroups.clear();
      });
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups.clear();
      bg = this.guarded(`bind group of ${shader}`, () => this.device.createBindGroup({
        label: shader,
        layout: layout.bindGroupLayout,
        entries: [
          { binding: 0, resource: { buffer: arena, size: PARAMS_BYTES } },
          ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
        ],
      }));
      this.bindGroups.set(key, bg);
      this.counters.bindGroups++;
    }
    return bg;
  }

  private pipeline(shader: string, constants?: Record<string, number>): GPUComputePipeline {
    // Built by hand, not with JSON.stringify: this runs on every dispatch.
    let key = shader;
    if (constants) for (const k in constants) key += `|${k}=${constants[k]}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const layout = this.layout(shader).pipelineLayout;
      p = this.guarded(`pipeline of ${shader}`, () => {
        const module = this.device.createShaderModule({ label: shader, code: shaderSource(shader) });
        return this.device.createComputePipeline({ label: shader, layout, compute: { module, entryPoint: 'main', ...(constants ? { constants } : {}) } });
      });
      this.pipelines.set(key, p);
      this.counters.pipelines++;
    }
    return p;
  }

  private takeEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** The pass the next dispatch goes into (see beginOp); internal work outside ops gets a pass per dispatch. */
  private ensurePass(): GPUComputePassEncoder {
    const name = this.currentOp;
    const timed = name !== null && this.currentTimed;
    if (name === null || !this.opInBatch || (timed && !this.pass)) {
      // The op's first dispatch in this submit: its entry (and, when timed, its query slots and its own pass).
      if (this.opsInBatch.length >= this.opsPerSubmit) this.flush();
      let queryIndex: number | null = null;
      if (timed) {
        this.querySet ??= this.guarded('createQuerySet', () => this.device.createQuerySet({ type: 'timestamp', count: 2 * this.opsPerSubmit + 2 }));
        queryIndex = 2 * this.opsInBatch.length;
      }
      this.opsInBatch.push({ name: name ?? 'internal', queryIndex, resolve: () => {} });
      this.opInBatch = name !== null;
      if (name === null || queryIndex !== null) {
        this.endPass();
        this.pass = this.takeEncoder().beginComputePass(queryIndex !== null
          ? { label: name!, timestampWrites: { querySet: this.querySet!, beginningOfPassWriteIndex: queryIndex, endOfPassWriteIndex: queryIndex + 1 } }
          : { label: 'internal' });
        return this.pass;
      }
    }
    if (timed) return this.pass!;
    if (!this.pass || !this.passShared) {
      this.endPass();
      this.pass = this.takeEncoder().beginComputePass({ label: 'ops' });
      this.passShared = true;
    }
    if (!this.groupOpen) {
      this.pass.pushDebugGroup(name!);
      this.groupOpen = true;
    }
    return this.pass;
  }

  private closeGroup(): void {
    if (this.groupOpen) this.pass!.popDebugGroup();
    this.groupOpen = false;
  }

  private endPass(): void {
    this.closeGroup();
    this.pass?.end();
    this.pass = null;
    this.passShared = false;
  }
}

/** The error of a command buffer that failed validation, naming the op that caused it: from Dawn's debug group
 *  stack (untimed ops) or the label of the op's own compute pass (timed ops). */
export function submitError(message: string, ops: readonly string[]): string {
  const group = /Debug group stack:\s*>\s*"([^"\u0000]*)/.exec(message)?.[1];
  const label = /ComputePassEncoder "([^"]*)"/.exec(message)?.[1];
  const op = group ?? (label !== undefined && label !== 'ops' ? label : `one of ${ops.join(', ') || 'no ops'}`);
  const none = ops.length === 1 ? 'the op did not run' : `none of the ${ops.length} ops submitted with it ran`;
  return `webgpu: ${op}: validation error: ${message.trim()} (${none})`;
}

/** Readback buffers kept per size class. */
const STAGING_PER_CLASS = 2;
/** Distinct device errors one read or sync lists before "(and N more)". */
const MAX_ERRORS_SHOWN = 4;

/** The pool's size for a buffer of `bytes`: the next power of two from 256 bytes, or `bytes` rounded up to a multiple
 *  of 4 where that power of two would exceed `limit` (a device limit that need not be a power of two). */
export function sizeClass(bytes: number, limit = Infinity): number {
  let s = 256;
  while (s < bytes) s *= 2;
  return s <= limit ? s : Math.ceil(bytes / 4) * 4;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
