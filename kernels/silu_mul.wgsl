// silu_mul: out = silu(gate) * up, elementwise, where silu(g) = g / (1 + exp(-g))
// (the gated MLP of Llama: down_proj(act_fn(gate_proj(x)) * up_proj(x))).
//
// Bindings:
//   0 gate    storage, read        f32 [n]
//   1 up      storage, read        f32 [n]
//   2 out     storage, read_write  f32 [n]
//   3 params  uniform              { n }
// Layout: one invocation per element, 64 per workgroup; the 1-D grid is
// folded into (x, y).

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= params.n) {
    return;
  }
  let g = gate[i];
  // For g far below zero exp(-g) overflows to +inf and g / inf is -0, which is
  // silu's limit, so no clamp is needed.
  out[i] = g / (1.0 + exp(-g)) * up[i];
}
