/**
 * Evidence of compatibility: for every llm-compressor 0.9 reference
 * checkpoint of stories260K, `oneshot` with the same recipe writes the same
 * checkpoint — tensor names, dtypes, shapes and order; qparams byte for
 * byte; codes identical up to rare rounding-tie flips of one step; the same
 * `quantization_config`, config.json and recipe.yaml — and decompressing it
 * gives the fake-quantized original weights.
 */

import { assert, assertEquals } from "./_assert.ts";
import { exists, SHARED_DIR } from "../_shared.ts";
import { readAll, REFERENCES, STORIES, withTempDir } from "./_helpers.ts";
import type { CompressedTensor } from "../../src/compress/compressed_tensor.ts";
import { decompressModule } from "../../src/compress/compress_module.ts";
import { unpackInt32 } from "../../src/compress/pack_int32.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import {
  layerFusedSets,
  planLinearQuantization,
  rtnQuantizeLinears,
} from "../../src/modifiers/quantization/mod.ts";
import { oneshot } from "../../src/oneshot.ts";
import { parsePythonJson } from "../../src/quant/python_json.ts";
import type { JsonValue } from "../../src/quant/python_json.ts";
import { stableStringify } from "../../src/quant/stable_stringify.ts";
import { loadRecipe } from "../../src/recipe/load.ts";
import { resolveQuantizationConfig } from "../../src/recipe/resolve.ts";
import type { QuantizationModifierSpec } from "../../src/recipe/modifiers.ts";

const CODE_SUFFIXES = [".weight_packed", ".weight"];

/** Signed ordinal of a code so that neighbouring grid values differ by 1. */
function ordinals(t: CompressedTensor, bits: number): Int32Array {
  if (t.dtype === "I32") {
    const words = new Int32Array(t.data.slice().buffer);
    const [rows, packedCols] = t.shape;
    const cols = packedCols * (32 / bits);
    return Int32Array.from(unpackInt32(words, rows, cols, bits, 1));
  }
  if (t.dtype === "F8_E4M3") return Int32Array.from(t.data, (b) => (b & 0x80 ? -(b & 0x7f) : b));
  if (t.dtype === "U8") {
    const out = new Int32Array(t.data.length * 2);
    t.data.forEach((b, i) => {
      for (const [k, n] of [[0, b & 0xf], [1, b >> 4]]) out[2 * i + k] = n & 8 ? -(n & 7) : n;
    });
    return out;
  }
  throw new Error(`${t.name}: no code ordinals for ${t.dtype}`);
}

function configWithoutVersionKeys(text: string): string {
  const c = parsePythonJson(text) as Record<string, JsonValue>;
  // transformers 4.57 renames torch_dtype to dtype and stamps its version on
  // save; llmc keeps the source config's own keys.
  for (const k of ["dtype", "torch_dtype", "transformers_version"]) delete c[k];
  return stableStringify(c);
}

