/**
 * The calibrated pipelines on stories260K: exact observer semantics when
 * calibration forwards are not fake-quantized, activation spilling that
 * changes nothing, `basic` (no error propagation), lm_head calibrated from
 * the final norm, and preparation errors that leave nothing behind.
 */

import assert from "node:assert/strict";
import { oneshot } from "../../src/oneshot.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { loadCalibrationSamples } from "../../src/data/calibration_samples.ts";
import { CalibrationUnsupportedError } from "../../src/modifiers/quantization/quantization_plan.ts";
import type { GraphEvent, LayerDoneEvent } from "../../src/graph/events.ts";
import { referenceFp8KvCalibration } from "./_reference_calibration.ts";
import { CALIB, STORIES, withTempDir } from "./_helpers.ts";

const FP8_KV = `quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
          input_activations: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
          targets: ["Linear"]
      kv_cache_scheme: {num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}
`;
const SAMPLES = 8;
const SEQ = 256;
const quiet = { onWarning: () => {} };

async function scales(dir: string): Promise<Map<string, number>> {
  const hf = await HfModel.open(dir);
  try {
    const out = new Map<string, number>();
    for (const n of hf.tensorNames()) if (/_scale$/.test(n)) out.set(n, (await hf.readF32(n))[0]);
    return out;
  } finally {
    hf.close();
  }
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const x = await Deno.readFile(a);
  const y = await Deno.readFile(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

Deno.test({
  name:
    "without fake quantization every layer's scales equal the reference's; spilling changes no byte",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const run = (out: string, extra: Record<string, unknown> = {}) =>
        oneshot({
          model: STORIES,
          recipe: FP8_KV,
          dataset: CALIB,
          numCalibrationSamples: SAMPLES,
          maxSeqLength: SEQ,
          quantizationAwareCalibration: false,
          outputDir: out,
          ...quiet,
          ...extra,
        });
      await run(`${dir}/a`);
      const spilled: number[] = [];
      await run(`${dir}/b`, {
        maxActivationBytesInMemory: 0,
        tokensPerForward: 512,
        onEvent: (e: { type: string }) => {
          if (e.type !== "layer_done") return;
          const files = [...Deno.readDirSync(`${dir}/b.tmp-llmc/graph`)].filter((f) =>
            f.name.endsWith(".f32")
          );
          spilled.push(files.length);
        },
      });
      assert.ok(spilled.some((n) => n > 0), `activations were spilled to disk (${spilled})`);
      assert.ok(await sameBytes(`${dir}/a/model.safetensors`, `${dir}/b/model.safetensors`));

      const hf = await HfModel.open(STORIES);
      const samples = await loadCalibrationSamples({
        path: CALIB,
        tokenizer: await loadTokenizer(STORIES),
        numSamples: SAMPLES,
        maxSeqLength: SEQ,
      });
      const ref = await referenceFp8KvCalibration(hf, samples, false);
      hf.close();
      const got = await scales(`${dir}/a`);
      const check = (name: string, expected: number) => {
        const g = got.get(name)!;
        assert.ok(Math.abs(g - expected) <= 1e-5 * expected, `${name}: ${g} vs ${expected}`);
      };
      for (const [m, s] of ref.input) check(`${m}.input_scale`, s);
      for (const [m, s] of ref.k) check(`${m}.k_scale`, s);
      for (const [m, s] of ref.v) check(`${m}.v_scale`, s);
    });
  },
});

Deno.test({
  name: "basic pipeline: no error propagation; lm_head calibrated from the final norm, untied",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const warnings: string[] = [];
      const common = {
        model: STORIES,
        scheme: "FP8",
        dataset: CALIB,
        numCalibrationSamples: 4,
        maxSeqLength: 128,
        onWarning: (m: string) => warnings.push(m),
      };
      const seq = await oneshot({ ...common, outputDir: `${dir}/seq` });
      const basic = await oneshot({ ...common, outputDir: `${dir}/basic`, pipeline: "basic" });
      assert.equal(seq.pipeline, "sequential");
      assert.equal(basic.pipeline, "basic");
      assert.ok(warnings.some((w) => w.includes("'basic' requested")), warnings.join("\n"));
      const a = await scales(`${dir}/seq`);
      const b = await scales(`${dir}/basic`);
      const l0 = "model.layers.0.mlp.down_proj.input_scale";
      const l4 = "model.layers.4.mlp.down_proj.input_scale";
      assert.equal(a.get(l0), b.get(l0), "layer 0 sees the same inputs");
      assert.notEqual(a.get(l4), b.get(l4), "later layers see (un)compressed predecessors");

      const hf = await HfModel.open(`${dir}/seq`);
      try {
        assert.equal(hf.info("lm_head.weight").dtype, "F8_E4M3");
        assert.ok((await hf.readF32("lm_head.input_scale"))[0] > 0);
        assert.equal(hf.config.tieWordEmbeddings, false, "a quantized tied lm_head is untied");
        assert.deepEqual(
          (hf.config.raw.quantization_config as Record<string, unknown>).ignore,
          [],
        );
      } finally {
        hf.close();
      }
    });
  },
});

