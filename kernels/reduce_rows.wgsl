// reduce_rows: y[r] = OP over c of x[r, c], for OP in sum, min, max, absmax
//
// Bindings (group 0):
//   0  x  storage read        f32[R * C], row-major
//   1  y  storage read_write  f32[R]
//   2  p  uniform             { R, C }
//
// Override constants:
//   OP  0 = sum, 1 = min, 2 = max, 3 = absmax (max of |x|)
//
// Workgroup layout: one workgroup of 64 invocations per row. Invocation t
// folds columns t, t + 64, t + 128, ... into a register, then a tree
// reduction in workgroup memory combines the 64 partials. Rows are a 1-D
// count, folded into 2-D by the host past maxComputeWorkgroupsPerDimension
// (row = wid.x + wid.y * nwg.x). Empty rows give 0 (sum, absmax), +inf (min)
// or -inf (max).

struct Params {
  R: u32,
  C: u32,
}

override OP: u32 = 0u;
const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, WG>;

fn identity() -> f32 {
  switch OP {
    case 1u: { return bitcast<f32>(0x7f800000u); }   // +inf
    case 2u: { return bitcast<f32>(0xff800000u); }   // -inf
    default: { return 0.0; }
  }
}

fn combine(acc: f32, v: f32) -> f32 {
  switch OP {
    case 1u: { return min(acc, v); }
    case 2u: { return max(acc, v); }
    case 3u: { return max(acc, abs(v)); }
    default: { return acc + v; }
  }
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  // No early return: every invocation must reach the barriers below.
  let row = wid.x + wid.y * nwg.x;
  var acc = identity();
  if (row < p.R) {
    let base = row * p.C;
    for (var c = t; c < p.C; c += WG) {
      acc = combine(acc, x[base + c]);
    }
  }
  partial[t] = acc;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (t < stride) {
      // absmax partials are non-negative, so combine's abs() leaves them as they are.
      partial[t] = combine(partial[t], partial[t + stride]);
    }
    workgroupBarrier();
  }
  if (t == 0u && row < p.R) {
    y[row] = partial[0];
  }
}
