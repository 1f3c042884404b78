/**
 * AWQ's Linear-parent grid losses through the Gram matrix of the parent's
 * inputs (`gramLosses`: tr(ΔGΔᵀ) on the engine's running Hessian) are the
 * direct ones (`linearParentLosses`: X·Δᵀ on the cached inputs, the form
 * upstream runs) on both engines: the same losses to float32 rounding, the
 * same reference mean square, the same best candidate; and the choice
 * between them follows the multiply-add count.
 */

import assert from "node:assert/strict";
import { ActivationCache, MemoryBudget } from "../../src/graph/activation_cache.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import {
  gramIsCheaper,
  gramLosses,
  linearParentLosses,
} from "../../src/modifiers/awq/awq_session.ts";
import { ENGINE_KINDS, testEngine } from "../_engines.ts";

const random = seededRandom(7);
const randn = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);

// 24 inputs (an outlier channel among them), 12 outputs, three batches of different sizes.
const COLS = 24;
const OUT = 12;
const BATCHES = [{ rows: 40, sequences: 2 }, { rows: 24, sequences: 1 }, { rows: 60, sequences: 3 }]
  .map((b) => ({ ...b, x: randn(b.rows * COLS).map((v, i) => (i % COLS === 5 ? 30 * v : v)) }));
const W = randn(OUT * COLS);
// Candidates: W rounded on grids of different steps (the last one coarse, the worst).
const CANDIDATES = [64, 16, 4].map((q) => W.map((v) => Math.round(v * q) / q));

for (const kind of ENGINE_KINDS) {
  Deno.test({
    name: `${kind}: a Linear parent's grid losses on its Gram matrix are the direct ones`,
    sanitizeResources: false,
    fn: async () => {
      const engine = await testEngine(kind);
      const dir = await Deno.makeTempDir();
      const inputs = new ActivationCache(new MemoryBudget(Infinity), dir, "awq-in");
      const gram = engine.secondOrder.runningHessian(COLS);
      try {
        for (const [b, { x, rows, sequences }] of BATCHES.entries()) {
          await inputs.put(b, x);
          const t = engine.upload(x, [rows, COLS]);
          gram.add(t, sequences);
          await engine.flush();
          t.destroy();
        }
        const tokens = BATCHES.reduce((n, b) => n + b.rows, 0);
        const count = CANDIDATES.length;
        const direct = await linearParentLosses(
          engine,
          inputs,
          COLS,
          W,
          count,
          (c) => CANDIDATES[c],
        );
        const viaGram = await gramLosses(
          engine.secondOrder,
          gram,
          tokens,
          W,
          count,
          (c) => CANDIDATES[c],
        );
        assert.ok(direct.finite && viaGram.finite);
        const close = (a: number, b: number, what: string) =>
          assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(b), `${what}: ${a} vs ${b}`);
        close(viaGram.referenceMeanSquare, direct.referenceMeanSquare, "reference");
        direct.losses.forEach((l, c) => close(viaGram.losses[c], l, `candidate ${c}`));
        // The losses differ enough that the order means something.
        assert.ok(direct.losses[0] < direct.losses[1] && direct.losses[1] < direct.losses[2]);
      } finally {
        gram.destroy();
        await inputs.dispose();
        await Deno.remove(dir, { recursive: true });
        engine.close();
      }
    },
  });
}

Deno.test("AWQ takes the Gram form only when it costs fewer multiply-adds", () => {
  // The 3M Llama's down_proj: 16384 tokens, 768 → 256, 20 grid points.
  assert.equal(gramIsCheaper(16384, 768, 256, 20), true);
  // A 7B down_proj on 128 tokens: out · in² per grid point would be ~90× the forward.
  assert.equal(gramIsCheaper(128, 11008, 4096, 20), false);
  // The boundary: tokens·in² + 21·out·in² against 21·tokens·in·out.
  assert.equal(gramIsCheaper(100, 10, 10, 20), true); // 10⁴ + 2.1·10⁴ < 2.1·10⁵
  assert.equal(gramIsCheaper(10, 10, 10, 20), false); // 10³ + 2.1·10⁴ > 2.1·10⁴
});
