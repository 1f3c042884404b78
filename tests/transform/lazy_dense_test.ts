/**
 * A Hadamard-type block's dense n × n float64 matrix is built only when
 * read: the factored products (the engine's kernels, block_apply.ts's
 * reference, the fused rotations of a whole model) never read it, and when
 * read it is the stored matrix times the scale, bit for bit.
 */

import assert from "node:assert/strict";
import { hostBlockTransform } from "../../src/engine/cpu/block_transform.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { applyLeft, applyRight } from "../../src/transform/block_apply.ts";
import { RotatedWeightSource } from "../../src/transform/rotated_source.ts";
import {
  blockTransformOf,
  buildTransform,
  FactoredBlockTransform,
  normalizedMatrix,
  permutedTransform,
  randomPermutation,
  type TransformMatrix,
  type TransformType,
} from "../../src/transform/transform_matrix.ts";
import { SHARED_DIR } from "../_shared.ts";

function built(type: TransformType, n: number, seed: number, permute: boolean): TransformMatrix {
  const t = buildTransform(type, n, seed);
  return permute ? permutedTransform(t, randomPermutation(n, seed)) : t;
}

function factored(t: TransformMatrix): FactoredBlockTransform {
  const b = blockTransformOf(t);
  assert.ok(b instanceof FactoredBlockTransform, `${t.type} ${t.size}: not factored`);
  return b;
}

const bytes = (a: Float64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

Deno.test("a Hadamard block's dense matrix is built on first read, equal to stored · scale bit for bit", () => {
  const cases: [TransformType, number][] = [
    ...[1, 2, 8, 64].map((n): [TransformType, number] => ["hadamard", n]),
    ...[4, 12, 20, 40, 172].map((n): [TransformType, number] => ["random-hadamard", n]),
  ];
  for (const [type, n] of cases) {
    for (const permute of [false, true]) {
      const t = built(type, n, 7, permute);
      const b = factored(t);
      assert.equal(b.denseBuilt, false, `${type} ${n}`);
      const m = b.matrix;
      assert.ok(b.denseBuilt, `${type} ${n}`);
      assert.equal(b.matrix, m, "built once");
      assert.deepEqual(bytes(m), bytes(normalizedMatrix(t)), `${type} ${n} permuted ${permute}`);
    }
  }
  // random-matrix has no factors: its block is dense from the start.
  const dense = blockTransformOf(buildTransform("random-matrix", 8, 1));
  assert.ok(!(dense instanceof FactoredBlockTransform) && dense.matrix.length === 64);
});

Deno.test("the factored products never build a Hadamard block's dense matrix", async () => {
  const random = (len: number) => Float64Array.from({ length: len }, (_, i) => Math.sin(i + 1));
  for (const permute of [false, true]) {
    const blocks = [
      factored(built("hadamard", 16, 3, permute)),
      factored(built("random-hadamard", 12, 3, permute)),
    ];
    for (const b of blocks) {
      const [rows, cols] = [2 * b.size, 3 * b.size];
      for (const transpose of [false, true]) {
        // The reference loops (block_apply.ts) and the engines' kernels, both sides.
        applyRight(random(rows * cols), rows, cols, b, transpose, "x");
        applyLeft(random(rows * cols), rows, cols, b, transpose, "x");
        for (const side of ["right", "left"] as const) {
          hostBlockTransform().blockTransform(random(rows * cols), b, {
            rows,
            cols,
            side,
            transpose,
            what: "x",
          });
        }
      }
      assert.equal(b.denseBuilt, false, `${b.size} permuted ${permute}`);
    }
  }

  // A whole model's fused R1 + R2 (every weight read by a forward).
  const hf = await HfModel.open(`${SHARED_DIR}models/stories260K`);
  try {
    const r1 = factored(built("random-hadamard", 64, 1, true));
    const r2 = factored(built("hadamard", hf.config.headDim, 2, false));
    const rotated = new RotatedWeightSource(hf, { r1, r2 }, hostBlockTransform());
    await referenceForward(rotated, Int32Array.of(1, 2, 3, 4));
    assert.equal(r1.denseBuilt, false, "R1");
    assert.equal(r2.denseBuilt, false, "R2");
  } finally {
    hf.close();
  }
});
