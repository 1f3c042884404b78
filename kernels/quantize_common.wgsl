// quantize_common: the scalar math of fake quantization, shared by
// fake_quantize_elementwise.wgsl (the fake_quantize_* kernels) and
// gptq_column_block.wgsl through the kernel loader's include directive:
//
//   //! include "quantize_common.wgsl"
//
// A function library, not a kernel: no bindings, no entry point, nothing
// but functions of their arguments, so it cannot clash with an includer's
// bindings or uniforms. src/gpu/kernel.ts splices it in once per module.
//
//   div_rn(a, b)               a / b correctly rounded (RNE), as PyTorch divides
//   clamp_keep_nan(t, lo, hi)  clamp that lets NaN through, as the reference does
//   e4m3_bits(v)               float8_e4m3fn bits of a float32 (RNE)
//   e4m3_value(b)              the float32 value of finite float8_e4m3fn bits
//   cast_fp8(t)                float8_e4m3fn rounding of a value clamped to ±448
//   cast_fp4(t)                compressed-tensors' cast_to_fp4 (FP4 E2M1 grid)
//
// Each is bit-exact with src/quant/quantize.ts (float32); WGSL's round()
// (half to even, as torch.round) is the integer rounding and needs no helper.

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

// float8_e4m3fn bits of a float32 (c10's fp8e4m3fn_from_fp32_value): RNE,
// |x| >= 480 gives NaN (the caller clamps to ±448 first). The subnormal range
// is rounded on the integer mantissa instead of c10's float-add trick, which
// gives the same RNE result without depending on subnormal float support.
fn e4m3_bits(v: f32) -> u32 {
  let w = bitcast<u32>(v);
  let sign = (w >> 24u) & 0x80u;
  let f = w & 0x7fffffffu;
  var res = 0u;
  if (f >= (1087u << 20u)) {
    res = 0x7fu;
  } else if (f < (121u << 23u)) {
    // |v| < 2^-6: the code is RNE(|v| · 2^9), a count of the smallest subnormal.
    let e = f >> 23u;
    var m = f & 0x7fffffu;
    var shift = 140u;
    if (e != 0u) {
      m = m | 0x800000u;
      shift = 141u - e;
    }
    if (shift < 25u) {
      let q = m >> shift;
      let rem = m & ((1u << shift) - 1u);
      let half = 1u << (shift - 1u);
      res = q;
      if (rem > half || (rem == half && (q & 1u) == 1u)) {
        res = q + 1u;
      }
    }
  } else {
    let mant_odd = (f >> 20u) & 1u;
    res = ((f - (120u << 23u) + 0x7ffffu + mant_odd) >> 20u) & 0xffu;
  }
  return res | sign;
}

// The float32 value of float8_e4m3fn bits (finite codes).
fn e4m3_value(b: u32) -> f32 {
  let e = (b >> 3u) & 0xfu;
  let m = b & 7u;
  var mag = 0.0;
  if (e == 0u) {
    mag = f32(m) * 0.001953125;
  } else {
    mag = bitcast<f32>(((e + 120u) << 23u) | (m << 20u));
  }
  if ((b & 0x80u) != 0u) {
    return bitcast<f32>(bitcast<u32>(mag) | 0x80000000u);
  }
  return mag;
}

// float8_e4m3fn rounding (RNE) of a value the caller clamped to ±448, as a
// float32; NaN stays NaN, as in the reference.
fn cast_fp8(t: f32) -> f32 {
  if (t != t) {
    return t;
  }
  return e4m3_value(e4m3_bits(t));
}

// compressed-tensors' cast_to_fp4: the E2M1 grid by threshold (round half to
// even, saturating at 6), times sign(t); sign(-0) is 0 so -0 gives +0, while a
// negative value that rounds to 0 gives -0.
fn cast_fp4(t: f32) -> f32 {
  if (t != t) {
    return t;
  }
  let a = abs(t);
  var m = 6.0;
  if (a <= 0.25) {
    m = 0.0;
  } else if (a < 0.75) {
    m = 0.5;
  } else if (a <= 1.25) {
    m = 1.0;
  } else if (a < 1.75) {
    m = 1.5;
  } else if (a <= 2.5) {
    m = 2.0;
  } else if (a < 3.5) {
    m = 3.0;
  } else if (a <= 5.0) {
    m = 4.0;
  }
  if (t < 0.0) {
    return bitcast<f32>(bitcast<u32>(m) | 0x80000000u);
  }
  return m;
}
