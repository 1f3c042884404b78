/**
 * The recipes a user copies: three runnable scripts end to end on
 * stories260K (a calibrated FP8 + KV cache run, a calibrated NVFP4 run, a
 * data-free W4A16 run), and every YAML recipe parses and plans.
 */

import { MODEL_TRANSFORMS } from "../../src/modifiers/model_transforms.ts";
import assert from "node:assert/strict";
import { HfModel } from "../../src/io/hf_model.ts";
import { loadRecipe } from "../../src/recipe/load.ts";
import { assertSupported } from "../../src/recipe/supported.ts";
import { planModifier } from "../../src/pipelines/modifier_plan.ts";
import { QuantizationShapeError } from "../../src/quant/errors.ts";
import { tempDirRunner } from "../_shared.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const STORIES = decodeURIComponent(
  new URL("../../../shared/models/stories260K", import.meta.url).pathname,
);

async function runScript(script: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `recipes/${script}`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: r.code, out: text.decode(r.stdout) + text.decode(r.stderr) };
}

const withTempDir = tempDirRunner("llmc-recipes-test-");

Deno.test({
  name: "recipe scripts run end to end with their default model and data",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const small = ["--num-calibration-samples", "8", "--max-seq-length", "128"];
      const fp8 = await runScript("fp8_static_kv_cache.ts", [
        ...small,
        "--output-dir",
        `${dir}/fp8`,
      ]);
      assert.equal(fp8.code, 0, fp8.out);
      assert.match(fp8.out, /wrote .*\(sequential\)/);
      const nvfp4 = await runScript("nvfp4.ts", [...small, "--output-dir", `${dir}/nvfp4`]);
      assert.equal(nvfp4.code, 0, nvfp4.out);
      assert.match(nvfp4.out, /down_proj has 172 input features/);
      const w4 = await runScript("w4a16_rtn.ts", ["--output-dir", `${dir}/w4`]);
      assert.equal(w4.code, 0, w4.out);
      assert.match(w4.out, /wrote .*\(datafree\)/);

      const open = (d: string) => HfModel.open(`${dir}/${d}`);
      const a = await open("fp8");
      const b = await open("nvfp4");
      const c = await open("w4");
      try {
        assert.ok(
          a.has("model.layers.4.self_attn.k_scale") &&
            a.has("model.layers.4.mlp.down_proj.input_scale"),
        );
        assert.ok(b.has("model.layers.0.self_attn.q_proj.input_global_scale"));
        assert.ok(
          b.has("model.layers.0.mlp.down_proj.weight") &&
            !b.has("model.layers.0.mlp.down_proj.weight_packed"),
        );
        assert.equal(c.info("model.layers.0.mlp.up_proj.weight_packed").dtype, "I32");
      } finally {
        for (const m of [a, b, c]) m.close();
      }
    });
  },
});

Deno.test("YAML recipes parse, are supported, and plan on stories260K where shapes allow", async () => {
  const hf = await HfModel.open(STORIES);
  try {
    const files = [...Deno.readDirSync(`${ROOT}recipes`)].map((e) => e.name).filter((n) =>
      n.endsWith(".yaml")
    );
    assert.ok(files.length >= 6, files.join(" "));
    for (const f of files.sort()) {
      const recipe = await loadRecipe(`${ROOT}recipes/${f}`);
      for (const m of recipe.modifiers) {
        assertSupported(m);
        const transform = MODEL_TRANSFORMS.get(m.type);
        if (transform !== undefined) {
          transform.plan(hf.config, m); // whole-model transforms (SpinQuant) plan on the config
          continue;
        }
        // Group-128 (incl. the W4A16_ASYM preset of AWQ and the MoE W4A16 recipes) and NVFP4
        // (group 16) do not tile stories260K's 64/172-wide Linears.
        if (
          /actorder_group|nvfp4|awq|moe_w4a16|mixtral_w4a16/.test(f) &&
          m.type !== "SparseGPTModifier"
        ) {
          assert.throws(() => planModifier(hf, m), QuantizationShapeError, f);
        } else {
          planModifier(hf, m);
        }
      }
    }
  } finally {
    hf.close();
  }
});
