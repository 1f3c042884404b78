/**
 * GPTQ and SparseGPT oneshot on both compute engines: stories260K W4A16
 * (channel) and 2:4 pruning with the same calibration through both engines:
 * one quantize_weight.ts / sparsify_weight.ts, on the WGSL second-order
 * kernels (WebGPU) or on float32 host ops (CPU). The run reports the engine it
 * used; the two checkpoints hold the same tensors, their decompressed
 * weights agree except for rare rounding or pruning flips (the Hessians and
 * factors differ in float32 summation order), and the two models'
 * perplexities agree closely.
 */

import assert from "node:assert/strict";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import type { EngineKind } from "../../src/engine/engine.ts";
import { loadEvaluationWindows } from "../../src/data/evaluation_windows.ts";
import { perplexity } from "../../src/data/perplexity.ts";
import type { GraphEvent } from "../../src/graph/events.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { LAYER_LINEARS, layerPrefix } from "../../src/model/module_names.ts";
import { oneshot } from "../../src/oneshot.ts";
import { SparseGPTModifier } from "../../src/recipe/constructors.ts";
import type { ModifierSpec } from "../../src/recipe/modifiers.ts";
import { SHARED_DIR } from "../_shared.ts";
import { STORIES, withTempDir } from "./_helpers.ts";

const RECIPE = `${new URL("../../recipes/w4a16_gptq_channel.yaml", import.meta.url).pathname}`;

const SPARSE_2OF4: readonly ModifierSpec[] = [
  SparseGPTModifier({ sparsity: 0.5, maskStructure: "2:4", targets: ["re:model.layers.\\d*$"] }),
];

for (
  const [what, recipe, samples, tol] of [
    ["GPTQ W4A16", RECIPE, 16, 1e-6],
    ["SparseGPT 2:4", SPARSE_2OF4, 8, 1e-4],
  ] as const
) {
  Deno.test({
    name: `${what} oneshot on the WebGPU and CPU engines: same tensors, weights and perplexity`,
    sanitizeResources: false,
    async fn() {
      await withTempDir(async (dir) => {
        const engines: Record<string, EngineKind> = {};
        for (const kind of ["webgpu", "cpu"] as const) {
          await oneshot({
            model: STORIES,
            recipe,
            dataset: `${SHARED_DIR}data/tinystories_calib.txt`,
            numCalibrationSamples: samples,
            maxSeqLength: 128,
            outputDir: `${dir}/${kind}`,
            engine: kind,
            onWarning: () => {},
            onEvent: (e: GraphEvent) => {
              if (e.type === "engine") engines[kind] = e.engine;
            },
          });
        }
        assert.deepEqual(engines, { webgpu: "webgpu", cpu: "cpu" }, "each run reports its engine");

        const gpu = await CompressedCheckpoint.open(`${dir}/webgpu`);
        const cpu = await CompressedCheckpoint.open(`${dir}/cpu`);
        try {
          const layers = gpu.config.numHiddenLayers;
          const names = Array.from(
            { length: layers },
            (_, k) => LAYER_LINEARS.map((l) => `${layerPrefix(k)}.${l}.weight`),
          ).flat();
          for (const n of names) assert.ok(gpu.has(n) && cpu.has(n), n);
          let differing = 0;
          let total = 0;
          for (const name of names) {
            const a = await gpu.readF32(name);
            const b = await cpu.readF32(name);
            for (let i = 0; i < a.length; i++) {
              // Quantized: the same grid point unless a rounding flipped.
              // Pruned only: the same zeros, the kept values equal to float32
              // rounding of the two engines' propagation (measured ≤ 1e-4).
              const d = Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), 1e-3);
              if (d > tol || (a[i] === 0) !== (b[i] === 0)) differing++;
            }
            total += a.length;
          }
          assert.ok(differing / total < 2e-3, `${differing} of ${total} weights differ`);

          const windows = await loadEvaluationWindows({
            path: `${SHARED_DIR}data/tinystories_eval.txt`,
            tokenizer: await loadTokenizer(STORIES),
            seqLen: 256,
            windows: 8,
          });
          const pplOf = async (ckpt: CompressedCheckpoint) => {
            const model = await DecoderModel.load(ckpt, new CpuEngine());
            try {
              return (await perplexity(model, windows)).ppl;
            } finally {
              model.close();
            }
          };
          const [pa, pb] = [await pplOf(gpu), await pplOf(cpu)];
          assert.ok(Math.abs(pa / pb - 1) < 2e-3, `ppl webgpu ${pa} vs cpu ${pb}`);
          console.log(
            `${what} ${samples}×128: ppl webgpu ${pa.toFixed(4)}, cpu ${pb.toFixed(4)}; ` +
              `${differing}/${total} weights differ`,
          );
        } finally {
          gpu.close();
          cpu.close();
        }
      });
    },
  });
}
