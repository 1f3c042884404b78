// moe_route: the router of a mixture-of-experts block, one row (token) per
// invocation, as transformers' MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock /
// Qwen3MoeSparseMoeBlock compute it:
//
//   p        = softmax(logits[r, :])            (f32, stable: max subtracted)
//   selected = the topK largest p               (ties: the lower expert index)
//   w[r, e]  = p[e] / (normalize ? sum of the selected p : 1)   if e is selected
//   w[r, e]  = 0                                                 otherwise
//
// The dense [rows, experts] routing matrix is what the combine kernel weights
// each expert's output with; an expert's zero entries are the tokens not
// routed to it. Top-k by rank: expert e is selected when fewer than topK
// experts beat it (greater p, or equal p and a lower index), O(experts²) per
// row, which for the 8-128 experts of these models is cheaper than a sort
// kept in registers.
//
// Bindings (group 0):
//   0  logits  storage read        f32 [rows, experts]  (the router Linear's output)
//   1  w       storage read_write  f32 [rows, experts]
//   2  p       uniform             { rows, experts, top_k, normalize }
//
// Workgroup layout: 64 invocations, one row each; the 1-D grid is folded
// into (x, y) by the host.

struct Params {
  rows: u32,
  experts: u32,
  top_k: u32,
  normalize: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn beats(base: u32, i: u32, j: u32) -> bool {
  let a = logits[base + i];
  let b = logits[base + j];
  return a > b || (a == b && i < j);
}

fn selected(base: u32, j: u32) -> bool {
  var rank = 0u;
  for (var i = 0u; i < p.experts; i++) {
    if (i != j && beats(base, i, j)) {
      rank++;
    }
  }
  return rank < p.top_k;
}

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (r >= p.rows) {
    return;
  }
  let base = r * p.experts;
  // Softmax is monotone, so ranking the logits ranks the probabilities.
  var m = logits[base];
  for (var e = 1u; e < p.experts; e++) {
    m = max(m, logits[base + e]);
  }
  var total = 0.0;
  for (var e = 0u; e < p.experts; e++) {
    total += exp(logits[base + e] - m);
  }
  var chosen = 0.0;
  for (var e = 0u; e < p.experts; e++) {
    var v = 0.0;
    if (selected(base, e)) {
      v = exp(logits[base + e] - m) / total;
      chosen += v;
    }
    w[base + e] = v;
  }
  if (p.normalize != 0u) {
    for (var e = 0u; e < p.experts; e++) {
      w[base + e] = w[base + e] / chosen;
    }
  }
}
