// conv2d_grad_input: the input gradient of conv2d (= the transposed convolution of dy with w),
// as an implicit GEMM, one "phase" of the stride at a time.
//
//   dx[b,c,iy,ix] = sum_{o,ky,kx} w[o,c,ky,kx] * dy[b, o, oy, ox]
//     over oy = (iy + PT - ky) / SH, ox = (ix + PL - kx) / SW where the divisions are exact
//     and 0 <= oy < OH, 0 <= ox < OW (other terms are 0; dx rows no window touches are 0).
//
// Phases: with a stride, only the ky with ky = (iy + PT) mod SH (mod SH) reach a given iy. So dx is
// split by (ry, rx) = ((iy + PT) mod SH, (ix + PL) mod SW), workgroup z = ry * SW + rx. Inside a phase
//   iy = iyFirst + SH*j   (j < Hp),    ky = ry + SH*t   (t < KHp),    oy = j + qy0 - t
// where iyFirst is the first iy >= 0 of the phase, qy0 = (iyFirst + PT - ry) / SH (exact), and the
// same along x. That is a plain stride-1 correlation, with no wasted multiply-adds:
//   C[m][n] = sum_k A[m][k] * B[k][n],  m = c (M = C),  n = (b, j, i) (N = batch*Hp*Wp),
//   k = (o, t, u) (K = O*KHp*KWp),
//   A[m][k] = w[o, c, ry + SH*t, rx + SW*u],   B[k][n] = dy[b, o, j + qy0 - t, i + qx0 - u] (0 outside),
//   dx[b, c, iyFirst + SH*j, ixFirst + SW*i] = C[m][n].
// A phase with KHp = 0 or KWp = 0 (stride larger than the kernel) has K = 0 and writes zeros, so
// every element of dx is written.
//
// Tiling (the same scheme as conv2d.wgsl): BM x BN tiles of C, BK deep; each thread accumulates
// TM x TN outputs: rows m0 + ty*TM + r, columns n0 + tx + j*(BN/TN). Both A and B rows walk K by a
// mixed-radix addition (no integer division in the loop).
//
// Split-K (as in conv2d.wgsl): with few tiles, each phase's K may be split into chunks of kChunk (a
// multiple of BK); split s sums k in [s*kChunk, min(K, (s+1)*kChunk)) and writes its partial dx to
// dx[s * batch*C*H*W + ...] (dx is then a scratch buffer of splits x dx; every element is written,
// zeros for an empty chunk), which split_k_reduce.wgsl sums over s. With one chunk, dx is dx.
//
// Bindings: 0 uniform Params, 1 dy (read), 2 w (read), 3 dx (read_write).
// Launch: WG = (BM / TM) * (BN / TN) threads; workgroups (x, y, SH*SW*splits): z = phase + SH*SW*s
//         (phase = ry * SW + rx, s the K chunk), in dispatches of at most 65535 layers from P.zBase
//         (z = wid.z + zBase); in a phase, tile = wid.x + wid.y * nwg.x =
//         mt + tilesM * nt (x/y folded by grid1d over the largest phase); workgroups past the phase's
//         last tile return at once.
// Constraints (checked on the host): as in conv2d.wgsl.

