/**
 * Data-free quantization of synthetic MoE checkpoints (mixtral, qwen2_moe,
 * qwen3_moe) with llm-compressor's example recipes (FP8 dynamic, routers
 * ignored) and W4A16 round-to-nearest: every expert's tensors are byte for
 * byte what the dense per-module RTN path (SPEC §1.9, `rtnQuantizeLinears`)
 * writes for that weight, routers and the shared-expert gate stay dense and
 * unchanged, and config.json names what was ignored. Model-free PTQ on the
 * same safetensors writes the same checkpoint.
 */

import { testEngine } from "../_engines.ts";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { assertClose } from "../model/_assert.ts";
import { modelFreePtq } from "../../src/model_free/mod.ts";
import { layerLinearModules, moeModuleNames } from "../../src/model/moe_names.ts";
import { layerPrefix } from "../../src/model/module_names.ts";
import {
  layerFusedSets,
  planLinearQuantization,
  rtnQuantizeLinears,
} from "../../src/modifiers/quantization/mod.ts";
import { oneshot } from "../../src/oneshot.ts";
import { loadRecipe } from "../../src/recipe/load.ts";
import type { QuantizationModifierSpec } from "../../src/recipe/modifiers.ts";
import { resolveQuantizationConfig } from "../../src/recipe/resolve.ts";
import { assert, assertEquals } from "../oneshot/_assert.ts";
import { readAll, withTempDir } from "../oneshot/_helpers.ts";
import { MOE_QUANT_SPECS, writeMoeModel } from "./_moe.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const quiet = { onWarning: () => {} };

function routerIgnores(modelType: string): string[] {
  return modelType === "mixtral"
    ? ["lm_head", "re:.*block_sparse_moe.gate"]
    : ["lm_head", "re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"];
}

async function recipeFor(dir: string, modelType: string, scheme: string): Promise<string> {
  // The upstream example recipes, unchanged, where the repository has them.
  const file = `${ROOT}recipes/${modelType}_fp8_dynamic.yaml`;
  if (scheme === "FP8_DYNAMIC" && modelType !== "qwen2_moe") return file;
  const path = `${dir}/${modelType}_${scheme}.yaml`;
  await Deno.writeTextFile(
    path,
    `quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n` +
      `      scheme: ${scheme}\n      ignore: ${JSON.stringify(routerIgnores(modelType))}\n`,
  );
  return path;
}

