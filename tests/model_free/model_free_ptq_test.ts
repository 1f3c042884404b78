/**
 * Model-free PTQ (§3.7): same tensors as oneshot (as upstream's tests
 * assert), its own quantization_config, sharded sources, atomic output, and
 * errors before any output.
 */

import { assert, assertEquals, assertRejects } from "../oneshot/_assert.ts";
import { exists } from "../_shared.ts";
import { listDir, readAll, STORIES, withTempDir } from "../oneshot/_helpers.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import { AtomicDirError } from "../../src/io/atomic_dir.ts";
import { ModelFreeError, modelFreePtq } from "../../src/model_free/mod.ts";
import { oneshot } from "../../src/oneshot.ts";
import { QuantizationShapeError } from "../../src/quant/errors.ts";
import { presetScheme } from "../../src/quant/presets.ts";

const quiet = { onWarning: () => {} };
const NOT_LINEAR = ["re:.*embed_tokens$", "lm_head"];

Deno.test("model-free output equals oneshot output, tensor for tensor", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, string[]][] = [
      ["FP8_DYNAMIC", []],
      ["W8A16", []],
      ["NVFP4A16", ["re:.*down_proj$"]],
      ["MXFP4A16", ["re:.*down_proj$"]],
      ["W8A8", []],
    ];
    for (const [preset, extra] of cases) {
      await oneshot({
        model: STORIES,
        scheme: preset,
        ignore: ["lm_head", ...extra],
        outputDir: `${dir}/os-${preset}`,
        ...quiet,
      });
      const r = await modelFreePtq(STORIES, `${dir}/mf-${preset}`, preset, [
        ...NOT_LINEAR,
        ...extra,
      ], quiet);
      assertEquals(r.quantized, extra.length ? 30 : 35, preset);
      const a = await readAll(`${dir}/os-${preset}/model.safetensors`);
      const b = await readAll(`${dir}/mf-${preset}/model.safetensors`);
      assertEquals(
        b.map((t) => t.name),
        a.map((t) => t.name),
        `${preset}: same tensors in the same order`,
      );
      for (let i = 0; i < a.length; i++) {
        assert(
          a[i].dtype === b[i].dtype && a[i].data.every((x, j) => x === b[i].data[j]),
          `${preset}: ${a[i].name} differs`,
        );
      }
    }
  });
});

Deno.test("config.json gets the model-free quantization_config; other files are copied", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    const notes: string[] = [];
    await modelFreePtq(STORIES, out, "nvfp4a16", [...NOT_LINEAR, "re:.*down_proj$"], {
      onWarning: (m) => notes.push(m),
    });
    assertEquals(listDir(out), [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const text = await Deno.readTextFile(`${out}/config.json`);
    assert(text.includes('"rope_theta": 10000.0'));
    const qc = JSON.parse(text).quantization_config;
    assertEquals(Object.keys(qc.config_groups), ["NVFP4A16"]);
    const g = qc.config_groups.NVFP4A16;
    assertEquals(g.targets, ["Linear"]);
    assertEquals(g.format, "nvfp4-pack-quantized");
    assertEquals(g.weights.observer, "static_minmax");
    assertEquals(qc.ignore, [...NOT_LINEAR, "re:.*down_proj$"], "the user's ignore list, verbatim");
    assertEquals(qc.format, "nvfp4-pack-quantized");
    assertEquals(qc.quantization_status, "compressed");
    assertEquals(qc.kv_cache_scheme, null);
    assertEquals(Object.keys(qc), Object.keys(qc).sort());
    assert(notes.some((n) => n.includes("static_minmax")));
    const custom = `${dir}/custom`;
    await modelFreePtq(STORIES, custom, presetScheme("W8A16", ["re:.*proj$"]), NOT_LINEAR, quiet);
    const cg = JSON.parse(await Deno.readTextFile(`${custom}/config.json`)).quantization_config
      .config_groups;
    assertEquals(Object.keys(cg), ["config_group_0"]);
    assertEquals(cg.config_group_0.targets, ["re:.*proj$", "Linear"]);
  });
});

/** stories260K split into two shards (layers 0-2 and the rest) with an index. */
async function shardedStories(dir: string, splitQkv = false): Promise<void> {
  for (const e of Deno.readDirSync(STORIES)) {
    if (e.name !== "model.safetensors") {
      await Deno.copyFile(`${STORIES}/${e.name}`, `${dir}/${e.name}`);
    }
  }
  const all = await readAll(`${STORIES}/model.safetensors`);
  const first = (n: string) =>
    /^model\.layers\.[0-2]\./.test(n) &&
    !(splitQkv && n === "model.layers.2.self_attn.v_proj.weight");
  const files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
  const weightMap: Record<string, string> = {};
  for (const [i, keep] of [first, (n: string) => !first(n)].entries()) {
    const part = all.filter((t) => keep(t.name));
    for (const t of part) weightMap[t.name] = files[i];
    await writeSafetensors(`${dir}/${files[i]}`, part.map((t) => ({ ...t, shape: [...t.shape] })));
  }
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }),
  );
}

