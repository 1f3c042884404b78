// fake_quantize_fp8: y = (fp8(clamp(x / s + zp, ±448)) − zp) · s for float8_e4m3fn
// (fp8() is cast_fp8: RNE on the float32 bit pattern; the global scale
// fields are unused).
//
// Bindings, layout and exactness: fake_quantize_elementwise.wgsl, which
// holds the element loop all fake-quantize kernels share; this file only
// says how a clamped value is rounded onto the float8 grid.

// cast_fp8 (quantize_common.wgsl):
//! include "quantize_common.wgsl"

fn quantize_code(t: f32) -> f32 {
  return cast_fp8(t);
}

//! include "fake_quantize_elementwise.wgsl"