for (const [name, spec] of Object.entries(MOE_QUANT_SPECS)) {
  for (const scheme of ["W4A16", "FP8_DYNAMIC"]) {
    Deno.test(`${name} ${scheme} RTN: experts as the dense per-module path, routers dense`, async () => {
      await withTempDir(async (dir) => {
        const src = await writeMoeModel(spec, `${dir}/model`);
        const recipe = await recipeFor(dir, name, scheme);
        const out = `${dir}/out`;
        await oneshot({ model: src, recipe, outputDir: out, ...quiet });
        const hf = await HfModel.open(src);
        try {
          const mod = (await loadRecipe(recipe)).modifiers[0] as QuantizationModifierSpec;
          const plan = planLinearQuantization(hf, resolveQuantizationConfig(mod));
          const written = await readAll(`${out}/model.safetensors`);
          const byName = new Map(written.map((t) => [t.name, t]));
          const names = moeModuleNames(hf.config);
          const fakeQuantized = new Map<string, Float32Array>();
          let experts = 0;
          for (let k = 0; k < hf.config.numHiddenLayers; k++) {
            const all = layerLinearModules(hf.config, k).map((l) => `${layerPrefix(k)}.${l}`);
            const dense = [names.router, ...(names.shared ? [names.shared.sharedGate] : [])]
              .map((l) => `${layerPrefix(k)}.${l}`);
            const layer = plan.linears.filter((l) => l.layer === k && l.scheme !== null);
            // Every Linear but the routers (and the shared-expert gate) is quantized.
            assertEquals(
              layer.map((l) => l.name).sort(),
              all.filter((n) => !dense.includes(n)).sort(),
            );
            const expected = rtnQuantizeLinears(
              await Promise.all(layer.map(async (l) => ({
                name: l.name,
                values: await hf.readF32(l.weightTensor),
                shape: l.shape,
                scheme: l.scheme!,
                format: l.format!,
                dtype: "F32" as const,
              }))),
              { fusedSets: layerFusedSets(k, hf.config, () => false), fakeQuantize: true },
            );
            for (const q of expected) {
              fakeQuantized.set(`${q.name}.weight`, q.fakeQuantized!);
              for (const t of q.tensors) {
                const got = byName.get(t.name);
                assert(got !== undefined, `${t.name} written`);
                assertEquals([got.dtype, got.shape], [t.dtype, t.shape], t.name);
                assert(got.data.every((b, i) => b === t.data[i]), `${t.name}: bytes differ`);
              }
              assert(!byName.has(`${q.name}.weight`) || scheme === "FP8_DYNAMIC", q.name);
              if (q.name.includes(".experts.")) experts++;
            }
            for (const d of dense) {
              const got = byName.get(`${d}.weight`)!;
              const raw = await hf.readRaw(`${d}.weight`);
              assertEquals(got.dtype, "F32", d);
              assert(got.data.every((b, i) => b === raw[i]), `${d} is left as it was`);
              assert(!byName.has(`${d}.weight_scale`), `${d} has no qparams`);
            }
          }
          assertEquals(experts, 2 * 3 * spec.moe!.experts, "every expert Linear quantized");
          const qc = JSON.parse(await Deno.readTextFile(`${out}/config.json`)).quantization_config;
          assertEquals(qc.format, scheme === "W4A16" ? "pack-quantized" : "float-quantized");
          assert(qc.ignore.includes(`model.layers.1.${names.router}`), JSON.stringify(qc.ignore));
          assertEquals(qc.config_groups.group_0.targets, ["Linear"]);
          // The checkpoint loads like a dense one's: decompressed, its forward is
          // the reference forward with every quantized weight fake-quantized.
          const ckpt = await CompressedCheckpoint.open(out);
          const model = await DecoderModel.load(ckpt, await testEngine("webgpu"));
          try {
            const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % spec.vocab);
            const expected = await referenceForward(hf, ids, { weights: fakeQuantized });
            assertClose(await model.forward(ids), expected.logits, 1e-4, `${name} ${scheme}`);
          } finally {
            model.close();
            ckpt.close();
          }
        } finally {
          hf.close();
        }
      });
    });
  }
}

Deno.test("model-free PTQ on MoE safetensors writes what oneshot writes", async () => {
  await withTempDir(async (dir) => {
    const src = await writeMoeModel(MOE_QUANT_SPECS.qwen2_moe, `${dir}/model`);
    const ignore = routerIgnores("qwen2_moe");
    await oneshot({ model: src, scheme: "FP8_DYNAMIC", ignore, outputDir: `${dir}/os`, ...quiet });
    const r = await modelFreePtq(src, `${dir}/mf`, "FP8_DYNAMIC", [
      "re:.*embed_tokens$",
      ...ignore,
    ], quiet);
    // 2 layers × (4 attention + 4 experts × 3 + 3 shared expert).
    assertEquals(r.quantized, 2 * (4 + 12 + 3));
    const a = await readAll(`${dir}/os/model.safetensors`);
    const b = await readAll(`${dir}/mf/model.safetensors`);
    assertEquals(b.map((t) => t.name).sort(), a.map((t) => t.name).sort());
    const byName = new Map(b.map((t) => [t.name, t]));
    for (const t of a) {
      const u = byName.get(t.name)!;
      assert(u.dtype === t.dtype && u.data.every((x, j) => x === t.data[j]), `${t.name} differs`);
    }
  });
});
