/**
 * Online random-hadamard through its factors (src/model/online_rotations.ts):
 * a stored `(S_m ⊗ H_K)·diag(signs)` runs as a K × K matmul, the strided
 * Walsh–Hadamard butterflies and the signs, and must equal the float64
 * dense product x·W/√n (or x·Wᵀ/√n) to float32 rounding, on both engines,
 * for K = 1 (64), Sloane's 12 doubled twice (48), Sloane's 172 alone and
 * 192·4 (768); a stored matrix of another construction falls back to the
 * dense product and still gives x·M.
 */

import assert from "node:assert/strict";
import type { WeightSource } from "../../src/model/weight_source.ts";
import { OnlineRotations } from "../../src/model/online_rotations.ts";
import type { OnlineApplication } from "../../src/transform/online_transforms.ts";
import { buildTransform } from "../../src/transform/transform_matrix.ts";
import { ENGINE_KINDS, readF32, testEngine } from "../_engines.ts";

const MODULE = "model.layers.0.mlp.down_proj";

function source(tensors: Map<string, Float32Array>): WeightSource {
  return {
    config: {} as WeightSource["config"],
    has: (name) => tensors.has(name),
    readF32: (name) => Promise.resolve(tensors.get(name)!.slice()),
  };
}

function application(n: number, inverse: boolean): OnlineApplication {
  return {
    group: "R4",
    location: "input",
    module: MODULE,
    tensor: `${MODULE}.R4_input.weight`,
    type: "random-hadamard",
    size: n,
    inverse,
    perm: null,
  };
}

/** x·M per run of n in float64, M = W/√n or Wᵀ/√n. */
function dense(x: Float32Array, w: Float32Array, n: number, inverse: boolean): Float64Array {
  const y = new Float64Array(x.length);
  const s = 1 / Math.sqrt(n);
  for (let run = 0; run < x.length; run += n) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let i = 0; i < n; i++) acc += x[run + i] * (inverse ? w[j * n + i] : w[i * n + j]);
      y[run + j] = acc * s;
    }
  }
  return y;
}

for (const kind of ENGINE_KINDS) {
  Deno.test({
    name: `${kind}: online random-hadamard runs factored and equals the dense x·M`,
    sanitizeResources: false,
    async fn() {
      const e = await testEngine(kind);
      for (const n of [64, 48, 172, 768]) {
        const w = Float32Array.from(buildTransform("random-hadamard", n, 5).stored);
        // A row swap keeps a Hadamard matrix but not llmc's factored form: the dense fallback.
        const other = w.slice();
        other.set(w.subarray(0, n), n);
        other.set(w.subarray(n, 2 * n), 0);
        for (
          const [label, stored, factored] of [["", w, true], [" (other)", other, false]] as const
        ) {
          for (const inverse of [false, true]) {
            const a = application(n, inverse);
            const online = await OnlineRotations.load(
              e,
              source(new Map([[a.tensor, stored]])),
              [a],
            );
            const what = `n ${n}${label}${inverse ? " inverse" : ""}`;
            assert.equal(online.keyOf(MODULE, "input").startsWith("rh"), factored, what);
            const rows = 3;
            const cols = 2 * n; // two blocks per row
            const xs = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.7));
            const x = e.upload(xs, [rows, cols]);
            const y = online.apply(MODULE, "input", x)!;
            const got = await readF32(e, y);
            const want = dense(xs, stored, n, inverse);
            let worst = 0;
            for (let i = 0; i < got.length; i++) {
              worst = Math.max(worst, Math.abs(got[i] - want[i]));
            }
            assert.ok(worst < 2e-5, `${what}: max error ${worst}`);
            x.destroy();
            y.destroy();
            online.destroy();
          }
        }
      }
    },
  });
}

Deno.test({
  name: "a stored random-hadamard's factors are found once per source: later loads read nothing",
  sanitizeResources: false,
  async fn() {
    const e = await testEngine("cpu");
    const n = 48;
    const a = application(n, true);
    const w = Float32Array.from(buildTransform("random-hadamard", n, 7).stored);
    const reads: string[] = [];
    const counted = (tensors: Map<string, Float32Array>): WeightSource => {
      const inner = source(tensors);
      return { ...inner, readF32: (name) => (reads.push(name), inner.readF32(name)) };
    };
    const xs = Float32Array.from({ length: 2 * n }, (_, i) => Math.cos(i));
    const apply = async (s: WeightSource) => {
      const online = await OnlineRotations.load(e, s, [a]);
      const x = e.upload(xs, [2, n]);
      const y = online.apply(MODULE, "input", x)!;
      try {
        return await readF32(e, y);
      } finally {
        for (const t of [x, y]) t.destroy();
        online.destroy();
      }
    };
    const first = counted(new Map([[a.tensor, w]]));
    const once = await apply(first);
    assert.deepEqual(await apply(first), once, "the kept factors give the same values");
    assert.deepEqual(reads, [a.tensor], "read once");
    // Another source (the same name, other values) is read and checked on its own.
    const other = w.map((v) => -v);
    const second = counted(new Map([[a.tensor, other]]));
    const negated = await apply(second);
    assert.deepEqual(reads, [a.tensor, a.tensor]);
    assert.ok(negated.every((v, i) => v === -once[i]), "the other source's own factors");
  },
});
