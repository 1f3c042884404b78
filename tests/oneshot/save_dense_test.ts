/**
 * `saveCompressed: false` writes what upstream's `save_compressed=False`
 * writes: every quantized weight fake-quantized in the model dtype with its
 * qparams, `format: "dense"` (top level and per group) and
 * `quantization_status: "frozen"`. The dense weights must equal the
 * compressed checkpoint of the same run decompressed.
 */

import assert from "node:assert/strict";
import { STORIES, withTempDir } from "./_helpers.ts";
import { SHARED_DIR } from "../_shared.ts";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { oneshot, OneshotError, type OneshotOptions } from "../../src/oneshot.ts";
import { GPTQModifier, SparseGPTModifier } from "../../src/recipe/constructors.ts";
import { command } from "../../src/cli/oneshot.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const LINEARS = ["self_attn.q_proj", "self_attn.o_proj", "mlp.down_proj"];

const cases: [string, Omit<OneshotOptions, "outputDir">][] = [
  ["data-free RTN W4A16 (channel)", {
    model: STORIES,
    recipe: `${ROOT}recipes/w4a16_rtn_channel.yaml`,
  }],
  ["calibrated GPTQ W4A16 asymmetric (channel)", {
    model: STORIES,
    recipe: [GPTQModifier({
      targets: "Linear",
      ignore: ["lm_head"],
      configGroups: {
        group_0: {
          targets: ["Linear"],
          weights: { num_bits: 4, type: "int", symmetric: false, strategy: "channel" },
        },
      },
    })],
    dataset: `${SHARED_DIR}data/tinystories_calib.txt`,
    numCalibrationSamples: 4,
    maxSeqLength: 64,
  }],
];

for (const [name, options] of cases) {
  Deno.test(`${name}: saveCompressed false writes the fake-quantized weights, format dense`, async () => {
    await withTempDir(async (dir) => {
      await oneshot({ ...options, outputDir: `${dir}/packed`, onWarning: () => {} });
      await oneshot({
        ...options,
        outputDir: `${dir}/dense`,
        saveCompressed: false,
        onWarning: () => {},
      });
      const config = JSON.parse(await Deno.readTextFile(`${dir}/dense/config.json`));
      const qc = config.quantization_config;
      assert.equal(qc.format, "dense");
      assert.equal(qc.quantization_status, "frozen");
      for (const g of Object.values(qc.config_groups) as { format: string }[]) {
        assert.equal(g.format, "dense");
      }
      const dense = await HfModel.open(`${dir}/dense`);
      const packed = await CompressedCheckpoint.open(`${dir}/packed`);
      try {
        for (let k = 0; k < dense.config.numHiddenLayers; k++) {
          for (const linear of LINEARS) {
            const prefix = `model.layers.${k}.${linear}`;
            const info = dense.info(`${prefix}.weight`);
            assert.equal(info.dtype, "F32", `${prefix}.weight is stored in the model dtype`);
            assert.ok(dense.has(`${prefix}.weight_scale`), `${prefix} keeps its scale`);
            assert.ok(!dense.has(`${prefix}.weight_packed`));
            const w = await dense.readF32(`${prefix}.weight`);
            const expected = await packed.readF32(`${prefix}.weight`);
            // Equal as numbers: a code of 0 keeps its sign when fake-quantized, not once packed.
            assert.equal(w.length, expected.length);
            const bad = w.findIndex((v, i) => v !== expected[i]);
            assert.equal(
              bad,
              -1,
              `${prefix}[${bad}]: dense ${w[bad]}, decompressed ${expected[bad]}`,
            );
          }
        }
      } finally {
        dense.close();
        packed.close();
      }
      // The dense checkpoint reads back through the same decompression path.
      const back = await CompressedCheckpoint.open(`${dir}/dense`);
      try {
        const q = await back.readF32("model.layers.0.self_attn.q_proj.weight");
        assert.equal(q.length, 64 * 64);
      } finally {
        back.close();
      }
    });
  });
}

Deno.test("saveCompressed false with a sparsity recipe is refused before any output", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      oneshot({
        model: STORIES,
        recipe: [SparseGPTModifier({ sparsity: 0.5, maskStructure: "2:4", targets: "Linear" })],
        dataset: `${SHARED_DIR}data/tinystories_calib.txt`,
        numCalibrationSamples: 4,
        maxSeqLength: 64,
        outputDir: `${dir}/out`,
        saveCompressed: false,
        onWarning: () => {},
      }),
      (e) => e instanceof OneshotError && /saveCompressed: false/.test(e.message),
    );
    assert.ok(!(await Deno.stat(`${dir}/out`).then(() => true, () => false)));
  });
});

Deno.test("llmc oneshot --no-save-compressed writes the dense form", async () => {
  await withTempDir(async (dir) => {
    const log = console.log;
    console.log = () => {};
    let code;
    try {
      code = await command.run([
        "--model",
        STORIES,
        "--scheme",
        "W8A16",
        "--ignore",
        "lm_head",
        "--output-dir",
        `${dir}/out`,
        "--progress",
        "none",
        "--no-save-compressed",
      ]);
    } finally {
      console.log = log;
    }
    assert.equal(code, 0);
    const qc = JSON.parse(await Deno.readTextFile(`${dir}/out/config.json`)).quantization_config;
    assert.equal(qc.format, "dense");
    assert.equal(qc.quantization_status, "frozen");
  });
});
