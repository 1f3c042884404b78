/**
 * oneshot's contract beyond the reference recipes: pipeline selection,
 * errors before any output, refusing to overwrite, atomic output after a
 * crash and resume, untied lm_head quantization, BF16 models, sharding.
 */

import { assert, assertEquals, assertRejects, assertThrows } from "./_assert.ts";
import { exists } from "../_shared.ts";
import { listDir, readAll, STORIES, storiesAs, withTempDir } from "./_helpers.ts";
import { decompressModule } from "../../src/compress/compress_module.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { bytesToF32 } from "../../src/io/tensor_bytes.ts";
import { rtnQuantizeLinears } from "../../src/modifiers/quantization/mod.ts";
import {
  CalibrationRequiredError,
  oneshot,
  OneshotError,
  selectPipeline,
} from "../../src/oneshot.ts";
import { QuantizationShapeError } from "../../src/quant/errors.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import {
  GPTQModifier,
  QuantizationModifier,
  recipeFromModifiers,
} from "../../src/recipe/constructors.ts";
import { RecipeError, UnsupportedModifierError } from "../../src/recipe/errors.ts";
import { CheckpointSinkError } from "../../src/sink/sink_error.ts";

const quiet = { onWarning: () => {} };

/** Equal as numbers (so 0 and −0 match: a code of 0 has no sign once packed). */
function assertSameValues(a: Float32Array, b: Float32Array): void {
  assertEquals(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert(a[i] === b[i], `element ${i}: ${a[i]} vs ${b[i]}`);
}

Deno.test("selectPipeline follows §3.6: one data-free QuantizationModifier runs datafree", () => {
  const r = (...m: Parameters<typeof recipeFromModifiers>[0]) => recipeFromModifiers(m);
  for (
    const scheme of [
      "W4A16",
      "W8A16",
      "FP8_DYNAMIC",
      "W8A8",
      "W4A8",
      "FP8_BLOCK",
      "NVFP4A16",
      "MXFP4A16",
      "MXFP4",
      "W4AFP8",
    ]
  ) {
    assertEquals(selectPipeline(r(QuantizationModifier({ scheme }))), "datafree", scheme);
  }
  for (const scheme of ["FP8", "NVFP4"]) {
    assertEquals(selectPipeline(r(QuantizationModifier({ scheme }))), "sequential", scheme);
  }
  const kv = QuantizationModifier({
    scheme: "FP8_DYNAMIC",
    kvCacheScheme: {
      num_bits: 8,
      type: "float",
      strategy: "tensor",
      dynamic: false,
      symmetric: true,
    },
  });
  assertEquals(selectPipeline(r(kv)), "sequential");
  assertEquals(selectPipeline(r(GPTQModifier({ scheme: "W4A16" }))), "sequential");
  assertEquals(
    selectPipeline(
      r(
        QuantizationModifier({ scheme: "W8A16" }),
        QuantizationModifier({ scheme: "W8A16", group: "b" }),
      ),
    ),
    "sequential",
  );
  assertThrows(
    () => selectPipeline(r(QuantizationModifier({ scheme: "FP8" })), "datafree"),
    CalibrationRequiredError,
    "statically",
  );
  const notes: string[] = [];
  assertEquals(
    selectPipeline(r(QuantizationModifier({ scheme: "W8A16" })), "basic", (m) => notes.push(m)),
    "basic",
  );
  assertEquals(notes.length, 1);
});

Deno.test("recipes that need calibration fail clearly, before any output", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    const cases: [Parameters<typeof oneshot>[0], new (...a: never[]) => Error, string][] = [
      [
        { model: STORIES, scheme: "FP8", ignore: ["lm_head"], outputDir: out },
        CalibrationRequiredError,
        "needs calibration data for the sequential pipeline: pass dataset",
      ],
      [
        { model: STORIES, scheme: "NVFP4", ignore: ["lm_head", "re:.*down_proj$"], outputDir: out },
        CalibrationRequiredError,
        "dynamic: local",
      ],
      [
        { model: STORIES, recipe: [GPTQModifier({ scheme: "W8A16" })], outputDir: out },
        CalibrationRequiredError,
        "GPTQModifier needs calibration data",
      ],
      [
        {
          model: STORIES,
          recipe:
            "quant_stage: {quant_modifiers: {SmoothQuantModifier: {smoothing_strength: 0.8}}}",
          outputDir: out,
        },
        CalibrationRequiredError,
        "SmoothQuantModifier needs calibration data",
      ],
      [
        {
          model: STORIES,
          recipe: "quant_stage: {quant_modifiers: {AutoRoundModifier: {scheme: W4A16}}}",
          outputDir: out,
        },
        UnsupportedModifierError,
        "AutoRoundModifier",
      ],
    ];
    for (const [options, cls, text] of cases) {
      await assertRejects(() => oneshot({ ...options, ...quiet }), cls, text);
      assertEquals(listDir(dir), [], `nothing written for ${text}`);
    }
  });
});