struct Params {
  batch: u32,
  inChannels: u32,
  inHeight: u32,
  inWidth: u32,
  outChannels: u32,
  kernelH: u32,
  kernelW: u32,
  outHeight: u32,
  outWidth: u32,
  strideH: u32,
  strideW: u32,
  padTop: i32,
  padLeft: i32,
  tilesM: u32,  // ceil(C / BM)
  kChunk: u32,  // K per split (a multiple of BK)
  bk: u32,      // BK, A_SLOTS and B_SLOTS again, read at run time (see ROLLED)
  aSlots: u32,
  bSlots: u32,
  zBase: u32,   // the first z layer of this dispatch (a grid has at most 65535; more layers take several dispatches)
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;
override TM: u32 = 4u;
override TN: u32 = 4u;
override WG: u32 = 256u;  // threads = (BM / TM) * (BN / TN)
// ROLLED: the tile loops run to P.bk, P.aSlots and P.bSlots (the values of BK, A_SLOTS and B_SLOTS,
// read at run time), so the shader compiler keeps them rolled. Set on CPU-emulated adapters
// (lavapipe), which take seconds to compile the fully unrolled kernel; a GPU gets the constants.
override ROLLED: bool = false;
// PREFETCH: load the next step's tiles (global memory -> registers) before multiplying the current step's, so the
// loads are in flight during the multiply-adds, at the cost of one register per loaded value (see the main loop).
override PREFETCH: bool = false;
// vec4 slots of the A and B tiles each thread loads per step (at most MAX_SLOTS = 4).
override A_SLOTS: u32 = (BK * BM / 4u + WG - 1u) / WG;
override B_SLOTS: u32 = (BK * BN / 4u + WG - 1u) / WG;

const MAX_TM: u32 = 8u;
const MAX_TN: u32 = 8u;
const MAX_SLOTS: u32 = 4u;
const FAR: i32 = -1073741824;

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>;  // Bs[k * BN/4 + s][q] = B[k0 + k][n0 + bCol(s, q)]

// The column (from n0) of component q of B-tile slot s: slot h*(BN/TN) + t holds the columns t + (4h + q)*(BN/TN)
// of the thread with tx = t (for TN = 4, the columns s + q*BN/4).
fn bCol(s: u32, q: u32) -> u32 {
  return s % (BN / TN) + (4u * (s / (BN / TN)) + q) * (BN / TN);
}

// One axis of a phase: first input coordinate, count of them, qy0, and the kernel taps it uses.
struct Axis {
  first: u32,  // iyFirst
  count: u32,  // Hp
  q0: i32,     // qy0
  taps: u32,   // KHp
}

fn phaseAxis(r: u32, stride: u32, pad: i32, size: u32, kernel: u32) -> Axis {
  let s = i32(stride);
  let first = u32((((i32(r) - pad) % s) + s) % s);
  var a: Axis;
  a.first = first;
  a.count = select(0u, (size - first + stride - 1u) / stride, first < size);
  a.q0 = (i32(first) + pad - i32(r)) / s;
  a.taps = select(0u, (kernel - r + stride - 1u) / stride, r < kernel);
  return a;
}

// A position along K = (o, t, u) and the offset it maps to in one operand.
struct KPos {
  t: u32,
  u: u32,
  off: i32,
}

// How K walks through one operand: offset strides of o, t, u, and the step BK = (do, dt, du).
struct KWalk {
  sO: i32,
  sT: i32,
  sU: i32,
  dt: u32,
  du: u32,
  dOff: i32,
}

fn kWalk(taps: u32, tapsX: u32, sO: i32, sT: i32, sU: i32) -> KWalk {
  let du = BK % tapsX;
  let dt = (BK / tapsX) % taps;
  let dO = BK / (tapsX * taps);
  return KWalk(sO, sT, sU, dt, du, i32(dO) * sO + i32(dt) * sT + i32(du) * sU);
}

fn kAt(k: u32, taps: u32, tapsX: u32, wk: KWalk) -> KPos {
  let u = k % tapsX;
  let r = k / tapsX;
  let t = r % taps;
  let o = r / taps;
  return KPos(t, u, i32(o) * wk.sO + i32(t) * wk.sT + i32(u) * wk.sU);
}

fn kAdvance(p: KPos, taps: u32, tapsX: u32, wk: KWalk) -> KPos {
  var q = KPos(p.t + wk.dt, p.u + wk.du, p.off + wk.dOff);
  if (q.u >= tapsX) {
    q.u -= tapsX;
    q.t += 1u;
    q.off += wk.sT - i32(tapsX) * wk.sU;
  }
  if (q.t >= taps) {
    q.t -= taps;
    q.off += wk.sO - i32(taps) * wk.sT;
  }
  return q;
}

// Stores a step's tiles from registers (aReg, bReg) into workgroup memory: A slot j at As[ka * BM/4 + ma] with
// ma = tid/BK + j*WG/BK, B slot j at Bs[row * BN/4 + bs], for the rows the thread loaded (see the main loop).
fn storeTiles(tid: u32, ka: u32, bs: u32, aSlots: u32, bSlots: u32,
              aReg: ptr<function, array<vec4<f32>, MAX_SLOTS>>, bReg: ptr<function, array<vec4<f32>, MAX_SLOTS>>) {
  for (var j = 0u; j < aSlots; j++) {
    let ma = tid / BK + j * (WG / BK);
    if (ma < BM / 4u) {
      As[ka * (BM / 4u) + ma] = (*aReg)[j];
    }
  }
  for (var j = 0u; j < bSlots; j++) {
    let row = tid / (BN / 4u) + j * (WG / (BN / 4u));
    if (row < BK) {
      Bs[row * (BN / 4u) + bs] = (*bReg)[j];
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let phases = P.strideH * P.strideW;
  let z = wid.z + P.zBase;
  let phase = z % phases;
  let split = z / phases;
  let ry = phase / P.strideW;
  let rx = phase % P.strideW;
  let ay = phaseAxis(ry, P.strideH, P.padTop, P.inHeight, P.kernelH);
  let ax = phaseAxis(rx, P.strideW, P.padLeft, P.inWidth, P.kernelW);
  let HWp = ay.count * ax.count;
  let M = P.inChannels;
  let N = P.batch * HWp;
  let K = P.outChannels * ay.taps * ax.taps;
  let kBegin = split * P.kChunk;
  let kEnd = min(K, kBegin + P.kChunk);
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= P.tilesM * ((N + BN - 1u) / BN)) {
    return;
  }
  let m0 = (tile % P.tilesM) * BM;
  let n0 = (tile / P.tilesM) * BN;

  let H = P.inHeight;
  let W = P.inWidth;
  let OH = P.outHeight;
  let OW = P.outWidth;
  let OHW = OH * OW;
  let KHW = P.kernelH * P.kernelW;
  // Digit ranges of k = (o, t, u); at least 1 so the decompositions never divide by 0 (K = 0 then anyway).
  let taps = max(ay.taps, 1u);
  let tapsX = max(ax.taps, 1u);

  let tx = tid % (BN / TN);  // this thread's columns: n0 + tx + j * BN/TN
  let ty = tid / (BN / TN);  // this thread's rows:    m0 + ty * TM + r
  // The A-tile row this thread loads, k0 + ka, in vec4 slots of 4 rows m (slot j: m0 + 4*ma .. +3, ma = tid/BK +
  // j*WG/BK): consecutive threads read consecutive k = (o, t, u) of the same rows, SW apart in w (u steps SW).
  let ka = tid % BK;
  let bs = tid % (BN / 4u);  // the B-tile vec4 slot this thread loads (columns n0 + bCol(bs, q))
  // Trip counts of the tile loops (see ROLLED).
  let kSteps = select(BK, P.bk, ROLLED);
  let aSlots = select(A_SLOTS, P.aSlots, ROLLED);
  let bSlots = select(B_SLOTS, P.bSlots, ROLLED);

  // The 4 columns n = (b, j, i) of the thread's B slot: dy coordinates before the taps (oy = colY - t) and the
  // matching offset in dy, b*O*OHW + colY*OW + colX. Columns past N fail every check.
  var colY: array<i32, 4>;
  var colX: array<i32, 4>;
  var colOff: array<i32, 4>;
  for (var q = 0u; q < 4u; q++) {
    let n = n0 + bCol(bs, q);
    colY[q] = FAR;
    colX[q] = FAR;
    colOff[q] = 0;
    if (n < N) {
      let b = n / HWp;
      let p = n - b * HWp;
      let j = p / ax.count;
      let i = p - j * ax.count;
      colY[q] = i32(j) + ay.q0;
      colX[q] = i32(i) + ax.q0;
      colOff[q] = i32(b * P.outChannels * OHW) + colY[q] * i32(OW) + colX[q];
    }
  }

  // K walks: in w, o steps C*KH*KW, t steps SH*KW, u steps SW; in dy, o steps OH*OW, t steps -OW, u steps -1.
  let aWalk = kWalk(taps, tapsX, i32(M * KHW), i32(P.strideH * P.kernelW), i32(P.strideW));
  let bWalk = kWalk(taps, tapsX, i32(OHW), -i32(OW), -1);
  var aPos = kAt(kBegin + ka, taps, tapsX, aWalk);
  var bPos: array<KPos, MAX_SLOTS>;
  for (var j = 0u; j < bSlots; j++) {
    bPos[j] = kAt(kBegin + tid / (BN / 4u) + j * (WG / (BN / 4u)), taps, tapsX, bWalk);
  }

  // acc[h * MAX_TM + r][q] = C[row m0 + ty*TM + r][column n0 + tx + (4h + q)*(BN/TN)].
  var acc: array<vec4<f32>, MAX_TM * MAX_TN / 4u>;
  for (var r = 0u; r < MAX_TM * MAX_TN / 4u; r++) {
    acc[r] = vec4<f32>(0.0);
  }

  // Without PREFETCH, iteration it loads step it's tiles into workgroup memory and multiplies them. With it, the
  // tiles are loaded into registers (aReg, bReg) instead, and iteration it stores step it-1's (storeTiles), loads
  // step it's, and multiplies step it-1's, so the loads of step it are in flight during that multiply.
  var aReg: array<vec4<f32>, MAX_SLOTS>;
  var bReg: array<vec4<f32>, MAX_SLOTS>;
  let steps = (max(kEnd, kBegin) - kBegin + BK - 1u) / BK;
  let iterations = select(steps, steps + 1u, PREFETCH && steps > 0u);
  for (var it = 0u; it < iterations; it++) {
    if (PREFETCH && it > 0u) {
      storeTiles(tid, ka, bs, aSlots, bSlots, &aReg, &bReg);
      workgroupBarrier();
    }
    if (it < steps) {
      let k0 = kBegin + it * BK;
      // A tile: slot j holds w[o, c = m, ry + SH*t, rx + SW*u] for k0 + ka = (o, t, u) and rows m0 + 4*ma .. +3
      // (c*KH*KW + the phase's first tap + aPos.off; 0 past M or the chunk).
      let kOk = k0 + ka < kEnd;
      for (var j = 0u; j < aSlots; j++) {
        let ma = tid / BK + j * (WG / BK);
        if (ma < BM / 4u) {
          var v = vec4<f32>(0.0);
          for (var q = 0u; q < 4u; q++) {
            let m = m0 + 4u * ma + q;
            let ok = kOk && m < M;
            v[q] = select(0.0, w[select(0u, u32(i32(m * KHW + ry * P.kernelW + rx) + aPos.off), ok)], ok);
          }
          if (PREFETCH) {
            aReg[j] = v;
          } else {
            As[ka * (BM / 4u) + ma] = v;
          }
        }
      }
      aPos = kAdvance(aPos, taps, tapsX, aWalk);
      // B tile: dy[b, o, colY - t, colX - u] for the 4 columns of slot bs (0 outside dy).
      for (var j = 0u; j < bSlots; j++) {
        let row = tid / (BN / 4u) + j * (WG / (BN / 4u));
        if (row < BK) {
          let kp = bPos[j];
          let kOk = k0 + row < kEnd;
          var v = vec4<f32>(0.0);
          for (var q = 0u; q < 4u; q++) {
            let oy = colY[q] - i32(kp.t);
            let ox = colX[q] - i32(kp.u);
            let ok = kOk && u32(oy) < OH && u32(ox) < OW;
            v[q] = select(0.0, dy[select(0u, u32(colOff[q] + kp.off), ok)], ok);
          }
          if (PREFETCH) {
            bReg[j] = v;
          } else {
            Bs[row * (BN / 4u) + bs] = v;
          }
          bPos[j] = kAdvance(kp, taps, tapsX, bWalk);
        }
      }
    }
    if (!PREFETCH) {
      workgroupBarrier();
    }
    if (!PREFETCH || it > 0u) {
      for (var kk = 0u; kk < kSteps; kk++) {
        var bv: array<vec4<f32>, MAX_TN / 4u>;
        for (var h = 0u; h < TN / 4u; h++) {
          bv[h] = Bs[kk * (BN / 4u) + h * (BN / TN) + tx];
        }
        for (var i = 0u; i < TM / 4u; i++) {
          let a = As[kk * (BM / 4u) + ty * (TM / 4u) + i];
          for (var h = 0u; h < TN / 4u; h++) {
            let r = h * MAX_TM + 4u * i;
            acc[r + 0u] = fma(vec4<f32>(a.x), bv[h], acc[r + 0u]);
            acc[r + 1u] = fma(vec4<f32>(a.y), bv[h], acc[r + 1u]);
            acc[r + 2u] = fma(vec4<f32>(a.z), bv[h], acc[r + 2u]);
            acc[r + 3u] = fma(vec4<f32>(a.w), bv[h], acc[r + 3u]);
          }
        }
      }
      workgroupBarrier();
    }
  }

  // dx[b, m, iyFirst + SH*j, ixFirst + SW*i] = acc (in split s's part of the scratch: s*batch*C*H*W further).
  let splitBase = split * P.batch * M * H * W;
  for (var col = 0u; col < TN; col++) {
    let n = n0 + tx + col * (BN / TN);
    if (n < N) {
      let b = n / HWp;
      let p = n - b * HWp;
      let j = p / ax.count;
      let i = p - j * ax.count;
      let base = splitBase + b * M * H * W + (ay.first + P.strideH * j) * W + ax.first + P.strideW * i;
      for (var r = 0u; r < TM; r++) {
        let m = m0 + ty * TM + r;
        if (m < M) {
          dx[base + m * H * W] = acc[(col / 4u) * MAX_TM + r][col % 4u];
        }
      }
    }
  }
}
