import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { OutputLockedError } from "../../src/io/output_lock.ts";
import {
  CheckpointSink,
  CheckpointSinkError,
  compareSafetensorsOrder,
} from "../../src/sink/mod.ts";
import { exists, SHARED_DIR } from "../_shared.ts";
import { f32Tensor, tinySource, withTempDir } from "./_helpers.ts";

const QC = { quant_method: "compressed-tensors", format: "pack-quantized" };

function layerTensors(k: number) {
  const p = `model.layers.${k}`;
  return [
    f32Tensor(`${p}.input_layernorm.weight`, [4], () => k),
    {
      name: `${p}.mlp.up_proj.weight_shape`,
      dtype: "I64" as const,
      shape: [2],
      data: new Uint8Array(16),
    },
    {
      name: `${p}.mlp.up_proj.weight_packed`,
      dtype: "I32" as const,
      shape: [8, 1],
      data: new Uint8Array(32),
    },
    f32Tensor(`${p}.mlp.up_proj.weight_scale`, [8, 1]),
  ];
}

Deno.test("tensor order matches save_pretrained's order in the reference checkpoints", async () => {
  for (const ref of ["a_rtn_w4a16_channel", "g1b_nvfp4a16_skipdown", "e_fp8_dynamic"]) {
    const f = await SafetensorsFile.open(`${SHARED_DIR}reference/${ref}/model.safetensors`);
    try {
      const inFile = f.names().map((name) => ({ name, dtype: f.info(name).dtype }));
      // Reverse first so the comparator, not the input order, decides.
      const sorted = [...inFile].reverse().sort(compareSafetensorsOrder);
      assertEquals(sorted.map((t) => t.name), inFile.map((t) => t.name), ref);
    } finally {
      f.close();
    }
  }
});

Deno.test("a finished checkpoint has ordered tensors, a sorted config and the tokenizer files", async () => {
  await withTempDir(async (dir) => {
    const src = await tinySource(`${Deno.makeTempDirSync({ dir })}`);
    try {
      const out = `${dir}/out`;
      const sink = await CheckpointSink.open({ outputDir: out, source: src, onWarning: () => {} });
      assert(!sink.resumed);
      await sink.writeLayer(1, layerTensors(1));
      await sink.writeLayer(0, layerTensors(0));
      await sink.writeTensors("final_norm", [f32Tensor("model.norm.weight", [4])]);
      assert(await exists(`${out}.tmp-llmc/progress.json`));
      assert(!await exists(out), "nothing at the output path before finalize");
      const res = await sink.finalize({
        quantizationConfig: QC,
        recipeYaml: "default_stage: {}\n",
      });
      assertEquals(res.files, ["model.safetensors"]);
      assertEquals(res.tensorCount, 9);
      assert(!await exists(`${out}.tmp-llmc`), "work folder removed");
      const f = await SafetensorsFile.open(`${out}/model.safetensors`);
      try {
        assertEquals(f.names(), [
          "model.layers.0.mlp.up_proj.weight_shape",
          "model.layers.1.mlp.up_proj.weight_shape",
          "model.layers.0.input_layernorm.weight",
          "model.layers.0.mlp.up_proj.weight_scale",
          "model.layers.1.input_layernorm.weight",
          "model.layers.1.mlp.up_proj.weight_scale",
          "model.norm.weight",
          "model.layers.0.mlp.up_proj.weight_packed",
          "model.layers.1.mlp.up_proj.weight_packed",
        ]);
        assertEquals([...await f.readF32("model.layers.1.input_layernorm.weight")], [1, 1, 1, 1]);
        assertEquals(f.metadata, { format: "pt" });
      } finally {
        f.close();
      }
      const config = await Deno.readTextFile(`${out}/config.json`);
      assert(config.includes('"rope_theta": 10000.0'), config);
      assert(config.includes('"rms_norm_eps": 1e-05'), config);
      assert(
        config.includes('  "quantization_config": {\n    "format": "pack-quantized",'),
        config,
      );
      assert(!config.endsWith("\n"));
      const keys = Object.keys(JSON.parse(config));
      assertEquals(keys, [...keys].sort());
      assertEquals(await Deno.readTextFile(`${out}/recipe.yaml`), "default_stage: {}\n");
      assertEquals(await Deno.readTextFile(`${out}/tokenizer.json`), '{"model": {}}');
    } finally {
      src.close();
    }
  });
});