Deno.test("bad input is reported before any output is written", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    const e = await assertRejects(
      () =>
        oneshot({ model: STORIES, scheme: "W4A16", ignore: ["lm_head"], outputDir: out, ...quiet }),
      QuantizationShapeError,
      "model.layers.0.self_attn.q_proj: 64 columns (in_features) are not divisible by group_size 128",
    );
    assert(e.message.includes("crashes"), "says what upstream 0.9 does");
    await assertRejects(
      () =>
        oneshot({
          model: STORIES,
          scheme: "NVFP4A16",
          ignore: ["lm_head"],
          outputDir: out,
          ...quiet,
        }),
      QuantizationShapeError,
      "model.layers.0.mlp.down_proj: 172 columns",
    );
    await assertRejects(
      () => oneshot({ model: STORIES, scheme: "W5A17", outputDir: out, ...quiet }),
      RecipeError,
      "expected a preset name",
    );
    await assertRejects(
      () => oneshot({ model: STORIES, scheme: "W8A16", recipe: [], outputDir: out, ...quiet }),
      OneshotError,
      "either recipe or scheme",
    );
    const blocks = QuantizationModifier({
      configGroups: {
        group_0: {
          targets: ["Linear"],
          weights: { num_bits: 8, type: "float", strategy: "block", block_structure: [128, 128] },
        },
      },
      ignore: ["lm_head"],
    });
    await assertRejects(
      () => oneshot({ model: STORIES, recipe: [blocks], outputDir: out, ...quiet }),
      QuantizationShapeError,
      "block_structure [128, 128] does not tile the weight [64, 64]",
    );
    assertEquals(listDir(dir), []);
  });
});

Deno.test("an existing output is refused without overwrite and replaced with it", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(`${out}/precious.txt`, "keep");
    await assertRejects(
      () =>
        oneshot({ model: STORIES, scheme: "W8A16", ignore: ["lm_head"], outputDir: out, ...quiet }),
      CheckpointSinkError,
      "already exists",
    );
    assertEquals(listDir(dir), ["out"]);
    assertEquals(listDir(out), ["precious.txt"]);
    await oneshot({
      model: STORIES,
      scheme: "W8A16",
      ignore: ["lm_head"],
      outputDir: out,
      overwrite: true,
      ...quiet,
    });
    assert(!await exists(`${out}/precious.txt`));
    assertEquals(listDir(dir), ["out"], "no temporary folders left");
  });
});

Deno.test("a run that dies mid-way leaves no output; resume finishes it identically", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    const options = {
      model: STORIES,
      scheme: "NVFP4A16",
      ignore: ["lm_head", "re:.*down_proj$"],
      ...quiet,
    };
    class Crash extends Error {}
    await assertRejects(
      () =>
        oneshot({
          ...options,
          outputDir: out,
          onProgress: (e) => {
            if (e.layer === 2) throw new Crash("killed");
          },
        }),
      Crash,
    );
    assert(!await exists(out), "no output after the crash");
    assertEquals(listDir(`${out}.tmp-llmc/layers`), [
      "layer-00000.safetensors",
      "layer-00001.safetensors",
      "layer-00002.safetensors",
    ]);
    const seen: string[] = [];
    const resumed = await oneshot({
      ...options,
      outputDir: out,
      resume: true,
      onProgress: (e) => seen.push(`${e.layer}:${e.skipped}`),
    });
    assertEquals(resumed.resumedLayers, [0, 1, 2]);
    assertEquals(seen, ["null:false", "0:true", "1:true", "2:true", "3:false", "4:false"]);
    await oneshot({ ...options, outputDir: `${dir}/fresh` });
    const a = await Deno.readFile(`${out}/model.safetensors`);
    const b = await Deno.readFile(`${dir}/fresh/model.safetensors`);
    assert(
      a.length === b.length && a.every((x, i) => x === b[i]),
      "resumed output equals a fresh run",
    );
    assertEquals(listDir(dir), ["fresh", "out"]);
  });
});

