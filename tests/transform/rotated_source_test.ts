import assert from "node:assert/strict";
import { hostBlockTransform } from "../../src/engine/cpu/block_transform.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import type { SyntheticSpec } from "../../src/model/synthetic_model.ts";
import { type FusedRotation, RotatedWeightSource } from "../../src/transform/rotated_source.ts";
import {
  blockTransformOf,
  buildTransform,
  type TransformType,
} from "../../src/transform/transform_matrix.ts";
import { TransformError } from "../../src/transform/errors.ts";
import { SHARED_DIR } from "../_shared.ts";

const STORIES = `${SHARED_DIR}models/stories260K`;

function rotation(type: TransformType, size: number, seed: number, dense = false): FusedRotation {
  const t = blockTransformOf(buildTransform(type, size, seed));
  return dense ? { matrix: t.matrix, size } : t;
}

/** max |a − b| / max |b| */
function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

function ids(n: number, vocab: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 37 + 11) % vocab);
}

Deno.test("R1 + R2 fused into stories260K: same logits within 1e-4 relative", async () => {
  const hf = await HfModel.open(STORIES);
  try {
    const tokens = ids(24, hf.config.vocabSize);
    const original = await referenceForward(hf, tokens);
    for (
      const [type1, type2, block, dense] of [
        ["hadamard", "hadamard", 64, false],
        ["hadamard", "hadamard", 64, true], // dense products instead of the factors
        ["random-hadamard", "random-matrix", 64, false],
        ["random-matrix", "random-hadamard", 16, false], // transform_block_size 16
      ] as const
    ) {
      const rotated = new RotatedWeightSource(hf, {
        r1: rotation(type1, block, 1, dense),
        r2: rotation(type2, hf.config.headDim, 2),
      }, hostBlockTransform());
      assert.equal(rotated.config.tieWordEmbeddings, false);
      assert.ok(rotated.has("lm_head.weight"));
      const norm = await rotated.readF32("model.layers.0.input_layernorm.weight");
      assert.ok(norm.every((v) => v === 1), "RMSNorm scales are folded (γ = 1)");
      const embed = await rotated.readF32("model.embed_tokens.weight");
      assert.notDeepEqual(embed, await hf.readF32("model.embed_tokens.weight"));
      const { logits } = await referenceForward(rotated, tokens);
      const err = relativeError(logits, original.logits);
      assert.ok(err < 1e-4, `${type1}/${type2} block ${block}: relative error ${err}`);
    }
  } finally {
    hf.close();
  }
});

Deno.test("a rotation that changes the function is caught (the test can fail)", async () => {
  const hf = await HfModel.open(STORIES);
  try {
    const tokens = ids(16, hf.config.vocabSize);
    const original = await referenceForward(hf, tokens);
    // R2 must pair v with o inside the same head; a non-orthogonal "rotation" breaks the model.
    const bad = rotation("hadamard", 8, 0);
    const r2 = { matrix: bad.matrix.map((v, i) => (i === 0 ? v * 2 : v)), size: 8 };
    const rotated = new RotatedWeightSource(hf, { r1: null, r2 }, hostBlockTransform());
    const { logits } = await referenceForward(rotated, tokens);
    assert.ok(relativeError(logits, original.logits) > 1e-3);
  } finally {
    hf.close();
  }
});

Deno.test("sizes that do not fit the model are refused by name", async () => {
  const hf = await HfModel.open(STORIES);
  try {
    assert.throws(
      () =>
        new RotatedWeightSource(
          hf,
          { r1: rotation("hadamard", 128, 0), r2: null },
          hostBlockTransform(),
        ),
      (e) => e instanceof TransformError && e.message.includes("hidden_size 64"),
    );
    assert.throws(
      () =>
        new RotatedWeightSource(
          hf,
          { r1: null, r2: rotation("hadamard", 16, 0) },
          hostBlockTransform(),
        ),
      (e) => e instanceof TransformError && e.message.includes("head_dim 8"),
    );
  } finally {
    hf.close();
  }
});

const SYNTHETIC: [string, SyntheticSpec][] = [
  ["qwen2 (q/k/v biases, untied)", {
    modelType: "qwen2",
    hidden: 32,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediate: 48,
    vocab: 64,
    tied: false,
  }],
  ["qwen3 (q/k norms, tied)", {
    modelType: "qwen3",
    hidden: 32,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    intermediate: 48,
    vocab: 64,
    tied: true,
  }],
  ["llama (attention and mlp biases)", {
    modelType: "llama",
    hidden: 32,
    layers: 2,
    heads: 4,
    kvHeads: 4,
    intermediate: 48,
    vocab: 64,
    tied: false,
    attentionBias: true,
    mlpBias: true,
  }],
];

for (const [label, spec] of SYNTHETIC) {
  Deno.test(`R1 + R2 fused into a synthetic ${label}: same logits within 1e-4`, async () => {
    const m = await writeSyntheticModel(spec);
    const hf = await HfModel.open(m.dir);
    try {
      const tokens = ids(12, spec.vocab);
      const original = await referenceForward(hf, tokens);
      const rotated = new RotatedWeightSource(hf, {
        r1: rotation("random-hadamard", spec.hidden, 5),
        r2: rotation("random-hadamard", hf.config.headDim, 6),
      }, hostBlockTransform());
      const { logits } = await referenceForward(rotated, tokens);
      const err = relativeError(logits, original.logits);
      assert.ok(err < 1e-4, `relative error ${err}`);
    } finally {
      hf.close();
      await m.remove();
    }
  });
}