Deno.test("an existing output is refused before any work unless overwrite is given", async () => {
  await withTempDir(async (dir) => {
    const src = await tinySource(Deno.makeTempDirSync({ dir }));
    try {
      const out = `${dir}/out`;
      await Deno.mkdir(out);
      await Deno.writeTextFile(`${out}/keep.txt`, "old");
      await assertRejects(
        () => CheckpointSink.open({ outputDir: out, source: src }),
        CheckpointSinkError,
        "already exists",
      );
      assert(!await exists(`${out}.tmp-llmc`), "no work folder was created");
      const sink = await CheckpointSink.open({ outputDir: out, source: src, overwrite: true });
      await sink.writeLayer(0, layerTensors(0));
      await sink.writeLayer(1, layerTensors(1));
      await sink.finalize({ quantizationConfig: QC, recipeYaml: "" });
      assert(!await exists(`${out}/keep.txt`), "the old folder was replaced");
      assert(await exists(`${out}/model.safetensors`));
    } finally {
      src.close();
    }
  });
});

Deno.test("finalize fails without output when a layer is missing or a name repeats", async () => {
  await withTempDir(async (dir) => {
    const src = await tinySource(Deno.makeTempDirSync({ dir }));
    try {
      const out = `${dir}/out`;
      const sink = await CheckpointSink.open({ outputDir: out, source: src });
      await sink.writeLayer(0, layerTensors(0));
      await assertRejects(
        () => sink.finalize({ quantizationConfig: QC, recipeYaml: "" }),
        CheckpointSinkError,
        "layer(s) 1 were never written",
      );
      await sink.writeLayer(1, layerTensors(1));
      await sink.writeTensors("a", [f32Tensor("model.norm.weight", [4])]);
      await sink.writeTensors("b", [f32Tensor("model.norm.weight", [4])]);
      await assertRejects(
        () => sink.finalize({ quantizationConfig: QC, recipeYaml: "" }),
        CheckpointSinkError,
        "'model.norm.weight' was handed in twice",
      );
      assert(!await exists(out), "no output after a failed finalize");
      assert(await exists(`${out}.llmc-lock`), "the open sink holds the output's lock");
      await sink.close();
      const leftovers = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.startsWith("out") && n !== "out.tmp-llmc"
      );
      assertEquals(leftovers, [], "temporary output folders are cleaned up");
      assert(await exists(`${out}.tmp-llmc/progress.json`), "work kept for a resumed finalize");
    } finally {
      src.close();
    }
  });
});

Deno.test("writeLayer and writeTensors reject misuse", async () => {
  await withTempDir(async (dir) => {
    const src = await tinySource(Deno.makeTempDirSync({ dir }));
    try {
      const sink = await CheckpointSink.open({ outputDir: `${dir}/out`, source: src });
      await assertRejects(() => sink.writeLayer(2, []), CheckpointSinkError, "not in 0..1");
      await assertRejects(
        () => sink.writeLayer(0, layerTensors(1)),
        CheckpointSinkError,
        "does not start with 'model.layers.0.'",
      );
      await assertRejects(
        () => sink.writeLayer(0, [...layerTensors(0), ...layerTensors(0)]),
        CheckpointSinkError,
        "given twice",
      );
      await sink.writeLayer(0, layerTensors(0));
      await assertRejects(
        () => sink.writeLayer(0, layerTensors(0)),
        CheckpointSinkError,
        "already",
      );
      await assertRejects(
        () => sink.writeTensors("x", layerTensors(1)),
        CheckpointSinkError,
        "belongs to a decoder layer",
      );
      await assertRejects(() => sink.writeTensors("../x", []), CheckpointSinkError, "group key");
    } finally {
      src.close();
    }
  });
});