Deno.test("a quantized lm_head of a tied model is written untied", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    await oneshot({ model: STORIES, scheme: "W8A16", outputDir: out, ...quiet });
    const tensors = await readAll(`${out}/model.safetensors`);
    const names = tensors.map((t) => t.name);
    assert(names.includes("lm_head.weight_packed") && names.includes("lm_head.weight_scale"));
    assert(names.includes("model.embed_tokens.weight"), "the embeddings stay dense");
    const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assertEquals(config.tie_word_embeddings, false);
    assertEquals(config.quantization_config.ignore, []);
    const model = await HfModel.open(STORIES);
    try {
      const embed = await model.readF32("model.embed_tokens.weight");
      const scheme = presetScheme("W8A16", ["Linear"]);
      const own = tensors.filter((t) => t.name.startsWith("lm_head."));
      const [fq] = rtnQuantizeLinears(
        [{
          name: "lm_head",
          values: embed,
          shape: [512, 64],
          scheme,
          format: "pack-quantized",
          dtype: "F32",
        }],
        { fakeQuantize: true },
      );
      assertSameValues(
        decompressModule("lm_head", own, scheme, "pack-quantized").weight,
        fq.fakeQuantized!,
      );
    } finally {
      model.close();
    }
  });
});

Deno.test("BF16 models keep BF16 scales and copies, and decompress to the BF16 fake-quantization", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/bf16`;
    await Deno.mkdir(src);
    await storiesAs(src, "BF16");
    const out = `${dir}/out`;
    await oneshot({
      model: src,
      scheme: "FP8_DYNAMIC",
      ignore: ["lm_head"],
      outputDir: out,
      ...quiet,
    });
    const tensors = await readAll(`${out}/model.safetensors`);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    assertEquals(byName.get("model.layers.0.self_attn.q_proj.weight_scale")!.dtype, "BF16");
    assertEquals(byName.get("model.layers.0.self_attn.q_proj.weight")!.dtype, "F8_E4M3");
    assertEquals(byName.get("model.norm.weight")!.dtype, "BF16");
    const model = await HfModel.open(src);
    try {
      const name = "model.layers.3.mlp.down_proj";
      const scheme = presetScheme("FP8_DYNAMIC", ["Linear"]);
      const values = await model.readF32(`${name}.weight`);
      const [fq] = rtnQuantizeLinears(
        [{ name, values, shape: [64, 172], scheme, format: "float-quantized", dtype: "BF16" }],
        { fakeQuantize: true },
      );
      const own = tensors.filter((t) => t.name.startsWith(`${name}.`));
      const dense = decompressModule(name, own, scheme, "float-quantized").weight;
      assertSameValues(dense, fq.fakeQuantized!);
      const raw = await model.readRaw("model.norm.weight");
      assertEquals(
        bytesToF32("BF16", byName.get("model.norm.weight")!.data),
        bytesToF32("BF16", raw),
      );
    } finally {
      model.close();
    }
  });
});

Deno.test("large outputs are sharded with an index that HfModel reads back", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    const r = await oneshot({
      model: STORIES,
      scheme: "W8A16",
      ignore: ["lm_head"],
      outputDir: out,
      maxShardBytes: 100_000,
      ...quiet,
    });
    assert(r.files.length >= 3, `${r.files.length} shards`);
    const index = JSON.parse(await Deno.readTextFile(`${out}/model.safetensors.index.json`));
    assertEquals(index.metadata.total_size, r.totalSize);
    const m = await HfModel.open(out);
    try {
      assertEquals(m.tensorNames().length, r.tensorCount);
      assert(m.has("model.layers.4.mlp.down_proj.weight_packed"));
    } finally {
      m.close();
    }
  });
});
