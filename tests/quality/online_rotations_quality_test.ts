/**
 * Online rotations on stories260K (intermediate 172: random-hadamard through
 * Sloane's H_172). Without quantization, QuIP (u, v) and SpinQuant R1+R2+R4
 * keep the model: logits within 1e-4 relative, perplexity 7.7408 (llmc's CPU
 * engine, 40 × 256 windows of tinystories_eval.txt). A written checkpoint
 * read back gives the same logits as the in-memory transformed model. With
 * RTN W4A16 channel, R1+R2+R4 stays within 0.5 % of llm-compressor 0.9's
 * 9.989; the checkpoint carries the R4 matrices and transform_config.
 */

import { hostBlockTransform } from "../../src/engine/cpu/block_transform.ts";
import assert from "node:assert/strict";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { perplexity } from "../../src/data/perplexity.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import type { WeightSource } from "../../src/model/weight_source.ts";
import { quipModifier } from "../../src/modifiers/quip/register.ts";
import { writeTransformedCheckpoint } from "../../src/modifiers/spinquant/rotated_checkpoint.ts";
import {
  planSpinQuant,
  SPINQUANT_SEEDS,
  spinQuantOnlineGroups,
  spinQuantRotations,
} from "../../src/modifiers/spinquant/spinquant_plan.ts";
import { oneshot } from "../../src/oneshot.ts";
import { parseRecipe } from "../../src/recipe/parse.ts";
import { OnlineTransformSource } from "../../src/transform/online_source.ts";
import { RotatedWeightSource } from "../../src/transform/rotated_source.ts";
import { CALIB, evaluationWindows, STORIES, withTempDir } from "./_quality.ts";

const recipeOf = (modifier: string) =>
  parseRecipe(`quant_stage:\n  quant_modifiers:\n    ${modifier}\n`).modifiers[0];

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

async function withModel<T>(source: WeightSource, use: (m: DecoderModel) => Promise<T>) {
  const model = await DecoderModel.load(source, new CpuEngine());
  try {
    return await use(model);
  } finally {
    model.close();
  }
}

const TOKENS = Int32Array.from({ length: 48 }, (_, i) => (i * 37 + 11) % 512);

Deno.test({
  name:
    "QuIP and SpinQuant R1+R2+R4 (random-hadamard) without quantization: logits within 1e-4, ppl 7.7408",
  sanitizeResources: false,
  async fn() {
    const hf = await HfModel.open(STORIES);
    try {
      const original = await withModel(hf, (m) => m.forward(TOKENS));
      const quip = quipModifier.plan(hf.config, recipeOf("QuIPModifier: {}"));
      const spin = planSpinQuant(
        hf.config,
        recipeOf("SpinQuantModifier: {rotations: [R1, R2, R4], transform_type: random-hadamard}"),
      );
      const sources: [string, OnlineTransformSource, object][] = [
        [
          "QuIP",
          new OnlineTransformSource(hf, quip.groups, { u: 1, v: 2 }, hostBlockTransform()),
          quip.groups,
        ],
        [
          "R1+R2+R4",
          new OnlineTransformSource(
            new RotatedWeightSource(hf, spinQuantRotations(hf.config, spin), hostBlockTransform()),
            spinQuantOnlineGroups(hf.config, spin),
            SPINQUANT_SEEDS,
            hostBlockTransform(),
          ),
          spinQuantOnlineGroups(hf.config, spin),
        ],
      ];
      const windows = await evaluationWindows();
      for (const [label, source, groups] of sources) {
        const logits = await withModel(source, (m) => m.forward(TOKENS));
        const err = relativeError(logits, original);
        assert.ok(err < 1e-4, `${label}: relative error ${err}`);
        assert.ok(source.extraTensors().length > 0);
        // Written and read back (the checkpoint a run leaves): the same logits, and the
        // perplexity (read from the folder: the in-memory source rotates on every read).
        await withTempDir(async (dir) => {
          const written = await writeTransformedCheckpoint(
            hf,
            source,
            dir,
            groups as Record<string, never>,
          );
          try {
            const again = await withModel(written, (m) => m.forward(TOKENS));
            assert.ok(relativeError(again, logits) < 1e-6, `${label}: round trip`);
            const { ppl } = await withModel(written, (m) => perplexity(m, windows));
            console.log(`stories260K ${label} float (CPU engine): ppl ${ppl.toFixed(4)}`);
            assert.ok(Math.abs(ppl - 7.7408) < 5e-4, `${label}: ppl ${ppl}`);
          } finally {
            written.close();
          }
        });
      }
    } finally {
      hf.close();
    }
  },
});