Deno.test("resume picks up finished layers and boundaries of the same job only", async () => {
  await withTempDir(async (dir) => {
    const src = await tinySource(Deno.makeTempDirSync({ dir }));
    try {
      const out = `${dir}/out`;
      const job = { recipe: "W4A16" };
      const first = await CheckpointSink.open({ outputDir: out, source: src, job });
      await first.writeLayer(0, layerTensors(0));
      await first.saveBoundary(0, new Uint8Array([1, 2, 3]));
      await first.saveBoundary(0, new Uint8Array([4, 5]));
      // The first run "crashes" here: never finalized (its lock released, as by a dead process).
      await first.close();
      const again = await CheckpointSink.open({ outputDir: out, source: src, job, resume: true });
      assert(again.resumed);
      assertEquals(again.doneLayers(), [0]);
      assertEquals(again.boundaryLayer(), 0);
      assertEquals([...(await again.loadBoundary(0))!], [4, 5]);
      assertEquals(await again.loadBoundary(1), null);
      await again.writeLayer(1, layerTensors(1));
      await again.saveBoundary(1, new Uint8Array([9]));
      assertEquals(
        [...Deno.readDirSync(`${out}.tmp-llmc/boundary`)].map((e) => e.name),
        ["after-layer-00001.bin"],
        "only the latest boundary is kept",
      );
      // While `again` holds the output, even this process cannot open it again.
      await assertRejects(
        () => CheckpointSink.open({ outputDir: out, source: src, job, resume: true }),
        OutputLockedError,
        `pid ${Deno.pid} (this process)`,
      );
      await again.close();
      await assertRejects(
        () =>
          CheckpointSink.open({
            outputDir: out,
            source: src,
            job: { recipe: "W8A16" },
            resume: true,
          }),
        CheckpointSinkError,
        "different job",
      );
      const fresh = await CheckpointSink.open({
        outputDir: out,
        source: src,
        job,
        onWarning: () => {},
      });
      assert(!fresh.resumed);
      assertEquals(fresh.doneLayers(), []);
    } finally {
      src.close();
    }
  });
});

Deno.test("a run killed mid-way leaves no output, and resume continues it", async () => {
  await withTempDir(async (dir) => {
    const srcDir = Deno.makeTempDirSync({ dir });
    (await tinySource(srcDir)).close();
    const out = `${dir}/out`;
    const sinkMod = new URL("../../src/sink/mod.ts", import.meta.url).href;
    const ioMod = new URL("../../src/io/hf_model.ts", import.meta.url).href;
    const script = `
      import { CheckpointSink } from "${sinkMod}";
      import { HfModel } from "${ioMod}";
      const src = await HfModel.open(${JSON.stringify(srcDir)});
      const sink = await CheckpointSink.open({ outputDir: ${JSON.stringify(out)}, source: src });
      const v = new Float32Array([1, 2, 3, 4]);
      await sink.writeLayer(0, [{ name: "model.layers.0.input_layernorm.weight", dtype: "F32",
        shape: [4], data: new Uint8Array(v.buffer) }]);
      Deno.exit(3); // killed before the second layer
    `;
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(child.code, 3, new TextDecoder().decode(child.stderr));
    assert(!await exists(out), "no output after a crash");
    const src = await (await import("../../src/io/hf_model.ts")).HfModel.open(srcDir);
    try {
      const sink = await CheckpointSink.open({ outputDir: out, source: src, resume: true });
      assertEquals(sink.doneLayers(), [0]);
      await sink.writeLayer(1, layerTensors(1));
      await sink.finalize({ quantizationConfig: QC, recipeYaml: "" });
      const f = await SafetensorsFile.open(`${out}/model.safetensors`);
      assertEquals([...await f.readF32("model.layers.0.input_layernorm.weight")], [1, 2, 3, 4]);
      f.close();
    } finally {
      src.close();
    }
  });
});

Deno.test("large checkpoints are sharded with an index", async () => {
  await withTempDir(async (dir) => {
    const src = await tinySource(Deno.makeTempDirSync({ dir }));
    try {
      const out = `${dir}/out`;
      const sink = await CheckpointSink.open({ outputDir: out, source: src, maxShardBytes: 64 });
      await sink.writeLayer(0, layerTensors(0));
      await sink.writeLayer(1, layerTensors(1));
      const res = await sink.finalize({ quantizationConfig: QC, recipeYaml: "" });
      assert(res.files.length > 1);
      const index = JSON.parse(await Deno.readTextFile(`${out}/model.safetensors.index.json`));
      assertEquals(Object.keys(index.weight_map).length, 8);
      assertEquals(index.metadata.total_size, res.totalSize);
      for (const f of res.files) assert(await exists(`${out}/${f}`));
    } finally {
      src.close();
    }
  });
});
