// walsh_hadamard_stage: one butterfly stage of the fast Walsh–Hadamard
// transform over runs of n values, in place: for the stage's half-width h,
// every pair (i, i + h) with (i / h) even becomes (a + b, a − b), times s
// (1 except on the last stage, where s applies the normalization).
// log2(n) dispatches (h = 1, 2, …, n/2) give x · H_n · s, H_n Sylvester's.
//
// Bindings (group 0):
//   0  x  storage read_write  f32[runs * n]
//   1  p  uniform             { pairs: u32, n: u32, h: u32, s: f32 }
//
// Workgroup layout: 256 invocations in x, one pair each; a 1-D count of
// ceil(pairs / 256) workgroups, folded into 2-D by the host when it exceeds
// maxComputeWorkgroupsPerDimension (linear index wid.x + wid.y * nwg.x).

struct Params {
  pairs: u32,
  n: u32,
  h: u32,
  s: f32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let t = (wid.x + wid.y * nwg.x) * 256u + lid;
  if (t >= p.pairs) {
    return;
  }
  let half = p.n / 2u;
  let run = t / half;
  let j = t % half;
  // The j-th pair of the run: block (j / h) of width 2h, offset (j % h) in it.
  let i = run * p.n + (j / p.h) * 2u * p.h + (j % p.h);
  let a = x[i];
  let b = x[i + p.h];
  x[i] = (a + b) * p.s;
  x[i + p.h] = (a - b) * p.s;
}
