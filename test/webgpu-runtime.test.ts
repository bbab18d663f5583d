/**
 * The WebGPU runtime itself (src/engine/webgpu/runtime.ts), below the kernels: how it records dispatches and how it
 * reports errors. Each test gets a device of its own (errors a device reports must not leak into another test).
 *
 *   - every dispatch reads its own Params from the uniform arena at its dynamic offset, also when the arena fills
 *     between ops and inside an op (a submit is made and the arena starts over);
 *   - bind groups are made once per (shader, storage buffers) and reused; trim() drops those of destroyed buffers;
 *   - a released buffer is handed out again at once, while recorded work still reads it, and that work still
 *     sees the old contents (work recorded later runs later);
 *   - trim() submits recorded work before it destroys the pooled buffers; readback buffers are pooled by size class,
 *     a few per class, and trimmed too; a buffer over the device's binding limit is refused at once;
 *   - errors name the op: an encoding error found only when the command buffer is finished (a dispatch over the
 *     workgroup limit), a bind group that cannot be made, an error outside any scope; after one, the runtime goes on,
 *     and refuses to read what the failed work should have written or what was computed from it.
 */
import { describe, expect, it } from 'vitest';
import { requestGpuDevice } from '../src/engine/webgpu/device.js';
import { GpuRuntime, sizeClass, type GpuRuntimeOptions } from '../src/engine/webgpu/runtime.js';
import { loadShaders } from '../src/engine/webgpu/shaders.js';
import { copy } from '../src/engine/webgpu/kernels/elementwise.js';
import { download, haveGpu, inOp as op } from './webgpu/gpu.js';

const GPU = await haveGpu();

async function freshRuntime(options: GpuRuntimeOptions = {}): Promise<GpuRuntime> {
  const gpu = await requestGpuDevice();
  if (!gpu) throw new Error('no WebGPU adapter');
  await loadShaders();
  return new GpuRuntime(gpu.device, gpu.hasTimestamps, gpu.software, options);
}

/** One fill dispatch: out[0..n) = value. */
function fill(rt: GpuRuntime, out: GPUBuffer, n: number, value: number, workgroups = Math.ceil(n / 256)): void {
  rt.dispatch({ shader: 'fill', params: [['u32', n], ['f32', value]], buffers: [out], workgroups: [workgroups] });
}

describe('webgpu runtime: buffer sizes', () => {
  it('pools by powers of two from 256 bytes, and by the exact size (a multiple of 4) where that would pass the limit', () => {
    expect([1, 256, 257, 1000, 4096, 4097].map((b) => sizeClass(b))).toEqual([256, 256, 512, 1024, 4096, 8192]);
    expect(sizeClass(3e9, 2 ** 32 - 4)).toBe(3e9);
    expect(sizeClass(3e9 + 2, 2 ** 32 - 4)).toBe(3e9 + 4);
    expect(sizeClass(2 ** 31 + 1, 2 ** 32)).toBe(2 ** 32);
    expect(sizeClass(100, 128)).toBe(100);
  });
});

