import assert from "node:assert/strict";
import { HfModel } from "../../src/io/hf_model.ts";
import { SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import type { TensorToWrite } from "../../src/io/safetensors_write.ts";
import { checkModelTensors, expectedTensorShapes } from "../../src/model/expected_tensors.ts";
import { DecoderModelError } from "../../src/model/model_error.ts";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import type { SyntheticSpec } from "../../src/model/synthetic_model.ts";
import { oneshot } from "../../src/oneshot.ts";

const SPEC: SyntheticSpec = {
  modelType: "qwen3",
  hidden: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 48,
  vocab: 64,
  tied: true,
};

/** Writes a synthetic model, then lets `edit` change its tensor list. */
async function editedModel(
  spec: SyntheticSpec,
  edit: (tensors: TensorToWrite[]) => TensorToWrite[],
): Promise<{ dir: string; remove(): Promise<void> }> {
  const m = await writeSyntheticModel(spec);
  const path = `${m.dir}/model.safetensors`;
  const f = await SafetensorsFile.open(path);
  const tensors: TensorToWrite[] = [];
  for (const name of f.names()) {
    const info = f.info(name);
    tensors.push({ name, dtype: info.dtype, shape: [...info.shape], data: await f.readRaw(name) });
  }
  f.close();
  await writeSafetensors(path, edit(tensors), { overwrite: true });
  return m;
}

async function check(dir: string): Promise<string[]> {
  const model = await HfModel.open(dir);
  const warnings: string[] = [];
  try {
    checkModelTensors(model, model.config, dir, (w) => warnings.push(w));
  } finally {
    model.close();
  }
  return warnings;
}

Deno.test("the expected table covers every tensor of each supported architecture", async () => {
  for (const modelType of ["llama", "mistral", "qwen2", "qwen3"] as const) {
    for (const tied of [true, false]) {
      const m = await writeSyntheticModel({ ...SPEC, modelType, tied });
      try {
        assert.deepEqual(await check(m.dir), [], `${modelType} tied=${tied}`);
        const model = await HfModel.open(m.dir);
        const expected = expectedTensorShapes(model.config);
        assert.equal(expected.get("lm_head.weight")!.optional, tied);
        for (const name of model.tensorNames()) {
          assert.deepEqual([...model.info(name).shape], [...expected.get(name)!.shape], name);
        }
        model.close();
      } finally {
        await m.remove();
      }
    }
  }
});

Deno.test("a transposed gate_proj is refused when the model is opened, before any output", async () => {
  const gate = "model.layers.1.mlp.gate_proj.weight";
  const m = await editedModel(
    SPEC,
    (ts) => ts.map((t) => t.name === gate ? { ...t, shape: [t.shape[1], t.shape[0]] } : t),
  );
  const out = `${m.dir}-out`;
  try {
    await assert.rejects(
      oneshot({ model: m.dir, scheme: "W8A16", outputDir: out, onWarning: () => {} }),
      (e) => {
        assert.ok(e instanceof DecoderModelError, String(e));
        assert.match(
          e.message,
          new RegExp(
            `^${m.dir}: tensor '${gate}' has shape \\[32,48\\]; a qwen3 model with this ` +
              `config.json \\(hidden_size 32, intermediate_size 48, .*\\) expects \\[48,32\\]$`,
          ),
        );
        return true;
      },
    );
    const parent = out.slice(0, out.lastIndexOf("/"));
    const base = out.slice(out.lastIndexOf("/") + 1);
    assert.deepEqual(
      [...Deno.readDirSync(parent)].filter((e) => e.name.startsWith(base)),
      [],
      "nothing written",
    );
  } finally {
    await m.remove();
  }
});

Deno.test("missing tensors and non-float dtypes are errors; unexpected tensors warn", async () => {
  const missing = await editedModel(
    { ...SPEC, tied: false },
    (ts) => ts.filter((t) => t.name !== "lm_head.weight"),
  );
  const extra = await editedModel(SPEC, (ts) => [
    ...ts,
    {
      name: "model.layers.0.self_attn.rotary_emb.inv_freq",
      dtype: "F32",
      shape: [4],
      data: new Uint8Array(16),
    },
  ]);
  const ints = await editedModel(
    SPEC,
    (ts) => ts.map((t) => t.name === "model.norm.weight" ? { ...t, dtype: "I32" as const } : t),
  );
  try {
    await assert.rejects(check(missing.dir), (e) => {
      assert.ok(e instanceof DecoderModelError);
      assert.match(e.message, /lm_head\.weight: missing from the checkpoint; .* shape \[64,32\]/);
      return true;
    });
    const warnings = await check(extra.dir);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /1 tensor\(s\) .* ignored: model\.layers\.0\.self_attn\.rotary_emb/);
    await assert.rejects(check(ints.dir), /'model\.norm\.weight' has dtype I32; expected a dense/);
  } finally {
    for (const m of [missing, extra, ints]) await m.remove();
  }
});
