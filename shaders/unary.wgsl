// unary: out[i] = f_OP(x[i], p) for i < n, with OP (an override constant) selecting f:
//   0 neg: -x            1 exp: e^x            2 log: ln x           3 sqrt: sqrt x
//   4 square: x*x        5 relu: x<=0 ? 0 : x  6 sigmoid: 1/(1+e^-x) 7 tanh: tanh x
//   8 leakyRelu: x>0 ? x : p*x                 9 addScalar: x+p      10 mulScalar: x*p
//   11 rsubScalar: p-x   12 rdivScalar: p/x    13 powScalar: x^p (Math.pow semantics: negative x with an
//   integer p gives the signed real power, negative finite x with a non-integer p gives NaN, -Inf with
//   one gives +Inf (p > 0) or +0 (p < 0), x^0 = 1)                   14 divScalar: x/p
// tanh and sigmoid are evaluated from exp(-|x|) so they never overflow for large |x|.
// Where WGSL leaves a builtin undefined (log of x <= 0 or NaN, sqrt of x < 0, exp of NaN, also inside tanh and
// sigmoid; SwiftShader gives finite values there), the result is set to what Math.log / Math.sqrt / Math.exp give, so both backends agree
// and the NaN guard sees the NaN.
//
// Bindings:
//   0  uniform Params { n: u32, p: f32 }
//   1  x:   array<f32>   (read)
//   2  out: array<f32>   (read_write)
// Launch: grid1d(n, WG) workgroups of WG threads, one thread per element;
//         i = gid.x + gid.y * num_workgroups.x * WG.

override WG: u32 = 256u;
override OP: u32 = 0u;

struct Params {
  n: u32,
  p: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// A quiet NaN built at run time (a NaN const-expression is a shader-creation error in WGSL).
fn nanValue() -> f32 {
  return bitcast<f32>(0x7fc00000u | (params.n & 0u));
}

// +Infinity built at run time, like nanValue.
fn infValue() -> f32 {
  return bitcast<f32>(0x7f800000u | (params.n & 0u));
}

fn logJs(v: f32) -> f32 {
  if (isNanBits(v) || v < 0.0) {
    return nanValue();
  }
  if (v == 0.0) {
    return -infValue();
  }
  return log(v);
}

fn sqrtJs(v: f32) -> f32 {
  if (isNanBits(v) || v < 0.0) {
    return nanValue();
  }
  return sqrt(v);
}

fn expJs(v: f32) -> f32 {
  if (isNanBits(v)) {
    return v;
  }
  return exp(v);
}

fn isNanBits(v: f32) -> bool {
  let b = bitcast<u32>(v);
  return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

fn powScalar(v: f32, p: f32) -> f32 {
  if (p == 0.0) {
    return 1.0;
  }
  if (p == 1.0) {
    return v;
  }
  if (p == 2.0) {
    return v * v;
  }
  if (isNanBits(v) || isNanBits(p)) {
    return nanValue();
  }
  let a = abs(v);
  let infinite = bitcast<u32>(a) == 0x7f800000u;
  if (p == 0.5) {
    if (v < 0.0) {
      return select(nanValue(), a, infinite);
    }
    return sqrt(v);
  }
  var r: f32;
  if (a == 0.0) {
    // 0^p: 0 for p > 0, +Inf for p < 0.
    r = select(0.0, 1.0 / a, p < 0.0);
  } else {
    r = exp2(p * log2(a));
  }
  if (v < 0.0 || (v == 0.0 && (bitcast<u32>(v) & 0x80000000u) != 0u)) {
    if (floor(p) != p) {
      return select(r, nanValue(), v < 0.0 && !infinite);
    }
    // Integer exponent: odd powers keep the sign. |p| >= 2^24 is always even in f32.
    let odd = abs(p) < 16777216.0 && (i32(abs(p)) & 1) == 1;
    return select(r, -r, odd);
  }
  return r;
}

fn tanhStable(v: f32) -> f32 {
  // tanh(v) = sign(v) * (1 - e) / (1 + e), e = exp(-2|v|); for small |v| the odd Taylor series
  // keeps relative accuracy where (1 - e) cancels. NaN is returned as it is (exp(NaN) is undefined in WGSL).
  if (isNanBits(v)) {
    return v;
  }
  let a = abs(v);
  var t: f32;
  if (a < 0.0625) {
    let a2 = a * a;
    t = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0))));
  } else {
    let e = exp(-2.0 * a);
    t = (1.0 - e) / (1.0 + e);
  }
  return select(t, -t, v < 0.0);
}

fn sigmoidStable(v: f32) -> f32 {
  if (isNanBits(v)) {
    return v;
  }
  let e = exp(-abs(v));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, v >= 0.0);
}

fn apply(v: f32, p: f32) -> f32 {
  switch (OP) {
    case 0u: { return -v; }
    case 1u: { return expJs(v); }
    case 2u: { return logJs(v); }
    case 3u: { return sqrtJs(v); }
    case 4u: { return v * v; }
    case 5u: { return select(v, 0.0, v <= 0.0); }
    case 6u: { return sigmoidStable(v); }
    case 7u: { return tanhStable(v); }
    case 8u: { return select(p * v, v, v > 0.0); }
    case 9u: { return v + p; }
    case 10u: { return v * p; }
    case 11u: { return p - v; }
    case 12u: { return p / v; }
    case 13u: { return powScalar(v, p); }
    case 14u: { return v / p; }
    default: { return v; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= params.n) {
    return;
  }
  out[i] = apply(x[i], params.p);
}
