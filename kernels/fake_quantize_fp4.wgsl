// fake_quantize_fp4: y = (fp4(clamp(x / s_eff + zp, ±6)) − zp) · s_eff for FP4 E2M1 (NVFP4, MXFP4)
// (s_eff = scale / global_scale for NVFP4; MXFP4 scales arrive as their
// power-of-two values).
//
// Bindings, layout and exactness: fake_quantize_elementwise.wgsl, which
// holds the element loop all fake-quantize kernels share; this file only
// says how a clamped value is rounded onto the FP4 grid.

// cast_fp4 (quantize_common.wgsl):
//! include "quantize_common.wgsl"

fn quantize_code(t: f32) -> f32 {
  return cast_fp4(t);
}

//! include "fake_quantize_elementwise.wgsl"
