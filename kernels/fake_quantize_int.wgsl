// fake_quantize_int: y = (round(clamp(x / s + zp, q_min, q_max)) − zp) · s for N-bit integers
// (q_min = −2^(N−1), q_max = 2^(N−1) − 1; the global scale fields are unused).
//
// Bindings, layout and exactness: fake_quantize_elementwise.wgsl, which
// holds the element loop all fake-quantize kernels share; this file only
// says how a clamped value is rounded onto the integer grid.

// WGSL's round() rounds half to even, as torch.round does.
fn quantize_code(t: f32) -> f32 {
  return round(t);
}

//! include "fake_quantize_elementwise.wgsl"
