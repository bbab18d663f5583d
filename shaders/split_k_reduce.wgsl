// split_k_reduce: sums the split-K partial outputs of the convolution kernels (conv2d.wgsl,
// conv2d_grad_input.wgsl, conv2d_grad_weight.wgsl), and adds conv2d's bias where it has one.
//
//   out[i] = sum_{s < splits} partial[s * size + i]  (+ bias[(i / inner) % channels] when hasBias)
//   (i < size; for conv2d's NCHW output, inner = OH*OW and channels = O, so the bias index is o)
//
// A workgroup sums 64 consecutive outputs i0 .. i0+63: thread t takes output i0 + t % 64 and the
// splits s = lane, lane + LANES, ... (lane = t / 64, LANES = WG / 64), with two independent
// accumulators so that several loads are in flight; the LANES partial sums of an output are then
// added in workgroup memory. Each load of a lane touches 64 consecutive floats (coalesced).
//
// Bindings: 0 uniform Params, 1 partial (read), 2 bias (read; a dummy when hasBias = 0),
//           3 out (read_write).
// Launch: WG threads (a multiple of 64); ceil(size / 64) workgroups folded into x/y by grid1d
//         (workgroup index = wid.x + wid.y * nwg.x).

struct Params {
  size: u32,
  splits: u32,
  hasBias: u32,
  inner: u32,     // outputs per bias value in a row (OH*OW); 1 when hasBias = 0
  channels: u32,  // bias values (O); 1 when hasBias = 0
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

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
    if (P.hasBias != 0u) {
      total += bias[(i / P.inner) % P.channels];
    }
    out[i] = total;
  }
}
