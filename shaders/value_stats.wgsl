// value_stats: statistics of a float array, in two stages (STAGE override):
//   STAGE 0: for each workgroup w < G, over x[i], i in [w*chunk, min(n, (w+1)*chunk)):
//            min and max and sum of the finite values, count of NaN, count of +-Inf
//   STAGE 1: the same combination over n partial records (in[5*i .. 5*i+4]), i in [0, n) (one workgroup,
//            chunk = n).
// Record written at out[5*w ..]: isFinal = 0 -> partial record [min f32, max f32, sum f32, nanCount u32,
// infCount u32] (counts as raw u32 bits); isFinal = 1 -> the result as 5 f32:
//   [min, max, sum, nanCount, infCount]  (min = +Inf, max = -Inf, sum = 0 when no value is finite;
//   counts exact up to 2^24).
// NaN / Inf are recognised from the bit pattern (exponent all ones; mantissa != 0 -> NaN, == 0 -> Inf),
// never by float comparisons, which fast-math compilers may fold away.
// Each thread combines i = start + t, + WG, ... serially, then the WG records are combined as a tree
// in workgroup memory (sum pairwise).
//
// Bindings (both read as raw u32 words):
//   0  uniform Params { n: u32, chunk: u32, G: u32, isFinal: u32 }
//   1  src: array<u32>   (read: x as f32 bits in STAGE 0, partial records in STAGE 1)
//   2  out: array<u32>   (read_write: 5 words per workgroup)
// Launch: G workgroups of WG threads (folded into y beyond 65535 as grid1d does);
//         w = wid.x + wid.y * num_workgroups.x. Workgroup memory: 5 * WG words (5 KiB at WG = 256).

override WG: u32 = 256u;
override STAGE: u32 = 0u;

struct Params {
  n: u32,
  chunk: u32,
  G: u32,
  isFinal: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> smin: array<f32, WG>;
var<workgroup> smax: array<f32, WG>;
var<workgroup> ssum: array<f32, WG>;
var<workgroup> snan: array<u32, WG>;
var<workgroup> sinf: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  if (w >= params.G) {
    return;
  }
  // +Inf built at run time (an infinite const-expression is a shader-creation error).
  let inf = bitcast<f32>(0x7f800000u | (params.n & 0u));
  var mn = inf;
  var mx = -inf;
  var sm = 0.0;
  var cn = 0u;
  var ci = 0u;
  let start = w * params.chunk;
  let end = min(params.n, start + params.chunk);
  for (var i = start + t; i < end; i += WG) {
    if (STAGE == 0u) {
      let bits = src[i];
      if ((bits & 0x7f800000u) == 0x7f800000u) {
        if ((bits & 0x007fffffu) != 0u) {
          cn += 1u;
        } else {
          ci += 1u;
        }
      } else {
        let v = bitcast<f32>(bits);
        mn = min(mn, v);
        mx = max(mx, v);
        sm += v;
      }
    } else {
      mn = min(mn, bitcast<f32>(src[5u * i]));
      mx = max(mx, bitcast<f32>(src[5u * i + 1u]));
      sm += bitcast<f32>(src[5u * i + 2u]);
      cn += src[5u * i + 3u];
      ci += src[5u * i + 4u];
    }
  }
  smin[t] = mn;
  smax[t] = mx;
  ssum[t] = sm;
  snan[t] = cn;
  sinf[t] = ci;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    if (t < stride) {
      smin[t] = min(smin[t], smin[t + stride]);
      smax[t] = max(smax[t], smax[t + stride]);
      ssum[t] += ssum[t + stride];
      snan[t] += snan[t + stride];
      sinf[t] += sinf[t + stride];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    let o = 5u * w;
    out[o] = bitcast<u32>(smin[0]);
    out[o + 1u] = bitcast<u32>(smax[0]);
    out[o + 2u] = bitcast<u32>(ssum[0]);
    if (params.isFinal != 0u) {
      out[o + 3u] = bitcast<u32>(f32(snan[0]));
      out[o + 4u] = bitcast<u32>(f32(sinf[0]));
    } else {
      out[o + 3u] = snan[0];
      out[o + 4u] = sinf[0];
    }
  }
}
