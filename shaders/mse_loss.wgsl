// mse_loss (first pass): partials[w] = scale * sum_{i in [w*chunk, min(n, (w+1)*chunk))} (a[i] - b[i])^2
// for each workgroup w < G = ceil(n / chunk). The host runs it with scale = 1/n and G = 1 (then
// partials is the 1-float output: mean((a-b)^2)), or with scale = 1 and then reduce_sum over the G
// partials with scale 1/n. Inside a workgroup, thread t sums i = w*chunk + t, + WG, ... serially
// (chunk / WG terms), then the WG sums are added as a binary tree in workgroup memory.
//
// Bindings:
//   0  uniform Params { n: u32, chunk: u32, G: u32, scale: f32 }
//   1  a:        array<f32>   (read)
//   2  b:        array<f32>   (read)
//   3  partials: array<f32>   (read_write, G floats)
// Launch: G workgroups of WG threads (folded into y beyond 65535 as grid1d does);
//         w = wid.x + wid.y * num_workgroups.x. Workgroup memory: WG floats.

override WG: u32 = 256u;

struct Params {
  n: u32,
  chunk: u32,
  G: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= params.G) {
    return;
  }
  let start = w * params.chunk;
  let end = min(params.n, start + params.chunk);
  var acc = 0.0;
  for (var i = start + t; i < end; i += WG) {
    let d = a[i] - b[i];
    acc += d * d;
  }
  sums[t] = acc;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    if (t < stride) {
      sums[t] += sums[t + stride];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    partials[w] = params.scale * sums[0];
  }
}