const CHANNEL = `      ignore: [lm_head]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
          targets: [Linear]
`;

Deno.test({
  name: "SpinQuant R1+R2+R4 (random-hadamard) + RTN W4A16 channel: ppl ≤ 9.989 × 1.005, R4 stored",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      await oneshot({
        model: STORIES,
        recipe: "quant_stage:\n  quant_modifiers:\n" +
          "    SpinQuantModifier: {rotations: [R1, R2, R4], transform_type: random-hadamard}\n" +
          `    QuantizationModifier:\n${CHANNEL}`,
        outputDir: `${dir}/out`,
        onWarning: () => {},
      });
      const config = JSON.parse(await Deno.readTextFile(`${dir}/out/config.json`));
      const groups = config.quantization_config.transform_config.config_groups;
      assert.deepEqual(Object.keys(groups), ["R1", "R2", "R4"]);
      assert.deepEqual(groups.R4.apply.map((a: { location: string }) => a.location), [
        "input",
        "weight_input",
      ]);
      const ckpt = await CompressedCheckpoint.open(`${dir}/out`);
      try {
        const raw = await HfModel.open(`${dir}/out`);
        const r4 = "model.layers.0.mlp.down_proj.R4_input.weight";
        assert.equal(raw.info(r4).dtype, "F64");
        assert.deepEqual([...raw.info(r4).shape], [172, 172]);
        assert.ok((await raw.readF32(r4)).every((v) => v === 1 || v === -1));
        raw.close();
        const { ppl } = await withModel(
          ckpt,
          async (m) => perplexity(m, await evaluationWindows()),
        );
        console.log(`stories260K R1+R2+R4 + RTN W4A16 channel (CPU engine): ppl ${ppl.toFixed(4)}`);
        assert.ok(ppl <= 9.989 * 1.005, `ppl ${ppl}`);
      } finally {
        ckpt.close();
      }
    });
  },
});

Deno.test({
  name: "QuIP (random-hadamard u, v) + GPTQ W4A16 channel: ppl ≤ 9.487 × 1.005, u/v stored",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      await oneshot({
        model: STORIES,
        recipe:
          `quant_stage:\n  quant_modifiers:\n    QuIPModifier: {}\n    GPTQModifier:\n${CHANNEL}`,
        outputDir: `${dir}/out`,
        dataset: CALIB,
        numCalibrationSamples: 64,
        maxSeqLength: 256,
        onWarning: () => {},
      });
      const config = JSON.parse(await Deno.readTextFile(`${dir}/out/config.json`));
      assert.equal(config.tie_word_embeddings, true, "QuIP leaves the embeddings tied");
      const groups = config.quantization_config.transform_config.config_groups;
      assert.deepEqual(Object.keys(groups), ["u", "v"]); // config.json keys are sorted
      assert.deepEqual(groups.u.apply[1], {
        targets: ["Linear"],
        location: "output",
        inverse: true,
        ignore: ["lm_head"],
      });
      const raw = await HfModel.open(`${dir}/out`);
      try {
        for (const name of ["self_attn.q_proj.v_input", "mlp.down_proj.u_output"]) {
          assert.equal(raw.info(`model.layers.1.${name}.weight`).dtype, "F64");
        }
        assert.deepEqual([...raw.info("model.layers.1.mlp.up_proj.u_output.weight").shape], [
          172,
          172,
        ]);
      } finally {
        raw.close();
      }
      const ckpt = await CompressedCheckpoint.open(`${dir}/out`);
      try {
        const { ppl } = await withModel(
          ckpt,
          async (m) => perplexity(m, await evaluationWindows()),
        );
        console.log(`stories260K QuIP + GPTQ W4A16 channel (CPU engine): ppl ${ppl.toFixed(4)}`);
        assert.ok(ppl <= 9.487 * 1.005, `ppl ${ppl}`);
      } finally {
        ckpt.close();
      }
    });
  },
});
