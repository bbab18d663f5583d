// conv2d_grad_weight_reduce: sums the split-K partial weight gradients of conv2d_grad_weight.wgsl.
//
//   dw[i] = sum_{s < splits} partial[s * size + i]      (i < size = O*C*KH*KW)
//
// A workgroup sums 64 consecutive outputs i0 .. i0+63: thread t takes output i0 + t % 64 and the
// splits s = lane, lane + LANES, ... (lane = t / 64, LANES = WG / 64), with two independent
// accumulators so that several loads are in flight; the LANES partial sums of an output are then
// added in workgroup memory. Each load of a lane touches 64 consecutive floats (coalesced).
//
// Bindings: 0 uniform Params, 1 partial (read), 2 dw (read_write).
// Launch: WG threads (a multiple of 64); ceil(size / 64) workgroups folded into x/y by grid1d
//         (workgroup index = wid.x + wid.y * nwg.x).

struct Params {
  size: u32,
  splits: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;

override WG: u32 = 256u;
const COLS: u32 = 64u;  // outputs per workgroup

var<workgroup> sums: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let lanes = WG / COLS;
  let lane = tid / COLS;
  let i = (wid.x + wid.y * nwg.x) * COLS + tid % COLS;
  var s0 = 0.0;
  var s1 = 0.0;
  if (i < P.size) {
    var s = lane;
    for (; s + lanes < P.splits; s += 2u * lanes) {
      s0 += partial[s * P.size + i];
      s1 += partial[(s + lanes) * P.size + i];
    }
    if (s < P.splits) {
      s0 += partial[s * P.size + i];
    }
  }
  sums[tid] = s0 + s1;
  workgroupBarrier();
  if (lane == 0u && i < P.size) {
    var total = 0.0;
    for (var l = 0u; l < lanes; l++) {
      total += sums[l * COLS + tid];
    }
    dw[i] = total;
  }
}