for (const ref of REFERENCES) {
  Deno.test(`oneshot reproduces llm-compressor's ${ref}`, async () => {
    await withTempDir(async (dir) => {
      const refDir = `${SHARED_DIR}reference/${ref}`;
      const out = `${dir}/out`;
      const result = await oneshot({
        model: STORIES,
        recipe: `${refDir}/input_recipe.yaml`,
        outputDir: out,
        onWarning: () => {},
      });
      assertEquals(result.pipeline, "datafree");
      assertEquals(result.files, ["model.safetensors"]);

      const ours = await readAll(`${out}/model.safetensors`);
      const theirs = await readAll(`${refDir}/model.safetensors`);
      const layout = (ts: CompressedTensor[]) => ts.map((t) => `${t.name} ${t.dtype} [${t.shape}]`);
      assertEquals(layout(ours), layout(theirs), "names, dtypes, shapes and order");

      const refConfigText = await Deno.readTextFile(`${refDir}/config.json`);
      const groups = JSON.parse(refConfigText).quantization_config.config_groups;
      const bits = groups.group_0.weights.num_bits as number;
      let codes = 0;
      let flips = 0;
      for (let i = 0; i < theirs.length; i++) {
        const a = ours[i];
        const b = theirs[i];
        const isCode = CODE_SUFFIXES.some((s) => a.name.endsWith(s)) && a.dtype !== "F32";
        if (!isCode) {
          assert(
            a.data.length === b.data.length && a.data.every((x, j) => x === b.data[j]),
            `${a.name} must be byte-identical`,
          );
          continue;
        }
        const oa = ordinals(a, bits);
        const ob = ordinals(b, bits);
        codes += oa.length;
        for (let j = 0; j < oa.length; j++) {
          if (oa[j] === ob[j]) continue;
          flips++;
          assert(
            Math.abs(oa[j] - ob[j]) <= 1,
            `${a.name}[${j}]: ${oa[j]} vs ${ob[j]} is more than a tie flip`,
          );
        }
      }
      assert(codes > 100_000, `only ${codes} codes compared`);
      assert(flips * 10_000 < codes, `${flips} rounding flips in ${codes} codes`);

      const ourConfigText = await Deno.readTextFile(`${out}/config.json`);
      assertEquals(
        JSON.parse(ourConfigText).quantization_config,
        JSON.parse(refConfigText).quantization_config,
      );
      assertEquals(
        configWithoutVersionKeys(ourConfigText),
        configWithoutVersionKeys(refConfigText),
      );
      assert(
        ourConfigText.includes('"rope_theta": 10000.0,') &&
          ourConfigText.includes('"rms_norm_eps": 1e-05,'),
      );
      assertEquals(
        await Deno.readTextFile(`${out}/recipe.yaml`),
        await Deno.readTextFile(`${refDir}/recipe.yaml`),
      );
      for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
        assert(await exists(`${out}/${f}`), `${f} copied`);
      }
    });
  });
}

Deno.test("decompressing llmc's checkpoints gives the fake-quantized original weights", async () => {
  await withTempDir(async (dir) => {
    const model = await HfModel.open(STORIES);
    try {
      for (const ref of REFERENCES) {
        const recipePath = `${SHARED_DIR}reference/${ref}/input_recipe.yaml`;
        const out = `${dir}/${ref}`;
        await oneshot({ model, recipe: recipePath, outputDir: out, onWarning: () => {} });
        const tensors = await readAll(`${out}/model.safetensors`);
        const mod = (await loadRecipe(recipePath)).modifiers[0] as QuantizationModifierSpec;
        const plan = planLinearQuantization(model, resolveQuantizationConfig(mod));
        let checked = 0;
        for (let k = 0; k < model.config.numHiddenLayers; k++) {
          const layer = plan.linears.filter((l) => l.layer === k && l.scheme !== null);
          const fq = rtnQuantizeLinears(
            await Promise.all(layer.map(async (l) => ({
              name: l.name,
              values: await model.readF32(l.weightTensor),
              shape: l.shape,
              scheme: l.scheme!,
              format: l.format!,
              dtype: "F32" as const,
            }))),
            {
              fakeQuantize: true,
              fusedSets: layerFusedSets(
                k,
                "llama",
                (n) =>
                  layer.some((l) => l.name === n && l.scheme!.weights!.strategy === "tensor_group"),
              ),
            },
          );
          for (let i = 0; i < layer.length; i++) {
            const l = layer[i];
            const own = tensors.filter((t) => t.name.startsWith(`${l.name}.`));
            const { weight, shape } = decompressModule(l.name, own, l.scheme!, l.format);
            assertEquals(shape, [...l.shape]);
            const expected = fq[i].fakeQuantized!;
            assert(
              weight.every((v, j) => Object.is(v, expected[j]) || v === expected[j]),
              `${ref}: ${l.name} decompresses to its fake-quantized weight`,
            );
            checked++;
          }
        }
        assert(checked >= 25, `${ref}: ${checked} modules checked`);
      }
    } finally {
      model.close();
    }
  });
});