Deno.test({
  name: "GPTQ quantizes lm_head too when the recipe does not ignore it (from the final norm)",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const metrics: GraphEvent[] = [];
      await oneshot({
        model: STORIES,
        recipe: `quant_stage:
  quant_modifiers:
    GPTQModifier:
      config_groups:
        group_0:
          weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}
          targets: ["Linear"]
`,
        dataset: CALIB,
        numCalibrationSamples: 4,
        maxSeqLength: 128,
        outputDir: `${dir}/out`,
        onEvent: (e) => {
          if ("type" in e && e.type === "module_metric") metrics.push(e);
        },
        ...quiet,
      });
      const head = metrics.find((e) => e.type === "module_metric" && e.module === "lm_head");
      assert.ok(head && head.type === "module_metric", "lm_head has a metric");
      assert.equal(head.errorKind, "gptq_loss");
      assert.ok(head.error !== null && head.error > 0 && Number.isFinite(head.error));
      const ckpt = await CompressedCheckpoint.open(`${dir}/out`);
      const hf = await HfModel.open(STORIES);
      try {
        const dense = await hf.readF32("model.embed_tokens.weight");
        const q = await ckpt.readF32("lm_head.weight");
        assert.equal(q.length, dense.length);
        // int8 per channel: every row within half a step of the original.
        let worst = 0;
        for (let r = 0; r < 512; r++) {
          let amax = 0;
          for (let c = 0; c < 64; c++) amax = Math.max(amax, Math.abs(dense[r * 64 + c]));
          for (let c = 0; c < 64; c++) {
            worst = Math.max(worst, Math.abs(q[r * 64 + c] - dense[r * 64 + c]) / (amax / 127));
          }
        }
        assert.ok(worst > 0 && worst < 8, `lm_head is near the original (${worst} steps)`);
      } finally {
        ckpt.close();
        hf.close();
      }
    });
  },
});

Deno.test("unsupported calibration is refused before any output", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    const recipe = `quant_stage:
  quant_modifiers:
    QuantizationModifier:
      config_groups:
        g:
          weights: {num_bits: 8, type: int, strategy: channel}
          input_activations: {num_bits: 8, type: int, strategy: tensor, dynamic: false, observer: mse}
          targets: [Linear]
`;
    await assert.rejects(
      () => oneshot({ model: STORIES, recipe, dataset: CALIB, outputDir: out, ...quiet }),
      CalibrationUnsupportedError,
    );
    await assert.rejects(
      () =>
        oneshot({
          model: STORIES,
          recipe: "quant_stage: {q_modifiers: {WandaPruningModifier: {sparsity: 0.5}}}",
          dataset: CALIB,
          outputDir: out,
          ...quiet,
        }),
      CalibrationUnsupportedError,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test({
  name:
    "in-process interruption: resume without saved boundaries; an independent run keeps its first pass",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const twoPasses = `quant_stage:
  quant_modifiers:
    GPTQModifier:
      config_groups:
        g: {weights: {num_bits: 4, type: int, strategy: channel}, targets: ["re:.*self_attn.*_proj$"]}
    QuantizationModifier:
      config_groups:
        g:
          weights: {num_bits: 8, type: float, strategy: tensor}
          input_activations: {num_bits: 8, type: float, strategy: tensor, dynamic: false}
          targets: ["re:.*mlp.*_proj$"]
`;
      const cases = [
        { name: "noboundary", recipe: FP8_KV, extra: { maxActivationBytesInMemory: 0 } },
        { name: "independent", recipe: twoPasses, extra: {} },
      ];
      for (const { name, recipe, extra } of cases) {
        const options = {
          model: STORIES,
          recipe,
          dataset: CALIB,
          numCalibrationSamples: 4,
          maxSeqLength: 128,
          ...quiet,
          ...extra,
        };
        await oneshot({ ...options, outputDir: `${dir}/${name}-whole` });
        const out = `${dir}/${name}`;
        // Stop once layer 2 of the run's last pass is persisted.
        let lastPass = name === "noboundary";
        await assert.rejects(
          () =>
            oneshot({
              ...options,
              outputDir: out,
              onEvent: (e) => {
                if (e.type === "progress" && e.pass === 1) lastPass = true;
                if (e.type === "layer_done" && e.layer === 2 && lastPass) {
                  throw new Error("interrupted");
                }
              },
            }),
          Error,
          "interrupted",
        );
        const events: GraphEvent[] = [];
        await oneshot({ ...options, outputDir: out, resume: true, onEvent: (e) => events.push(e) });
        assert.ok(
          await sameBytes(`${out}/model.safetensors`, `${dir}/${name}-whole/model.safetensors`),
          `${name}: same bytes as an uninterrupted run`,
        );
        const done = events.filter((e): e is LayerDoneEvent =>
          e.type === "layer_done" && e.layer !== null
        );
        if (name === "noboundary") {
          // Without a boundary every layer is recomputed; the persisted ones are not rewritten.
          assert.deepEqual(done.map((e) => e.skipped), [true, true, true, false, false]);
          assert.ok(events.some((e) => e.type === "progress" && e.layer === 0));
        } else {
          assert.ok(!events.some((e) => e.type === "progress" && e.pass === 0), "pass 0 is reused");
          assert.deepEqual(done.map((e) => e.skipped), [true, true, true, false, false]);
        }
      }
    });
  },
});
