// conv2d_grad_weight: the weight gradient of conv2d as an implicit GEMM with split-K.
//
//   dw[o,c,ky,kx] = sum_{b,oy,ox} dy[b,o,oy,ox] * x[b, c, oy*SH - PT + ky, ox*SW - PL + kx]  (x = 0 outside)
//
// As a matrix product C[m][n] = sum_k A[m][k] * B[k][n] with
//   m = o (M = O),   n = (c, ky, kx) (N = C*KH*KW),   k = (b, oy, ox) (K = batch*OH*OW),
//   A[m][k] = dy[b, o, oy, ox],   B[k][n] = x[b, c, oy*SH - PT + ky, ox*SW - PL + kx]  (gathered, 0 outside).
// K is huge and M*N small, so K is split into chunks of kChunk (a multiple of BK): workgroup z = s
// sums k in [s*kChunk, min(K, (s+1)*kChunk)) and writes its partial tile to
//   partial[(s*M + m)*N + n],
// which split_k_reduce.wgsl then sums over s into dw. With one chunk, `partial` is dw itself.
//
// Tiling (the same scheme as conv2d.wgsl): BM x BN tiles of C, BK deep; each thread accumulates
// TM x TN outputs: rows m0 + ty*TM + r, columns n0 + tx + j*(BN/TN). The 4 columns (c, ky, kx) of each
// thread's B-tile slot are decomposed once; the rows (b, oy, ox) of A and B walk K by mixed-radix
// addition (no integer division in the loop).
//
// Bindings: 0 uniform Params, 1 x (read), 2 dy (read), 3 partial (read_write).
// Launch: WG = (BM / TM) * (BN / TN) threads; workgroups (x, y, splits): z is the K chunk;
//         tile = wid.x + wid.y * nwg.x = mt + tilesM * nt (folded by grid1d); workgroups past the
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
  tilesM: u32,   // ceil(M / BM)
  tiles: u32,    // tilesM * ceil(N / BN)
  kChunk: u32,   // K per split (a multiple of BK)
  bk: u32,       // BK, A_SLOTS and B_SLOTS again, read at run time (see ROLLED)
  aSlots: u32,
  bSlots: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

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

// A position along K = (b, oy, ox) and the offset it maps to in one operand.
struct KPos {
  oy: u32,
  ox: u32,
  off: i32,
}

// How K walks through one operand: offset strides of b, oy, ox, and the step BK = (db, doy, dox).
struct KWalk {
  sB: i32,
  sY: i32,
  sX: i32,
  dy: u32,
  dx: u32,
  dOff: i32,
}

fn kWalk(sB: i32, sY: i32, sX: i32) -> KWalk {
  let OW = P.outWidth;
  let OH = P.outHeight;
  let dX = BK % OW;
  let dY = (BK / OW) % OH;
  let dB = BK / (OW * OH);
  return KWalk(sB, sY, sX, dY, dX, i32(dB) * sB + i32(dY) * sY + i32(dX) * sX);
}

fn kAt(k: u32, wk: KWalk) -> KPos {
  let ox = k % P.outWidth;
  let r = k / P.outWidth;
  let oy = r % P.outHeight;
  let b = r / P.outHeight;
  return KPos(oy, ox, i32(b) * wk.sB + i32(oy) * wk.sY + i32(ox) * wk.sX);
}

