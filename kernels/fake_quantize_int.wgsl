// fake_quantize_int: y = (round(clamp(x / s + zp, q_min, q_max)) − zp) · s for N-bit integers
//
// Bindings (group 0):
//   0  x           storage read        f32[rows·cols]   the tensor, row-major
//   1  scale       storage read        f32[slots]       one scale per qparam slot
//   2  zero_point  storage read        f32[slots]       used only when p.has_zp
//   3  row_slot    storage read        u32[rows]        slot offset of each row
//   4  col_slot    storage read        u32[cols]        slot offset of each column
//   5  y           storage read_write  f32[rows·cols]   fake-quantized output
//   6  p           uniform  { n, cols, has_zp, has_global: u32; q_min, q_max, global_scale: f32; pad }
//
// Element (r, c) uses slot row_slot[r] + col_slot[c], which covers the tensor,
// channel, token, group / tensor_group (g_idx included) and block strategies.
//
// q_min = −2^(N−1), q_max = 2^(N−1) − 1; the global scale fields are unused.
//
// Workgroup layout: 256 invocations in x, one element each; a 1-D count of
// ceil(n / 256) workgroups, folded into 2-D by the host when it exceeds
// maxComputeWorkgroupsPerDimension (linear index wid.x + wid.y * nwg.x).
//
// Bit-exact with src/quant/quantize.ts (float32): x / s is divided with
// correct rounding (div_rn below), every other op is a single correctly
// rounded f32 op, and the clamp lets NaN through as the reference does.

struct Params {
  n: u32,
  cols: u32,
  has_zp: u32,
  has_global: u32,
  q_min: f32,
  q_max: f32,
  global_scale: f32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> zero_point: array<f32>;
@group(0) @binding(3) var<storage, read> row_slot: array<u32>;
@group(0) @binding(4) var<storage, read> col_slot: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// Correctly rounded f32 division (round to nearest, ties to even). WGSL only
// promises 2.5 ULP for `/`, and the reference (PyTorch) divides exactly, so
// the quotient is computed by integer long division on the mantissas: 25
// quotient bits (24 + guard) and a sticky bit from the remainder.
fn div_rn(a: f32, b: f32) -> f32 {
  let ua = bitcast<u32>(a);
  let ub = bitcast<u32>(b);
  var ea = i32((ua >> 23u) & 0xffu);
  var eb = i32((ub >> 23u) & 0xffu);
  var ma = ua & 0x7fffffu;
  var mb = ub & 0x7fffffu;
  // Zeros, infinities and NaNs are exact in hardware division.
  if (ea == 255 || eb == 255 || (ea == 0 && ma == 0u) || (eb == 0 && mb == 0u)) {
    return a / b;
  }
  let sign = (ua ^ ub) & 0x80000000u;
  if (ea == 0) {
    ea = 1;
    while ((ma & 0x800000u) == 0u) {
      ma = ma << 1u;
      ea = ea - 1;
    }
  } else {
    ma = ma | 0x800000u;
  }
  if (eb == 0) {
    eb = 1;
    while ((mb & 0x800000u) == 0u) {
      mb = mb << 1u;
      eb = eb - 1;
    }
  } else {
    mb = mb | 0x800000u;
  }
  var e = ea - eb + 127;
  if (ma < mb) {
    ma = ma << 1u;
    e = e - 1;
  }
  var q = 0u;
  var r = ma;
  for (var i = 0; i < 25; i = i + 1) {
    q = q << 1u;
    if (r >= mb) {
      r = r - mb;
      q = q | 1u;
    }
    r = r << 1u;
  }
  var sticky = r != 0u;
  if (e <= 0) {
    // Subnormal quotient: shift the extra bits into sticky before rounding.
    let shift = u32(1 - e);
    if (shift >= 26u) {
      sticky = sticky || q != 0u;
      q = 0u;
    } else {
      sticky = sticky || (q & ((1u << shift) - 1u)) != 0u;
      q = q >> shift;
    }
    e = 0;
  }
  var mant = q >> 1u;
  if ((q & 1u) != 0u && (sticky || (mant & 1u) != 0u)) {
    mant = mant + 1u;
  }
  if (e == 0) {
    // A subnormal that rounds up to 2^23 becomes the smallest normal by itself.
    return bitcast<f32>(sign | mant);
  }
  if (mant == 0x1000000u) {
    mant = 0x800000u;
    e = e + 1;
  }
  if (e >= 255) {
    return bitcast<f32>(sign | 0x7f800000u);
  }
  return bitcast<f32>(sign | (u32(e) << 23u) | (mant & 0x7fffffu));
}

// clamp that keeps NaN, like the reference's `t < lo ? lo : t > hi ? hi : t`.
fn clamp_keep_nan(t: f32, lo: f32, hi: f32) -> f32 {
  if (t < lo) {
    return lo;
  }
  if (t > hi) {
    return hi;
  }
  return t;
}

@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (i >= p.n) {
    return;
  }
  let r = i / p.cols;
  let c = i - r * p.cols;
  let slot = row_slot[r] + col_slot[c];
  let s = scale[slot];
  var t = div_rn(x[i], s);
  if (p.has_zp != 0u) {
    t = t + zero_point[slot];
  }
  // WGSL's round() rounds half to even, as torch.round does.
  let q = round(clamp_keep_nan(t, p.q_min, p.q_max));
  var v = q;
  if (p.has_zp != 0u) {
    v = q - zero_point[slot];
  }
  y[i] = v * s;
}