Deno.test("every X.weight not ending in norm is quantized, embeddings included", async () => {
  await withTempDir(async (dir) => {
    await modelFreePtq(STORIES, `${dir}/out`, "FP8_DYNAMIC", [], quiet);
    const names = (await readAll(`${dir}/out/model.safetensors`)).map((t) =>
      `${t.name} ${t.dtype}`
    );
    assert(names.includes("model.embed_tokens.weight F8_E4M3"));
    assert(names.includes("model.embed_tokens.weight_scale F32"));
    assert(names.includes("model.norm.weight F32"));
    assert(names.includes("model.layers.0.input_layernorm.weight F32"));
  });
});

Deno.test("sharded sources keep their file names and get a rewritten index", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await shardedStories(src);
    const out = `${dir}/out`;
    const progress: string[] = [];
    const r = await modelFreePtq(src, out, "NVFP4A16", [...NOT_LINEAR, "re:.*down_proj$"], {
      ...quiet,
      onProgress: (e) => progress.push(`${e.file}:${e.quantized}`),
    });
    assertEquals(progress, [
      "model-00001-of-00002.safetensors:18",
      "model-00002-of-00002.safetensors:12",
    ]);
    const index = JSON.parse(await Deno.readTextFile(`${out}/model.safetensors.index.json`));
    assertEquals(index.metadata.total_size, r.totalSize);
    assertEquals(
      index.weight_map["model.layers.1.self_attn.q_proj.weight_packed"],
      "model-00001-of-00002.safetensors",
    );
    assertEquals(
      index.weight_map["model.layers.4.mlp.up_proj.weight_global_scale"],
      "model-00002-of-00002.safetensors",
    );
    const single = `${dir}/single`;
    await modelFreePtq(STORIES, single, "NVFP4A16", [...NOT_LINEAR, "re:.*down_proj$"], quiet);
    const joined = new Map(
      [
        ...await readAll(`${out}/model-00001-of-00002.safetensors`),
        ...await readAll(`${out}/model-00002-of-00002.safetensors`),
      ]
        .map((t) => [t.name, t]),
    );
    for (const t of await readAll(`${single}/model.safetensors`)) {
      const u = joined.get(t.name);
      assert(
        u !== undefined && u.data.every((x, i) => x === t.data[i]),
        `${t.name} equal to the single-file run`,
      );
    }
    assertEquals(joined.size, Object.keys(index.weight_map).length);
  });
});

Deno.test("bad input is refused before any output is written", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/split`;
    await Deno.mkdir(src);
    await shardedStories(src, true);
    const out = `${dir}/out`;
    await assertRejects(
      () => modelFreePtq(src, out, "NVFP4A16", [...NOT_LINEAR, "re:.*down_proj$"], quiet),
      ModelFreeError,
      "needs each fused set (q/k/v, gate/up) in one safetensors file",
    );
    // Without tensor_group scales nothing is fused, so the split does not matter.
    await modelFreePtq(src, `${dir}/fp8`, "FP8_DYNAMIC", NOT_LINEAR, quiet);
    await assertRejects(
      () => modelFreePtq(STORIES, out, "FP8", NOT_LINEAR, quiet),
      ModelFreeError,
      "cannot calibrate activations",
    );
    await assertRejects(
      () => modelFreePtq(STORIES, out, "NVFP4", NOT_LINEAR, quiet),
      ModelFreeError,
      "cannot calibrate activations",
    );
    await assertRejects(
      () => modelFreePtq(STORIES, out, "W4A16", NOT_LINEAR, quiet),
      QuantizationShapeError,
      "not divisible by group_size 128",
    );
    const odd = `${dir}/odd`;
    await Deno.mkdir(odd);
    await Deno.copyFile(`${STORIES}/config.json`, `${odd}/config.json`);
    await writeSafetensors(`${odd}/model.safetensors`, [
      { name: "model.scale.weight", dtype: "F32", shape: [4], data: new Uint8Array(16) },
    ]);
    await assertRejects(
      () => modelFreePtq(odd, out, "FP8_DYNAMIC", [], quiet),
      ModelFreeError,
      "not a 2-D Linear weight; add 'model.scale' to ignore",
    );
    assert(!await exists(out));
    await Deno.mkdir(out);
    await assertRejects(
      () => modelFreePtq(STORIES, out, "FP8_DYNAMIC", NOT_LINEAR, quiet),
      AtomicDirError,
      "already exists",
    );
    assertEquals(listDir(out), []);
    assertEquals(listDir(dir).filter((n) => n.includes("tmp")), [], "no temporary folders left");
  });
});