fn kAdvance(p: KPos, wk: KWalk) -> KPos {
  var q = KPos(p.oy + wk.dy, p.ox + wk.dx, p.off + wk.dOff);
  if (q.ox >= P.outWidth) {
    q.ox -= P.outWidth;
    q.oy += 1u;
    q.off += wk.sY - i32(P.outWidth) * wk.sX;
  }
  if (q.oy >= P.outHeight) {
    q.oy -= P.outHeight;
    q.off += wk.sB - i32(P.outHeight) * wk.sY;
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
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= P.tiles) {
    return;
  }
  let m0 = (tile % P.tilesM) * BM;
  let n0 = (tile / P.tilesM) * BN;

  let H = P.inHeight;
  let W = P.inWidth;
  let OHW = P.outHeight * P.outWidth;
  let KHW = P.kernelH * P.kernelW;
  let M = P.outChannels;
  let N = P.inChannels * KHW;
  let K = P.batch * OHW;
  let kBegin = wid.z * P.kChunk;
  let kEnd = min(K, kBegin + P.kChunk);

  let tx = tid % (BN / TN);  // this thread's columns: n0 + tx + j * BN/TN
  let ty = tid / (BN / TN);  // this thread's rows:    m0 + ty * TM + r
  // The A-tile row this thread loads, k0 + ka, in vec4 slots of 4 rows m (slot j: m0 + 4*ma .. +3, ma = tid/BK +
  // j*WG/BK): consecutive threads read consecutive k of the same rows, which lie side by side in memory (coalesced).
  let ka = tid % BK;
  let bs = tid % (BN / 4u);  // the B-tile vec4 slot this thread loads (columns n0 + bCol(bs, q))
  // Trip counts of the tile loops (see ROLLED).
  let kSteps = select(BK, P.bk, ROLLED);
  let aSlots = select(A_SLOTS, P.aSlots, ROLLED);
  let bSlots = select(B_SLOTS, P.bSlots, ROLLED);

  // The 4 columns n = (c, ky, kx) of the thread's B slot: input coordinate offsets (iy = oy*SH + colY) and the
  // offset c*H*W + colY*W + colX in one image. Columns past N fail every check.
  var colY: array<i32, 4>;
  var colX: array<i32, 4>;
  var colOff: array<i32, 4>;
  for (var q = 0u; q < 4u; q++) {
    let n = n0 + bCol(bs, q);
    colY[q] = FAR;
    colX[q] = FAR;
    colOff[q] = 0;
    if (n < N) {
      let c = n / KHW;
      let r = n - c * KHW;
      let ky = r / P.kernelW;
      let kx = r - ky * P.kernelW;
      colY[q] = i32(ky) - P.padTop;
      colX[q] = i32(kx) - P.padLeft;
      colOff[q] = i32(c * H * W) + colY[q] * i32(W) + colX[q];
    }
  }

  // K walks: in dy, b steps O*OH*OW, oy steps OW, ox steps 1; in x, b steps C*H*W, oy steps SH*W, ox steps SW.
  let aWalk = kWalk(i32(M * OHW), i32(P.outWidth), 1);
  let bWalk = kWalk(i32(P.inChannels * H * W), i32(P.strideH * W), i32(P.strideW));
  var aPos = kAt(kBegin + ka, aWalk);
  var bPos: array<KPos, MAX_SLOTS>;
  for (var j = 0u; j < bSlots; j++) {
    bPos[j] = kAt(kBegin + tid / (BN / 4u) + j * (WG / (BN / 4u)), bWalk);
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
      // A tile: slot j holds dy[b, o = m, oy, ox] for k0 + ka = (b, oy, ox) and rows m0 + 4*ma .. +3 (offset
      // m*OH*OW + aPos.off; 0 past M or the chunk).
      let kOk = k0 + ka < kEnd;
      for (var j = 0u; j < aSlots; j++) {
        let ma = tid / BK + j * (WG / BK);
        if (ma < BM / 4u) {
          var v = vec4<f32>(0.0);
          for (var q = 0u; q < 4u; q++) {
            let m = m0 + 4u * ma + q;
            let ok = kOk && m < M;
            v[q] = select(0.0, dy[select(0u, u32(i32(m * OHW) + aPos.off), ok)], ok);
          }
          if (PREFETCH) {
            aReg[j] = v;
          } else {
            As[ka * (BM / 4u) + ma] = v;
          }
        }
      }
      aPos = kAdvance(aPos, aWalk);
      // B tile: x[b, c, oy*SH + colY, ox*SW + colX] for the 4 columns of slot bs (0 outside x).
      for (var j = 0u; j < bSlots; j++) {
        let row = tid / (BN / 4u) + j * (WG / (BN / 4u));
        if (row < BK) {
          let kp = bPos[j];
          let kOk = k0 + row < kEnd;
          let y0 = i32(kp.oy * P.strideH);
          let x0 = i32(kp.ox * P.strideW);
          var v = vec4<f32>(0.0);
          for (var q = 0u; q < 4u; q++) {
            let ok = kOk && u32(y0 + colY[q]) < H && u32(x0 + colX[q]) < W;
            v[q] = select(0.0, x[select(0u, u32(colOff[q] + kp.off), ok)], ok);
          }
          if (PREFETCH) {
            bReg[j] = v;
          } else {
            Bs[row * (BN / 4u) + bs] = v;
          }
          bPos[j] = kAdvance(kp, bWalk);
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

  // partial[(s*M + m)*N + n] = acc (every tile element, also for an empty chunk: zeros).
  let outBase = wid.z * M * N;
  for (var col = 0u; col < TN; col++) {
    let n = n0 + tx + col * (BN / TN);
    if (n < N) {
      for (var r = 0u; r < TM; r++) {
        let m = m0 + ty * TM + r;
        if (m < M) {
          partial[outBase + m * N + n] = acc[(col / 4u) * MAX_TM + r][col % 4u];
        }
      }
    }
  }
}
