/**
 * Golden logits from transformers itself: tests/moe/golden/make_goldens.py
 * ran transformers' MixtralForCausalLM / Qwen2MoeForCausalLM /
 * Qwen3MoeForCausalLM (float32, eager) on the seeded synthetic checkpoints of
 * tests/moe/golden/_specs.ts (README.md there names the transformers tag,
 * torch and environment). Here llmc writes the same checkpoints again (their
 * SHA-256 must match the one the goldens were made on), runs its forward on
 * each engine and compares to 1e-4 of the largest golden logit. A last test
 * perturbs one router weight and checks that the comparison then fails.
 */

import type { EngineKind } from "../../src/engine/engine.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { type SyntheticSpec, writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { assertClose, assertEquals, AssertionError, assertThrows } from "../model/_assert.ts";
import { ENGINE_KINDS, testEngine } from "../_engines.ts";
import { GOLDEN_BATCH, GOLDEN_SEQ, GOLDEN_SPECS, goldenIds } from "./golden/_specs.ts";

const GOLDEN_DIR = new URL("./golden/", import.meta.url);
const REL = 1e-4;

interface GoldenCase {
  model_type: string;
  safetensors_sha256: string;
  batch: number;
  seq: number;
  vocab: number;
  ids: number[];
  file: string;
}

const manifest = JSON.parse(await Deno.readTextFile(new URL("goldens.json", GOLDEN_DIR))) as {
  cases: Record<string, GoldenCase>;
};

async function goldenLogits(c: GoldenCase): Promise<Float32Array> {
  const bytes = await Deno.readFile(new URL(c.file, GOLDEN_DIR));
  const n = c.batch * c.seq * c.vocab;
  if (bytes.byteLength !== 4 * n) {
    throw new Error(`golden ${c.file}: ${bytes.byteLength} bytes, expected ${4 * n} (f32 LE)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true));
}

async function sha256Hex(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes a case's checkpoint and checks it is the one the goldens were made
 * on, so a changed generator is reported as such rather than as a forward bug.
 */
async function writeCase(name: string, spec: SyntheticSpec, c: GoldenCase) {
  assertEquals(spec.modelType as string, c.model_type, `${name}: model_type`);
  assertEquals(Array.from(goldenIds(spec.vocab)), c.ids, `${name}: token ids`);
  assertEquals([GOLDEN_BATCH, GOLDEN_SEQ, spec.vocab], [c.batch, c.seq, c.vocab], `${name}: shape`);
  const written = await writeSyntheticModel(spec);
  const sha = await sha256Hex(`${written.dir}/model.safetensors`);
  if (sha !== c.safetensors_sha256) {
    await written.remove();
    throw new Error(
      `${name}: the synthetic checkpoint is not the one the goldens were computed on ` +
        `(model.safetensors SHA-256 ${sha}, goldens.json has ${c.safetensors_sha256}); ` +
        `regenerate them with tests/moe/golden/make_goldens.py (see its README)`,
    );
  }
  return written;
}

async function llmcLogits(dir: string, ids: Int32Array, kind: EngineKind): Promise<Float32Array> {
  const hf = await HfModel.open(dir);
  const model = await DecoderModel.load(hf, await testEngine(kind));
  try {
    return await model.forward(ids, GOLDEN_BATCH);
  } finally {
    model.close();
    hf.close();
  }
}

for (const kind of ENGINE_KINDS) {
  for (const [name, spec] of Object.entries(GOLDEN_SPECS)) {
    Deno.test(`${name}: ${kind} forward matches transformers' golden logits`, async () => {
      const c = manifest.cases[name];
      if (c === undefined) {
        throw new Error(`goldens.json has no case ${name}: rerun make_goldens.py`);
      }
      const written = await writeCase(name, spec, c);
      try {
        const expected = await goldenLogits(c);
        const got = await llmcLogits(written.dir, Int32Array.from(c.ids), kind);
        assertClose(got, expected, REL, `${name} on ${kind}: logits vs transformers`);
        const std = Math.sqrt(expected.reduce((a, x) => a + x * x, 0) / expected.length);
        assertEquals(std > 0.1, true, `${name}: golden logits are not degenerate`);
      } finally {
        await written.remove();
      }
    });
  }
}

/** Adds `delta` to one f32 element of a tensor in a written single-file checkpoint. */
async function perturb(path: string, tensor: string, index: number, delta: number) {
  const bytes = await Deno.readFile(path);
  const view = new DataView(bytes.buffer);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const info = header[tensor] as { dtype: string; data_offsets: [number, number] };
  assertEquals(info.dtype, "F32", `${tensor}: dtype`);
  const at = 8 + headerLen + info.data_offsets[0] + 4 * index;
  view.setFloat32(at, view.getFloat32(at, true) + delta, true);
  await Deno.writeFile(path, bytes);
}

Deno.test("the golden comparison fails when one router weight of mixtral is perturbed", async () => {
  const c = manifest.cases.mixtral;
  const written = await writeCase("mixtral", GOLDEN_SPECS.mixtral, c);
  try {
    await perturb(
      `${written.dir}/model.safetensors`,
      "model.layers.1.block_sparse_moe.gate.weight",
      3,
      0.25,
    );
    const got = await llmcLogits(written.dir, Int32Array.from(c.ids), "cpu");
    const expected = await goldenLogits(c);
    assertThrows(() => assertClose(got, expected, REL), AssertionError, "relative error");
  } finally {
    await written.remove();
  }
});