describe.skipIf(!GPU)('webgpu runtime: Params arena and bind groups', () => {
  it('each dispatch sees its own Params, also across submits made when the arena is full', async () => {
    const rt = await freshRuntime({ dispatchesPerSubmit: 16 });
    const n = 300;
    const bufs = Array.from({ length: 40 }, () => rt.acquire(n * 4));
    const submits0 = rt.counters.submits;
    // 40 ops of one dispatch each: the arena (16 slots) fills between ops
    bufs.forEach((b, i) => op(rt, `fill ${i}`, () => fill(rt, b, n, i + 0.5)));
    for (let i = 0; i < bufs.length; i++) expect([...new Set(await download(rt, bufs[i], n))], `buffer ${i}`).toEqual([i + 0.5]);
    expect(rt.counters.submits - submits0).toBeGreaterThanOrEqual(3);

    // one op of 40 dispatches: the arena fills inside the op
    const submits1 = rt.counters.submits;
    op(rt, 'many dispatches', () => bufs.forEach((b, i) => fill(rt, b, n, -i - 1)));
    for (let i = 0; i < bufs.length; i++) expect([...new Set(await download(rt, bufs[i], n))], `buffer ${i}`).toEqual([-i - 1]);
    expect(rt.counters.submits - submits1).toBeGreaterThanOrEqual(3);

    // the same buffer filled twice in one op: the second value wins, so the two dispatches had distinct slots
    const one = rt.acquire(n * 4);
    op(rt, 'twice', () => {
      fill(rt, one, n, 1);
      fill(rt, one, 100, 2);
    });
    const got = await download(rt, one, n);
    expect(got.slice(0, 100).every((v) => v === 2) && got.slice(100).every((v) => v === 1)).toBe(true);
    await rt.sync();
  });

  it('submits the first ops early while the GPU is idle, then every opsPerSubmit ops', async () => {
    const rt = await freshRuntime();
    expect([rt.opsPerFirstSubmit, rt.opsPerSubmit]).toEqual([8, 64]);
    const buf = rt.acquire(1024);
    await rt.sync(); // nothing in flight
    const s0 = rt.counters.submits;
    const ops = (count: number) => {
      for (let i = 0; i < count; i++) op(rt, `fill ${i}`, () => fill(rt, buf, 256, i));
    };
    // Recorded in one synchronous run, as a training step is: the GPU is idle before the first submit, busy after.
    ops(7);
    expect(rt.counters.submits - s0).toBe(0);
    ops(1);
    expect(rt.counters.submits - s0).toBe(1); // the 8th op: submitted early
    ops(63);
    expect(rt.counters.submits - s0).toBe(1);
    ops(1);
    expect(rt.counters.submits - s0).toBe(2); // 64 ops later
    await rt.sync();
    // Idle again: the next burst starts with an early submit too.
    ops(8);
    expect(rt.counters.submits - s0).toBe(3); // (sync had nothing left to submit)
  });

  it('makes a bind group once per shader and buffers, and trim() drops those of destroyed buffers', async () => {
    const rt = await freshRuntime();
    const a = rt.acquire(1024);
    const b = rt.acquire(1024);
    op(rt, 'a', () => fill(rt, a, 256, 1));
    const made = rt.counters.bindGroups;
    for (let i = 0; i < 10; i++) op(rt, 'a again', () => fill(rt, a, 256, i));
    expect(rt.counters.bindGroups).toBe(made);
    expect([...new Set(await download(rt, a, 256))]).toEqual([9]);
    op(rt, 'b', () => fill(rt, b, 256, 7));
    expect(rt.counters.bindGroups).toBe(made + 1);
    expect([...new Set(await download(rt, b, 256))]).toEqual([7]);

    // a and b go back to the pool and are destroyed; the buffer acquired next is new, and so is its bind group
    rt.release(a);
    rt.release(b);
    expect(rt.cachedBindGroups).toBeGreaterThanOrEqual(2);
    rt.trim();
    expect(rt.cachedBindGroups).toBe(0);
    const c = rt.acquire(1024);
    op(rt, 'c', () => fill(rt, c, 256, 3));
    expect([...new Set(await download(rt, c, 256))]).toEqual([3]);
    await rt.sync();
  });

  it('a buffer released while recorded work still reads it is reused at once, and the earlier work sees the old values', async () => {
    const rt = await freshRuntime();
    const n = 1000;
    const a = rt.acquire(n * 4);
    const b = rt.acquire(n * 4);
    const submits = rt.counters.submits;
    op(rt, 'fill a', () => fill(rt, a, n, 1));
    op(rt, 'b = a', () => copy(rt, a, [1], 0, b, [1], 0, [n]));
    rt.release(a);
    const c = rt.acquire(n * 4);
    expect(c).toBe(a); // the same storage, handed out before anything was submitted
    op(rt, 'fill c', () => fill(rt, c, n, 9));
    expect(rt.counters.submits).toBe(submits); // all three ops in one command buffer
    expect([...new Set(await download(rt, b, n))]).toEqual([1]);
    expect([...new Set(await download(rt, c, n))]).toEqual([9]);
  });

  it('times a timed op between untimed ones (which share a pass) on its own', async () => {
    const rt = await freshRuntime();
    const a = rt.acquire(1 << 20);
    const results: Array<Promise<{ gpuMs?: number }>> = [];
    const run = (name: string, timed: boolean, value: number): void => {
      rt.beginOp(name, timed);
      fill(rt, a, 1 << 18, value);
      results.push(rt.endOp());
    };
    run('u1', false, 1);
    run('t1', true, 2);
    run('u2', false, 3);
    run('u3', false, 4);
    run('t2', true, 5);
    await rt.sync();
    const r = await Promise.all(results);
    for (const i of [0, 2, 3]) expect(r[i].gpuMs, `untimed op ${i}`).toBeUndefined();
    for (const i of [1, 4]) {
      if (rt.hasTimestamps) expect(r[i].gpuMs, `timed op ${i}`).toBeGreaterThanOrEqual(0);
      else expect(r[i].gpuMs).toBeUndefined();
    }
    expect([...new Set(await download(rt, a, 1 << 18))]).toEqual([5]); // in order
  });

  it('two reads at once after a failed command buffer both refuse what it spoiled', async () => {
    const rt = await freshRuntime();
    const n = 256;
    const x = rt.acquire(n * 4), y = rt.acquire(n * 4), bad = rt.acquire(n * 4);
    rt.write(y, new Float32Array(n).fill(-2));
    op(rt, 'x = 5', () => fill(rt, x, n, 5));
    op(rt, 'badop', () => fill(rt, bad, n, 1, 70000));
    rt.flush();
    op(rt, 'y = x', () => copy(rt, x, [1], 0, y, [1], 0, [n])); // a later submit: y gets x's stale values
    const [rx, ry] = await Promise.allSettled([download(rt, x, n), download(rt, y, n)]);
    expect(rx.status === 'rejected' && String(rx.reason)).toMatch(/badop: validation error/);
    expect(ry.status === 'rejected' && String(ry.reason)).toMatch(/these values were not computed/);
  });

  it('after a failure: a buffer freed meanwhile and handed out again, and the dummy, carry no mark', async () => {
    const rt = await freshRuntime();
    const n = 4;
    const x = rt.acquire(n * 4), bad = rt.acquire(n * 4);
    op(rt, 'x = 5', () => fill(rt, x, n, 5));
    op(rt, 'dummy = 1', () => fill(rt, rt.dummy(), n, 1)); // (kernels bind the dummy writable for absent outputs)
    op(rt, 'badop', () => fill(rt, bad, n, 1, 70000));
    rt.release(x); // freed before anyone knows the batch failed
    await expect(rt.sync()).rejects.toThrow(/badop/);
    const again = rt.acquire(n * 4);
    expect(again).toBe(x);
    op(rt, 'again = 4', () => fill(rt, again, n, 4));
    expect(Array.from(await download(rt, again, n))).toEqual([4, 4, 4, 4]);
    // What is computed with the dummy bound (it stands for nothing) is not refused.
    const z = rt.acquire(n * 4);
    op(rt, 'z = dummy', () => copy(rt, rt.dummy(), [1], 0, z, [1], 0, [n]));
    expect(await download(rt, z, n)).toHaveLength(n);
  });

  it('a read of what a failed command buffer spoiled refuses it also when the buffer is freed while the read waits', async () => {
    const rt = await freshRuntime();
    const n = 4;
    const bad = rt.acquire(n * 4);
    op(rt, 'badop', () => fill(rt, bad, n, 1, 70000));
    await expect(download(rt, bad, n)).rejects.toThrow(/badop/);
    // Marked: a read refuses it. Freed while that read waits (its next owner writes it anew), the read still does:
    // the values it copied are the spoiled ones.
    const read = download(rt, bad, n);
    rt.release(bad);
    await expect(read).rejects.toThrow(/these values were not computed/);
    // Freed before the failure was known: the same.
    const x = rt.acquire(n * 4), bad2 = rt.acquire(n * 4);
    op(rt, 'badop2', () => fill(rt, bad2, n, 1, 70000));
    op(rt, 'x = 5', () => fill(rt, x, n, 5));
    const early = download(rt, x, n);
    rt.release(x);
    await expect(early).rejects.toThrow(/badop2/); // this read finds the error itself
    const y = rt.acquire(n * 4);
    op(rt, 'x2 = 5', () => fill(rt, y, n, 5)); // written anew after the failure: clean
    const late = download(rt, y, n);
    rt.release(y);
    expect(Array.from(await late)).toEqual([5, 5, 5, 5]);
  });

  it('a buffer whose creation failed (out of memory) is not pooled: the op is named, and later ops of its size run', async () => {
    const rt = await freshRuntime();
    const n = 1024;
    const ok = rt.acquire(n * 4);
    op(rt, 'warm', () => fill(rt, ok, n, 1)); // the arena and the pipeline exist
    await download(rt, ok, n);
    // A buffer Dawn cannot make: an invalid one comes back, as for an out-of-memory.
    const create = rt.device.createBuffer.bind(rt.device);
    rt.device.createBuffer = (d) => create({ ...d, usage: d.usage | GPUBufferUsage.MAP_READ });
    const broken = rt.acquire(n * 4, 'someop');
    rt.device.createBuffer = create;
    await expect(rt.sync()).rejects.toThrow(/^webgpu: someop: validation error in createBuffer\(4096 bytes\)/);
    rt.release(broken);
    for (let k = 0; k < 3; k++) {
      const b = rt.acquire(n * 4);
      expect(b).not.toBe(broken);
      op(rt, `after ${k}`, () => fill(rt, b, n, k));
      expect([...new Set(await download(rt, b, n))]).toEqual([k]);
      rt.release(b);
    }
  });

  it("a read whose copy is in the command buffer that failed refuses (the copy did not run: the staging buffer's old values)", async () => {
    const rt = await freshRuntime();
    const n = 4;
    const a = rt.acquire(n * 4), b = rt.acquire(n * 4), c = rt.acquire(n * 4);
    op(rt, 'a = 1', () => fill(rt, a, n, 1));
    op(rt, 'b = 2', () => fill(rt, b, n, 2));
    await download(rt, a, n);
    await download(rt, b, n); // a staging buffer of this class now holds [2, 2, 2, 2]
    op(rt, 'b = 7', () => fill(rt, b, n, 7));
    await rt.sync();
    const r1 = download(rt, a, n);
    op(rt, 'badop', () => fill(rt, c, n, 9, 70000)); // its command buffer also holds the second read's copy
    const r2 = download(rt, b, n);
    const [s1, s2] = await Promise.allSettled([r1, r2]);
    expect(s1.status === 'rejected' && String(s1.reason)).toMatch(/badop: validation error/); // the first check reports it
    expect(s2.status === 'rejected' && String(s2.reason)).toMatch(/these values were not computed: .*\(webgpu: badop/);
  });

  it('a params arena whose creation failed is made again, also when its error comes while a full arena waits to be submitted', async () => {
    /** Records `dispatches` fills while Dawn makes the arena invalid (as for an out-of-memory), then restores it. */
    const withFailingArena = (rt: GpuRuntime, dispatches: number): void => {
      const create = rt.device.createBuffer.bind(rt.device);
      rt.device.createBuffer = (d) => create(d.label === 'params arena' ? { ...d, usage: d.usage | GPUBufferUsage.MAP_READ } : d);
      const x = rt.acquire(64);
      op(rt, 'first', () => { for (let i = 0; i < dispatches; i++) fill(rt, x, 16, i); });
      rt.device.createBuffer = create;
    };
    const laterWorkRuns = async (rt: GpuRuntime): Promise<void> => {
      for (let k = 0; k < 3; k++) {
        const y = rt.acquire(64);
        op(rt, `after ${k}`, () => fill(rt, y, 16, k + 2));
        expect([...new Set(await download(rt, y, 16))]).toEqual([k + 2]);
      }
    };
    // The error found at the sync that submits the work.
    const rt = await freshRuntime();
    withFailingArena(rt, 1);
    await expect(rt.sync()).rejects.toThrow(/createBuffer \(params arena\)/);
    await laterWorkRuns(rt);
    // The error arriving while the caller awaits something else, a full arena's dispatches not yet submitted.
    const full = await freshRuntime({ dispatchesPerSubmit: 16 });
    full.opsPerSubmit = full.opsPerFirstSubmit = 1000; // one command buffer
    withFailingArena(full, 16);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(full.sync()).rejects.toThrow(/params arena/);
    await laterWorkRuns(full);
  });

  it('counts the high-water of live buffer bytes, which can be restarted', async () => {
    const rt = await freshRuntime();
    const a = rt.acquire(1000); // 1024-byte class
    const b = rt.acquire(3000); // 4096
    expect(rt.counters.peakLiveBytes).toBe(5120);
    rt.release(b);
    expect(rt.counters.peakLiveBytes).toBe(5120);
    rt.counters.peakLiveBytes = rt.counters.liveBytes;
    rt.acquire(200);
    expect(rt.counters.peakLiveBytes).toBe(1024 + 256);
    rt.release(a);
  });

  it('trim() submits recorded work before destroying the pooled buffers it reads', async () => {
    const rt = await freshRuntime();
    const n = 1000;
    const a = rt.acquire(n * 4);
    const b = rt.acquire(n * 4);
    op(rt, 'a = 2', () => fill(rt, a, n, 2));
    op(rt, 'b = a', () => copy(rt, a, [1], 0, b, [1], 0, [n]));
    rt.release(a); // back in the pool while 'b = a' (recorded, not submitted) reads it
    rt.trim();
    expect([...new Set(await download(rt, b, n))]).toEqual([2]);
    expect(rt.counters.pooledBuffers).toBe(0);
  });

  it('keeps a few readback buffers per power-of-two size class, and trim() destroys them', async () => {
    const rt = await freshRuntime();
    const classes = new Set<number>();
    for (let i = 1; i <= 40; i++) {
      const n = 1000 * i;
      const buf = rt.acquire(n * 4);
      op(rt, 'fill', () => fill(rt, buf, n, i));
      expect([...new Set(await download(rt, buf, n))]).toEqual([i]);
      rt.release(buf);
      classes.add(sizeClass(n * 4));
    }
    expect(classes.size).toBeLessThan(10);
    expect(rt.counters.stagingBuffers).toBe(classes.size); // one read at a time: one buffer per class
    expect(rt.counters.stagingBytes).toBe([...classes].reduce((a, b) => a + b, 0));
    // Five reads at once need five readback buffers of one class; two are kept.
    const bufs = Array.from({ length: 5 }, (_, i) => {
      const b = rt.acquire(64 * 4);
      op(rt, 'fill', () => fill(rt, b, 64, i));
      return b;
    });
    const before = rt.counters.stagingBuffers;
    const got = await Promise.all(bufs.map((b) => download(rt, b, 64)));
    expect(got.map((g) => g[0])).toEqual([0, 1, 2, 3, 4]);
    expect(rt.counters.stagingBuffers - before).toBe(classes.has(256) ? 1 : 2); // the 256-byte class held one already
    for (const b of bufs) rt.release(b);
    rt.trim();
    expect(rt.counters.stagingBuffers).toBe(0);
    expect(rt.counters.stagingBytes).toBe(0);
    const buf = rt.acquire(4000);
    op(rt, 'fill', () => fill(rt, buf, 1000, 7));
    expect([...new Set(await download(rt, buf, 1000))]).toEqual([7]);
  });

  it('refuses a buffer larger than the device can bind at once, naming the size and the limit', async () => {
    const rt = await freshRuntime();
    const limit = Math.min(rt.device.limits.maxStorageBufferBindingSize, rt.device.limits.maxBufferSize);
    expect(() => rt.acquire(limit + 4)).toThrow(new RegExp(`^webgpu: a buffer of ${limit + 4} bytes .* is larger than this device can bind \\(maxStorageBufferBindingSize`));
    expect(rt.counters.liveBuffers).toBe(0);
    await rt.sync(); // nothing was left to fail later
  });

  it('rejects a dispatch whose buffers do not match the shader, naming both counts', async () => {
    const rt = await freshRuntime();
    const a = rt.acquire(1024);
    expect(() => op(rt, 'x', () => rt.dispatch({ shader: 'fill', params: [['u32', 1], ['f32', 0]], buffers: [a, a], workgroups: [1] })))
      .toThrow(/fill: 2 storage buffers given, the shader binds 1/);
    expect(() => op(rt, 'x', () => rt.dispatch({ shader: 'fill', params: Array.from({ length: 65 }, () => ['u32', 0] as const), buffers: [a], workgroups: [1] })))
      .toThrow(/fill: Params of 260 bytes exceed 256/);
  });
});

describe.skipIf(!GPU)('webgpu runtime: errors name the op', () => {
  it('an encoding error found at submit names the op, says the batch did not run, and the runtime goes on', async () => {
    const rt = await freshRuntime();
    const good = rt.acquire(1024);
    const out = rt.acquire(1024);
    op(rt, 'before', () => fill(rt, good, 256, 5));
    op(rt, 'badop', () => fill(rt, out, 256, 1, 70000)); // over the 65535 workgroups per dimension
    await expect(rt.sync()).rejects.toThrow(/^webgpu: badop: validation error: .*65535[\s\S]*none of the 2 ops submitted with it ran/);
    // the runtime goes on: the next op runs and reads back
    const next = rt.acquire(1024);
    op(rt, 'after', () => fill(rt, next, 256, 6));
    expect([...new Set(await download(rt, next, 256))]).toEqual([6]);
  });

  it('what a failed command buffer should have written, and what was computed from it, is refused on reading', async () => {
    const rt = await freshRuntime();
    const n = 256;
    const before = rt.acquire(n * 4);
    op(rt, 'before', () => fill(rt, before, n, 1));
    await rt.sync();
    const x = rt.acquire(n * 4);
    const bad = rt.acquire(n * 4);
    const y = rt.acquire(n * 4);
    op(rt, 'x = 5', () => fill(rt, x, n, 5));
    op(rt, 'badop', () => fill(rt, bad, n, 1, 70000));
    rt.flush(); // the failed command buffer
    op(rt, 'y = x', () => copy(rt, x, [1], 0, y, [1], 0, [n])); // submitted later, reads what never was written
    // The first read says what failed; it and later reads of x or y refuse their values rather than give stale ones.
    await expect(download(rt, y, n)).rejects.toThrow(/^webgpu: badop: validation error/);
    await expect(download(rt, x, n)).rejects.toThrow(/these values were not computed.*\(webgpu: badop: validation error/s);
    await expect(download(rt, y, n)).rejects.toThrow(/these values were not computed/);
    // Work recorded now, from y, holds no computed values either.
    const z = rt.acquire(n * 4);
    op(rt, 'z = y', () => copy(rt, y, [1], 0, z, [1], 0, [n]));
    await expect(download(rt, z, n)).rejects.toThrow(/these values were not computed/);
    // What was written before the failure, new work, new uploads and buffers handed out again read as they should.
    expect([...new Set(await download(rt, before, n))]).toEqual([1]);
    const w = rt.acquire(n * 4);
    op(rt, 'w = before', () => copy(rt, before, [1], 0, w, [1], 0, [n]));
    expect([...new Set(await download(rt, w, n))]).toEqual([1]);
    rt.write(x, new Float32Array(n).fill(3));
    expect([...new Set(await download(rt, x, n))]).toEqual([3]);
    rt.release(z);
    const again = rt.acquire(n * 4);
    expect(again).toBe(z);
    op(rt, 'again = 4', () => fill(rt, again, n, 4));
    expect([...new Set(await download(rt, again, n))]).toEqual([4]);
  });

  it('an encoding error in a timed op (a pass of its own) is named too', async () => {
    const rt = await freshRuntime();
    const out = rt.acquire(1024);
    op(rt, 'untimed', () => fill(rt, out, 256, 1));
    rt.beginOp('timed bad op', true);
    fill(rt, out, 256, 1, 70000);
    void rt.endOp();
    await expect(rt.sync()).rejects.toThrow(/^webgpu: (timed bad op): validation error: .*65535/);
  });

  it('a bind group that cannot be made names the op and the bind group', async () => {
    const rt = await freshRuntime();
    const notStorage = rt.device.createBuffer({ size: 1024, usage: GPUBufferUsage.COPY_DST });
    op(rt, 'wrong buffer', () => fill(rt, notStorage, 256, 1));
    await expect(rt.sync()).rejects.toThrow(/^webgpu: wrong buffer: validation error in bind group of fill: /);
  });

  it('an error outside every scope (a write to a destroyed buffer) is thrown at the next sync', async () => {
    const rt = await freshRuntime();
    const buf = rt.acquire(1024);
    buf.destroy();
    rt.write(buf, new Float32Array(4));
    await expect(rt.sync()).rejects.toThrow(/^webgpu: error: .*destroyed/i);
  });

  it('two failed command buffers: what both spoiled is refused naming the earlier one', async () => {
    const rt = await freshRuntime();
    const n = 4;
    const [x, y, b1, b2] = [0, 1, 2, 3].map(() => rt.acquire(n * 4));
    op(rt, 'x = 1', () => fill(rt, x, n, 1));
    op(rt, 'first bad op', () => fill(rt, b1, n, 1, 70000));
    rt.flush();
    op(rt, 'y = 2', () => fill(rt, y, n, 2));
    op(rt, 'second bad op', () => fill(rt, b2, n, 1, 70000));
    await expect(rt.sync()).rejects.toThrow(/first bad op[\s\S]*second bad op/);
    await expect(download(rt, y, n)).rejects.toThrow(/not computed.*\(webgpu: first bad op: /s);
  });

  it('work submitted while a read waits is not counted as seen clean by that read', async () => {
    const rt = await freshRuntime();
    const n = 4;
    const w = rt.acquire(n * 4), v = rt.acquire(n * 4);
    op(rt, 'w = 7', () => fill(rt, w, n, 7));
    const reading = download(rt, w, n); // submitted; the read waits for the GPU
    op(rt, 'v = 3', () => fill(rt, v, n, 3));
    rt.flush(); // a later submit, made while the read waits
    expect(Array.from(await reading)).toEqual([7, 7, 7, 7]);
    const dead = rt.acquire(1024);
    dead.destroy();
    rt.write(dead, new Float32Array(4)); // an error tied to no submit: v's submit was not seen clean
    await expect(rt.sync()).rejects.toThrow(/destroyed/i);
    await expect(download(rt, v, n)).rejects.toThrow(/these values were not computed/);
    expect(Array.from(await download(rt, w, n))).toEqual([7, 7, 7, 7]);
  });

  it('an error tied to no submit spoils what was written since the last clean sync or read, not before', async () => {
    const rt = await freshRuntime();
    const n = 4;
    const w = rt.acquire(n * 4), v = rt.acquire(n * 4);
    op(rt, 'w = 7', () => fill(rt, w, n, 7));
    expect(Array.from(await download(rt, w, n))).toEqual([7, 7, 7, 7]); // verified: it ran without error
    op(rt, 'v = 3', () => fill(rt, v, n, 3));
    rt.flush();
    const dead = rt.acquire(1024);
    dead.destroy();
    rt.write(dead, new Float32Array(4)); // an uncaptured error, after v's submit
    await expect(rt.sync()).rejects.toThrow(/destroyed/i);
    expect(Array.from(await download(rt, w, n))).toEqual([7, 7, 7, 7]);
    await expect(download(rt, v, n)).rejects.toThrow(/these values were not computed/);
  });
});
