// reduce_sum: out[o * S + s] = scale * sum_{r in split s} x[keptOffset(o) + redOffset(r)]
// for o < O (the kept index, row-major over the kept axes) and s < S (splits of the reduced range
// [0, R), `chunk` reduced indices each). The host canonicalises the input (drops size-1 axes, merges
// neighbouring axes that are both kept or both reduced), so there are at most 4 kept and 4 reduced
// axis groups:  keptOffset(o) = sum_d o_d * keptStrides_d,  redOffset(r) = sum_d r_d * redStrides_d.
// With S = 1 this is the final result; with S > 1 the host reduces the [O, S] partials again.
//
// Each workgroup of WG = 256 threads handles OX = WG / RY consecutive outputs and one split: thread
// (ox, ry) = (t % OX, t / OX) sums r = split start + ry, + RY, ... serially (a few dozen terms at most),
// then the RY partial sums of each output are added as a binary tree in workgroup memory (pairwise,
// so the f32 rounding error grows ~log of the reduced extent). RY (override, a power of two) is
// chosen by the host: 1 = one thread per output (short reductions), 256 = one workgroup per output.
//
// Bindings:
//   0  uniform Params { keptShape: vec4<u32>, keptStrides: vec4<u32>, redShape: vec4<u32>,
//                       redStrides: vec4<u32>, O: u32, R: u32, chunk: u32, S: u32, blocks: u32,
//                       keptRank: u32, redRank: u32, scale: f32 }     (blocks = ceil(O / OX))
//   1  x:   array<f32>   (read)
//   2  out: array<f32>   (read_write, O * S floats)
// Launch: blocks * S workgroups (folded into y beyond 65535 as grid1d does); workgroup id
//         w = wid.x + wid.y * num_workgroups.x, block = w % blocks, s = w / blocks.
// Workgroup memory: WG floats (1 KiB).

override WG: u32 = 256u;
override RY: u32 = 256u;


struct Params {
  keptShape: vec4<u32>,
  keptStrides: vec4<u32>,
  redShape: vec4<u32>,
  redStrides: vec4<u32>,
  O: u32,
  R: u32,
  chunk: u32,
  S: u32,
  blocks: u32,
  keptRank: u32,
  redRank: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn keptOffset(o: u32) -> u32 {
  var rem = o;
  var off = 0u;
  for (var d = i32(params.keptRank) - 1; d >= 0; d--) {
    let size = params.keptShape[d];
    off += (rem % size) * params.keptStrides[d];
    rem = rem / size;
  }
  return off;
}

fn redOffset(r: u32) -> u32 {
  var rem = r;
  var off = 0u;
  for (var d = i32(params.redRank) - 1; d >= 0; d--) {
    let size = params.redShape[d];
    off += (rem % size) * params.redStrides[d];
    rem = rem / size;
  }
  return off;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= params.blocks * params.S) {
    return;
  }
  let ox_count = WG / RY;
  let block = w % params.blocks;
  let s = w / params.blocks;
  let ox = t % ox_count;
  let ry = t / ox_count;
  let o = block * ox_count + ox;

  var acc = 0.0;
  if (o < params.O) {
    let base = keptOffset(o);
    let start = s * params.chunk;
    let end = min(params.R, start + params.chunk);
    for (var r = start + ry; r < end; r += RY) {
      acc += x[base + redOffset(r)];
    }
  }
  partial[t] = acc;
  workgroupBarrier();
  for (var stride = RY / 2u; stride > 0u; stride = stride / 2u) {
    if (ry < stride) {
      partial[t] += partial[t + stride * ox_count];
    }
    workgroupBarrier();
  }
  if (ry == 0u && o < params.O) {
    out[o * params.S + s] = params.scale * partial[ox];
  }
}
